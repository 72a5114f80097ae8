"""The workspace's shared rate budget and ``--threads auto``, end to end.

Real exports (the executable, in their own processes) against the partner
API server on 127.0.0.1: two runs of one home share one workspace's budget;
``auto`` grows its requests in flight while answers stay fast and backs off
when the server slows down or answers 429; a run killed while it holds send
times does not hold up the next one. Bounds are loose on purpose (several
times the margin a correct pace needs), so a slow machine does not fail them.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cohortsync.catalog.db import open_catalog
from cohortsync.catalog.rate_budgets import get_budget
from cohortsync.export.budget import workspace_of
from cohortsync.export.spec import Destination
from export.conftest import CliRunner
from export.partner_server import CLIENT_SECRET, PARTNER_API_KEY, PartnerServer, Recorded
from support import wait_for

Spawn = Callable[[list[str]], subprocess.Popen[str]]


def export_args(url: str, cohort: str, ids: int, *extra: str) -> list[str]:
    """An export of ``ids`` generated user ids: one batch per 1,000, no warehouse file."""
    return [
        "export",
        "--endpoint",
        url,
        "--data-import-key",
        CLIENT_SECRET,
        "--warehouse",
        "duckdb:///:memory:",
        "--query",
        f"SELECT 'user-' || lpad(i::VARCHAR, 7, '0') AS user_ids FROM range({ids}) t(i)",
        "--cohort-id",
        cohort,
        *extra,
    ]


def batches_of(partner: PartnerServer, cohort: str) -> list[Recorded]:
    """Every ``cohorts/users`` request of ``cohort``, answered 2xx or not."""
    return [r for r in partner.users_requests(answered=False) if r.body["cohort_id"] == cohort]


def stored_budget(home: Path, partner: PartnerServer) -> dict[str, Any] | None:
    destination = Destination(partner.url, CLIENT_SECRET, PARTNER_API_KEY)
    engine = open_catalog(home / "catalog.db")
    try:
        return get_budget(engine, workspace_of(destination))
    finally:
        engine.dispose()


def finished(process: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str]:
    _, stderr = process.communicate(timeout=timeout)
    return process.returncode, stderr


def test_two_processes_share_one_workspace_budget(
    partner: PartnerServer, spawn: Spawn, home: Path
) -> None:
    # 100 requests per 5 s window, 429 above: each run's 60 requests fit in what
    # the window has left, so a run pacing alone would send them all at once.
    partner.rate_limit = (100, 5.0)
    runs = [spawn(export_args(partner.url, cohort, 60_000)) for cohort in ("one", "two")]
    for run in runs:
        code, stderr = finished(run)
        assert code == 0, stderr

    batches = partner.users_requests(answered=False)
    assert len(partner.users_requests()) == 120  # every batch of both acknowledged
    throttled = sum(1 for r in batches if r.status == 429)
    # Paced alone, both would send at once: 20 of the first 120 requests refused.
    assert throttled <= 6, f"{throttled} of {len(batches)} requests answered 429"
    # While both were sending, together they kept to the workspace's rate.
    one, two = batches_of(partner, "one"), batches_of(partner, "two")
    start = max(one[0].wall, two[0].wall)
    end = min(one[-1].wall, two[-1].wall)
    assert end - start > 1.5, "the runs hardly overlapped"
    together = sum(1 for r in batches if start <= r.wall <= end)
    assert together / (end - start) <= 20 * 1.25

    budget = stored_budget(home, partner)
    assert budget is not None
    assert budget["request_limit"] == 100
    assert budget["window_s"] is not None and 4.5 <= budget["window_s"] <= 7


def test_auto_is_the_default_and_grows_while_answers_stay_fast(
    partner: PartnerServer, cli: CliRunner
) -> None:
    partner.delay = 0.05
    result = cli(*export_args(partner.url, "c", 300_000, "--json"))
    assert result.returncode == 0, result.stderr
    concurrency = result.json()["concurrency"]
    assert concurrency["threads"] == "auto"
    assert concurrency["max"] >= 8  # from 2, one more per round of fast answers
    assert partner.max_in_flight >= 8
    assert partner.max_in_flight <= concurrency["max"]
    shown = cli("runs", "show", result.json()["run_id"], "--json")
    assert shown.returncode == 0, shown.stderr
    assert shown.json()["report"]["concurrency"] == concurrency
    text = cli("runs", "show", result.json()["run_id"])
    assert f"auto: up to {concurrency['max']} threads, {concurrency['final']} at the end" in (
        text.stdout
    )


def test_a_fixed_thread_count_stays_fixed(partner: PartnerServer, cli: CliRunner) -> None:
    partner.delay = 0.02
    result = cli(*export_args(partner.url, "c", 30_000, "--threads", "3", "--json"))
    assert result.returncode == 0, result.stderr
    assert result.json()["concurrency"] == {"threads": 3, "max": 3, "final": 3}
    assert partner.max_in_flight == 3
    text = cli(*export_args(partner.url, "c", 30_000, "--threads", "3"))
    assert text.returncode == 0, text.stderr
    assert re.search(r"│ concurrency +│ 3 threads +│", text.stdout), text.stdout


class OverloadedServer(PartnerServer):
    """Answers in 20 ms while at most ``capacity`` requests are under way.

    Beyond that, ``mode`` says how it suffers: ``slow`` adds 40 ms per
    request too many to every answer; ``refuse`` answers 429.
    """

    def __init__(self, mode: str, capacity: int = 4) -> None:
        super().__init__()
        self.mode = mode
        self.capacity = capacity
        self.load = 0
        self.highest_load = 0
        self.refused = 0
        self._load_lock = threading.Lock()

    def _answer(self, path: str, raw: bytes) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._load_lock:
            self.load += 1
            self.highest_load = max(self.highest_load, self.load)
            over = max(0, self.load - self.capacity)
        try:
            if "cohorts/users" in path and over and self.mode == "refuse":
                with self._load_lock:
                    self.refused += 1
                time.sleep(0.02)
                return 429, {"message": "Too many requests"}, {}
            time.sleep(0.02 + 0.04 * over)
            return super()._answer(path, raw)
        finally:
            with self._load_lock:
                self.load -= 1


@pytest.fixture
def overloaded(partner: PartnerServer, request: pytest.FixtureRequest) -> Any:
    server = OverloadedServer(request.param).start()
    yield server
    server.stop()


@pytest.mark.parametrize("overloaded", ["slow", "refuse"], indirect=True)
def test_auto_backs_off_when_the_server_slows_down_or_refuses(
    overloaded: OverloadedServer, cli: CliRunner
) -> None:
    result = cli(*export_args(overloaded.url, "c", 400_000, "--json"))
    assert result.returncode == 0, result.stderr
    concurrency = result.json()["concurrency"]
    assert concurrency["threads"] == "auto"
    # Growing without backing off would pass 20 within these 400 requests.
    assert concurrency["max"] <= 12, concurrency
    assert concurrency["final"] <= 12, concurrency
    assert overloaded.highest_load <= 14
    if overloaded.mode == "refuse":
        assert 0 < overloaded.refused <= 100  # it did probe past the capacity, and retreated


def test_a_run_killed_while_holding_send_times_does_not_block_the_next(
    partner: PartnerServer, spawn: Spawn, cli: CliRunner, home: Path
) -> None:
    partner.rate_limit = (10, 1.0)
    first = spawn(export_args(partner.url, "first", 200_000))
    wait_for(
        lambda: len(batches_of(partner, "first")) >= 15,
        timeout=60,
        what="the first run paced by the budget",
        process=first,
    )
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    budget = stored_budget(home, partner)
    assert budget is not None
    assert float(budget["next_slot"]) - time.time() < 2  # at most a grant's worth reserved

    started = time.monotonic()
    result = cli(*export_args(partner.url, "second", 20_000, "--json"))
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    second = batches_of(partner, "second")
    assert sum(1 for r in second if r.status == 201) == 20
    # 20 requests at 10/s: about 2 s of sending, however the first run ended
    assert second[-1].wall - second[0].wall < 6
    assert elapsed < 60
    assert sum(1 for r in second if r.status == 429) <= 3


def test_help_shows_auto_as_the_default(cli: CliRunner) -> None:
    for command in (("export",), ("query", "save"), ("activation", "create")):
        shown = cli(*command, "--help", env={"COLUMNS": "200"})
        assert shown.returncode == 0, shown.stderr
        assert "--threads" in shown.stdout and "auto|1-64" in shown.stdout, command
    assert "[default: auto]" in cli("export", "--help", env={"COLUMNS": "200"}).stdout


def test_a_thread_count_that_is_neither_auto_nor_a_number_is_a_usage_error(
    partner: PartnerServer, cli: CliRunner
) -> None:
    result = cli(*export_args(partner.url, "c", 10, "--threads", "many"))
    assert result.returncode == 2
    assert "thread count 'many' is neither auto nor a number" in result.stderr
    assert "give auto or 1 to 64 threads" in result.stderr
    assert "Traceback" not in result.stderr
    assert partner.requests == []
