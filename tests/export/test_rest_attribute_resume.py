"""Attribute delivery is as durable as cohort import: SIGKILL at random points, SIGTERM, resume.

Every exporter is a ``cohortsync export --type rest-attribute`` process
sending to a local ``/users/track`` on 127.0.0.1 (:mod:`export.track_server`);
the kills are real. Modelled on the partner path's tests in
``tests/runs/test_runs_durability.py``.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

from export.track_server import REST_API_KEY, TrackServer
from support import run_cli, wait_for

Spawn = Callable[[list[str]], "subprocess.Popen[str]"]
Warehouse = Callable[[str], None]
BATCH = 75


@pytest.fixture
def track(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TrackServer]:
    monkeypatch.setenv("COHORTSYNC_REST_API_KEY", REST_API_KEY)
    monkeypatch.setenv("COHORTSYNC_HTTP_BACKOFF_BASE", "0.01")
    monkeypatch.setenv("COHORTSYNC_HTTP_BACKOFF_MAX", "0.05")
    server = TrackServer().start()
    yield server
    server.stop()


def export_args(track: TrackServer, *args: str) -> list[str]:
    return [
        "export", "--type", "rest-attribute", "--endpoint", track.url, "--cohort-id", "vip",
        "--table", "t", "--operation", "mirror", *args,
    ]  # fmt: skip


def table_of(start: int, stop: int) -> str:
    return (
        "CREATE OR REPLACE TABLE t AS SELECT 'u' || lpad(i::VARCHAR, 5, '0') AS user_ids "
        f"FROM range({start}, {stop}) r(i)"
    )


def users(start: int, stop: int, step: int = 1) -> set[tuple[str, ...]]:
    return {("external_id", f"u{i:05}") for i in range(start, stop, step)}


def received(track: TrackServer) -> Counter[tuple[str, str]]:
    """How many times each change was acknowledged: (external id, add or remove)."""
    return Counter((item["external_id"], next(iter(item["cohorts"]))) for item in track.objects())


def partway(
    process: subprocess.Popen[str], track: TrackServer, requests: int
) -> Callable[[], bool]:
    """Until the server received ``requests`` requests, or the exporter ended first."""
    return lambda: len(track.requests) >= requests or process.poll() is not None


def test_sigkill_at_random_points_then_rerun_converges_with_bounded_resends(
    track: TrackServer, warehouse: Warehouse, spawn: Spawn
) -> None:
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    threads = 2
    track.add_users(*(f"u{i:05}" for i in range(4_000)))
    track.delay = 0.02
    kills = 0
    for start, stop in [(0, 2_500), (500, 3_000)]:  # then 20% churn
        warehouse(table_of(start, stop))
        before = received(track)
        phase_kills = 0
        for _ in range(3):
            seen = len(track.requests)
            process = spawn(export_args(track, "--threads", str(threads)))
            if rng.random() < 0.3:  # while starting, staging, planning or committing
                time.sleep(rng.uniform(0.0, 1.5))
            else:  # while sending, mid-request
                wait_for(partway(process, track, seen + rng.randint(1, 12)), what="a request")
                time.sleep(rng.uniform(0.0, 0.03))
            process.send_signal(signal.SIGKILL)
            process.communicate(timeout=30)
            phase_kills += process.returncode == -signal.SIGKILL
        done = run_cli(*export_args(track, "--threads", str(threads), "--json"), expect=None)
        assert done.returncode == 0, f"seed {seed}: {done.stderr}"
        assert track.members("cohorts", "vip") == users(start, stop), f"seed {seed}"
        sent = received(track) - before
        twice = sum(count - 1 for count in sent.values() if count > 1)
        assert twice <= phase_kills * threads * BATCH, f"seed {seed}: {twice} re-sent"
        kills += phase_kills
    removed = {external_id for (external_id, op) in received(track) if op == "remove"}
    assert removed <= {f"u{i:05}" for i in range(500)}, f"seed {seed}: removed what it never added"
    assert kills > 0, f"seed {seed}: no kill landed"
    runs = run_cli("runs", "list", "--limit", "100", "--json").json()
    assert "running" not in {run["status"] for run in runs}


def test_sigterm_then_runs_resume_sends_only_what_was_never_acknowledged(
    track: TrackServer, warehouse: Warehouse, spawn: Spawn
) -> None:
    track.add_users(*(f"u{i:05}" for i in range(3_000)))
    warehouse(table_of(0, 3_000))
    track.delay = 0.1
    process = spawn(export_args(track, "--threads", "2"))
    wait_for(lambda: len(track.requests) >= 4, what="4 requests", timeout=60)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 6, stderr
    [run] = run_cli("runs", "list", "--json").json()
    assert run["status"] == "interrupted"
    answered = len(track.answered())
    assert 0 < answered < 40
    track.delay = 0
    done = run_cli("runs", "resume", run["id"], "--json", expect=None)
    assert done.returncode == 0, done.stderr
    report = orjson.loads(done.stdout)
    assert track.members("cohorts", "vip") == users(0, 3_000)
    assert sum(received(track).values()) == 3_000  # nothing twice: the in-flight were recorded
    assert report["match"]["objects"] == 3_000
    assert report["sent"] == {"user_ids": 3_000}
    assert REST_API_KEY not in done.stdout + done.stderr


def test_the_match_report_after_sigkill_and_resume_holds_every_acknowledged_batch_once(
    track: TrackServer, warehouse: Warehouse, spawn: Spawn
) -> None:
    """A killed attempt records no report; its answers' errors are kept with its acks."""
    track.add_users(*(f"u{i:05}" for i in range(0, 3_000, 2)))  # the odd ones are nobody
    warehouse(table_of(0, 3_000))
    track.delay = 0.05
    process = spawn(export_args(track, "--threads", "2"))
    # A worker records each ack before it sends again: 6 requests answered, 4 acknowledged.
    wait_for(lambda: len(track.answered()) >= 6, what="6 answered requests", timeout=60)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL
    before = len(track.objects())
    track.delay = 0
    done = run_cli(*export_args(track, "--threads", "2", "--json"), expect=None)
    assert done.returncode == 0, done.stderr
    resent = len(track.objects()) - before
    assert resent < 3_000  # the resumed attempt's own answers hold fewer than every error
    assert track.members("cohorts", "vip") == users(0, 3_000, 2)
    report = orjson.loads(done.stdout)
    unknown = {"no such user and _update_existing_only is true": 1_500}
    expected = {"objects": 3_000, "errors": 1_500, "processed": 1_500, "reasons": unknown}
    match = report["match"]
    assert {key: match[key] for key in expected} == expected
    assert len(match["first_errors"]) == 5
    assert {item["identifier"] for item in match["first_errors"]} <= {
        f"u{i:05}" for i in range(1, 3_000, 2)
    }
    shown = run_cli("runs", "show", report["run_id"], "--json").json()
    assert shown["report"]["match"] == match
    table = run_cli("runs", "show", report["run_id"]).stdout
    assert "3,000 objects acknowledged, 1,500 processed, 1,500 errors" in table
