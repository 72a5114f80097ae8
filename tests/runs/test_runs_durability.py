"""Durable runs, for real: SIGTERM, SIGKILL at random points, overlapping runs, resume.

Every exporter here is a ``cohortsync`` process sending to a real HTTP server
on 127.0.0.1 that records what it acknowledged; signals and kills are real.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from runs_helpers import export_args, membership, partway, received, runs_json

from export.partner_server import PartnerServer
from support import run_cli, wait_for

Spawn = Callable[[list[str]], "subprocess.Popen[str]"]


def users(start: int, stop: int) -> set[tuple[str, str]]:
    return {("user_ids", f"u{i:06}") for i in range(start, stop)}


def table_of(start: int, stop: int) -> str:
    return (
        "CREATE OR REPLACE TABLE t AS SELECT 'u' || lpad(i::VARCHAR, 6, '0') AS user_ids "
        f"FROM range({start}, {stop}) r(i)"
    )


def test_sigterm_finishes_requests_in_flight_then_resume_completes(
    partner: PartnerServer, warehouse: Callable[[str], None], spawn: Spawn
) -> None:
    warehouse(table_of(0, 30_000))
    partner.delay = 0.15
    process = spawn(export_args(partner, "--threads", "2", "--json"))
    wait_for(lambda: len(partner.users_requests(answered=False)) >= 4, what="4 requests")
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 6, stderr
    assert "interrupted by SIGTERM" in stderr
    assert "Traceback" not in stderr

    [run] = runs_json("list")
    assert run["status"] == "interrupted"
    assert run["error"] == "interrupted by SIGTERM"
    shown = runs_json("show", run["id"])
    answered = len(partner.users_requests())
    assert 0 < answered < 30
    # Every request the server answered was waited for and recorded: nothing in flight is lost.
    assert shown["acknowledged_batches"] == answered
    assert len(partner.users_requests(answered=False)) == answered

    partner.delay = 0
    done = run_cli(*export_args(partner, "--json"), expect=None)
    assert done.returncode == 0, done.stderr
    assert membership(partner) == users(0, 30_000)
    assert max(received(partner).values()) == 1  # a graceful stop re-sends nothing
    [latest] = runs_json("list")
    assert latest["id"] == run["id"]  # the same run, continued
    assert latest["status"] == "succeeded"


def test_runs_resume_continues_a_stopped_run_by_id(
    partner: PartnerServer, warehouse: Callable[[str], None], spawn: Spawn
) -> None:
    warehouse(table_of(0, 12_000))
    partner.delay = 0.15
    process = spawn(export_args(partner, "--threads", "1"))
    wait_for(lambda: len(partner.users_requests()) >= 2, what="2 acknowledged requests")
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=30)
    assert process.returncode == 6
    [run] = runs_json("list")
    warehouse(table_of(500_000, 500_010))  # the query's result has changed since: no matter
    partner.delay = 0
    resumed = run_cli(
        "runs",
        "resume",
        run["id"],
        "--data-import-key",
        partner.client_secret,
        "--json",
        expect=None,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert membership(partner) == users(0, 12_000)
    assert max(received(partner).values()) == 1
    again = run_cli("runs", "resume", run["id"], "--data-import-key", "x", expect=None)
    assert again.returncode == 2
    assert "not the one run" in again.stderr


@pytest.mark.slow
def test_sigkill_at_random_points_then_restart_converges(
    partner: PartnerServer,
    warehouse: Callable[[str], None],
    spawn: Spawn,
    home: Path,
) -> None:
    """Kill the exporter with SIGKILL at random moments, restart, check the cohort and resends."""
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    threads = 2
    partner.delay = 0.05
    phases = [(0, 20_000), (3_000, 23_000)]  # then 15% churn: 3,000 exits, 3,000 entries
    kills = 0
    for start, stop in phases:
        warehouse(table_of(start, stop))
        before = received(partner)
        phase_kills = 0
        for _ in range(4):
            seen = len(partner.requests)
            process = spawn(export_args(partner, "--threads", str(threads)))
            if rng.random() < 0.3:  # while starting, staging, planning or committing
                time.sleep(rng.uniform(0.0, 1.5))
            else:  # while sending: after a random number of requests, mid-request
                wait_for(partway(process, partner, seen + rng.randint(1, 15)), what="a request")
                time.sleep(rng.uniform(0.0, 0.05))
            process.send_signal(signal.SIGKILL)
            process.communicate(timeout=30)
            phase_kills += process.returncode == -signal.SIGKILL
        done = run_cli(*export_args(partner, "--threads", str(threads), "--json"), expect=None)
        assert done.returncode == 0, f"seed {seed}: {done.stderr}"
        assert membership(partner) == users(start, stop), f"seed {seed}"
        sent = received(partner) - before
        twice = sum(count - 1 for count in sent.values() if count > 1)
        assert twice <= phase_kills * threads * 1000, f"seed {seed}: {twice} re-sent"
        kills += phase_kills
    removed = {(kind, value) for (kind, value, remove) in received(partner) if remove}
    assert removed <= users(0, 3_000), f"seed {seed}: removed what it never added"
    assert kills > 0, f"seed {seed}: no kill landed"
    statuses = {run["status"] for run in runs_json("list", "--limit", "100")}
    assert "running" not in statuses


def test_a_second_run_of_the_cohort_waits_then_fails_naming_the_first(
    partner: PartnerServer, warehouse: Callable[[str], None], spawn: Spawn
) -> None:
    warehouse(table_of(0, 20_000))
    partner.delay = 0.5  # the first run takes 10 s unless sped up
    first = spawn(export_args(partner, "--threads", "1"))
    wait_for(lambda: len(partner.users_requests(answered=False)) >= 1, what="the first run")
    started = time.monotonic()
    second = run_cli(*export_args(partner, "--lock-timeout", "1"), expect=None)
    waited = time.monotonic() - started
    assert second.returncode == 1, second.stderr
    assert "another run of cohort 'vip'" in second.stderr
    assert f"pid {first.pid}" in second.stderr
    assert "waited 1 s" in second.stderr
    assert "--lock-timeout" in second.stderr
    assert waited >= 1
    partner.delay = 0
    first.communicate(timeout=60)
    assert first.returncode == 0
    # One run only was recorded: the second never started.
    assert [run["status"] for run in runs_json("list")] == ["succeeded"]


def test_a_second_run_that_waits_long_enough_runs_after_the_first(
    partner: PartnerServer, warehouse: Callable[[str], None], spawn: Spawn
) -> None:
    warehouse(table_of(0, 4_000))
    partner.delay = 0.2
    first = spawn(export_args(partner, "--threads", "1", "--operation", "add"))
    wait_for(lambda: len(partner.users_requests(answered=False)) >= 1, what="the first run")
    second = run_cli(*export_args(partner, "--lock-timeout", "60"), expect=None)
    assert second.returncode == 0, second.stderr
    first.communicate(timeout=60)
    assert first.returncode == 0
    requests = sorted(partner.users_requests(), key=lambda r: r.started)
    first_ids = {
        index
        for index, request in enumerate(requests)
        if "should_remove" in request.body["cohort_changes"][0]
        and request.body["cohort_changes"][0]["should_remove"] is False
    }
    assert len(requests) == 8  # 4 batches of the add run, then the mirror run's 4
    last_of_first = max(r.finished for r in requests[:4])
    assert all(r.started >= last_of_first for r in requests[4:]), first_ids


def test_a_killed_run_shows_dead_and_the_same_command_continues_it(
    partner: PartnerServer, warehouse: Callable[[str], None], spawn: Spawn
) -> None:
    warehouse(table_of(0, 8_000))
    partner.delay = 0.2
    process = spawn(export_args(partner, "--threads", "1"))
    wait_for(lambda: len(partner.users_requests()) >= 2, what="2 acknowledged requests")
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    [run] = runs_json("list")
    assert run["status"] == "running"
    assert run["alive"] is False
    assert run["resumable"] is True
    listed = run_cli("runs", "list", expect=None)
    assert "dead" in listed.stdout
    partner.delay = 0
    done = run_cli(*export_args(partner), expect=None)
    assert done.returncode == 0, done.stderr
    [after] = runs_json("list")
    assert after["id"] == run["id"]
    assert after["status"] == "succeeded"
    assert membership(partner) == users(0, 8_000)
    twice = sum(count - 1 for count in received(partner).values() if count > 1)
    assert twice <= 1000  # one thread: at most the batch in flight


def test_another_export_supersedes_a_stopped_mirror_run_and_folds_its_changes(
    partner: PartnerServer, warehouse: Callable[[str], None], spawn: Spawn
) -> None:
    """A stopped run of another job is not continued: its changes are folded into the next."""
    warehouse(table_of(0, 5_000))
    assert run_cli(*export_args(partner), expect=None).returncode == 0
    warehouse(table_of(2_000, 9_000))  # 2,000 exits, 4,000 entries
    partner.delay = 0.2
    before = len(partner.users_requests())
    process = spawn(export_args(partner, "--threads", "1"))
    wait_for(lambda: len(partner.users_requests()) >= before + 2, what="2 acknowledged requests")
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=30)
    assert process.returncode == 6
    stopped = runs_json("list")[0]
    partner.delay = 0
    warehouse(table_of(1_000, 6_000))
    done = run_cli(*export_args(partner, "--cohort-name", "VIP customers", "--json"), expect=None)
    assert done.returncode == 0, done.stderr
    assert membership(partner) == users(1_000, 6_000)
    history = {run["id"]: run for run in runs_json("list")}
    assert history[stopped["id"]]["status"] == "failed"
    assert "superseded by run" in history[stopped["id"]]["error"]
    assert len(history) == 3
