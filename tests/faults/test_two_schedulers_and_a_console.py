"""Two ``cohortsync scheduler`` processes and a ``cohortsync console`` on one home.

All three run jobs of the same catalog at the same time: the schedulers
their due jobs, the console *Run now* of the same jobs, through its HTTP
forms. Each scheduled slot must run once (across both schedulers), no two
runs of one job may overlap, and every cohort must end exact at the
recording partner API server. Then one scheduler is SIGKILLed in the middle
of an export: the other scheduler takes its lease over at once and finishes
the run, without waiting for the job's next slot; with no scheduler left,
the console's *Run now* does. No lease is left in the catalog once
everything has stopped.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from catalog_helpers import save_home_auth
from cohortsync.catalog import runs as run_history
from cohortsync.catalog.db import open_catalog
from cohortsync.catalog.leases import get_lease
from cohortsync.queries import QueryExport, save_query
from cohortsync.settings import Settings
from export.partner_server import CLIENT_SECRET, PartnerServer
from support import cohortsync_command, wait_for

# Due once now (its latest slot, this 1 January, is after the schedule was saved), and
# not again before next year: a slot that comes while a test runs would run its jobs again.
ONCE_A_YEAR = "0 0 1 1 *"
PASSWORD = "console password for the fault tests"
CONSOLE_ON = re.compile(r"cohortsync console on (http://\S+)")
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Process:
    """A ``cohortsync`` process whose stdout and stderr go to files."""

    name: str
    popen: subprocess.Popen[str]
    stdout: Path
    stderr: Path

    def json_lines(self) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in self.stdout.read_text().splitlines()]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Process]]:
    started: list[Process] = []

    def run(name: str, *args: str, **env: str) -> Process:
        out, err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
        with out.open("w") as stdout, err.open("w") as stderr:
            popen = subprocess.Popen(
                cohortsync_command(*args), stdout=stdout, stderr=stderr, text=True,
                env={**os.environ, **env},
            )  # fmt: skip
        started.append(Process(name, popen, out, err))
        return started[-1]

    yield run
    for process in started:
        if process.popen.poll() is None:
            process.popen.kill()
        process.popen.wait(timeout=30)


def ids(cohort: str, count: int) -> set[tuple[str, str]]:
    return {("user_ids", f"{cohort}-{i}") for i in range(count)}


def cohort_members(partner: PartnerServer, cohort: str) -> set[tuple[str, str]]:
    """The cohort as the server applied it: its acknowledged requests in the order they ended."""
    members: set[tuple[str, str]] = set()
    for request in sorted(partner.users_requests(), key=lambda request: request.finished):
        if request.body["cohort_id"] != cohort:
            continue
        for change in request.body["cohort_changes"]:
            apply = members.discard if change.get("should_remove", False) else members.add
            for value in change.get("user_ids", []):
                apply(("user_ids", value))
    return members


def make_home(home: Path, partner: PartnerServer, exports: dict[str, int], quick: int) -> None:
    """A warehouse table per export job, the saved queries, all of them due now."""
    import duckdb

    with duckdb.connect(str(home / "warehouse.duckdb")) as connection:
        for name, count in exports.items():
            connection.execute(
                f"CREATE TABLE {name} AS SELECT '{name}-' || i AS user_ids FROM range({count}) t(i)"
            )
    save_home_auth("partner", partner.url, CLIENT_SECRET)
    two_years_ago = datetime.now(UTC) - timedelta(days=730)
    for name in exports:
        export = QueryExport(auth="partner", cohort_id=name, threads=1)
        save_query(name, f"SELECT user_ids FROM {name}", export=export, schedule=ONCE_A_YEAR,
                   now=two_years_ago)  # fmt: skip
    for i in range(quick):  # queries without export: they run in a few ms, races show
        save_query(f"quick{i:02}", "SELECT 1 AS x", schedule=ONCE_A_YEAR, now=two_years_ago)


def scheduler_args() -> list[str]:
    return ["scheduler", "--poll-interval", "0.05", "--max-parallel", "3", "--json"]


def console_session(start: Callable[..., Process]) -> tuple[Process, httpx.Client]:
    console = start("console", "console", "--port", "0", COHORTSYNC_CONSOLE_PASSWORD=PASSWORD)
    url = wait_for(
        lambda: (found := CONSOLE_ON.search(console.stderr.read_text())) and found.group(1),
        60,
        what="the console to say where it serves",
        process=console.popen,
    )
    client = httpx.Client(base_url=url, timeout=30)
    login = client.post("/login", data={"user": "admin", "password": PASSWORD})
    assert login.status_code == 303, login.text
    return console, client


def run_now(client: httpx.Client, name: str) -> httpx.Response:
    """The console's *Run now* of the saved query ``name``, as its form posts it."""
    page = client.get(f"/queries/{name}")
    assert page.status_code == 200, page.text
    token = CSRF.search(page.text)
    assert token, "the query's page has no CSRF token"
    return client.post(f"/queries/{name}/run", data={"csrf_token": token.group(1)})


def job_runs(catalog: Any, job: str) -> list[run_history.RunRecord]:
    return run_history.list_runs(catalog, job=job, limit=100)


def leases_left(home: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(home / "catalog.db") as catalog:
        return catalog.execute("SELECT job, owner FROM job_leases").fetchall()


def stop_all(*processes: Process) -> None:
    """SIGTERM each; each exits 0 (the console once it has stopped its launches)."""
    for process in processes:
        process.popen.send_signal(signal.SIGTERM)
    for process in processes:
        code = process.popen.wait(timeout=30)
        assert code == 0, f"{process.name}: exit {code}\n{process.stderr.read_text()}"


def test_two_schedulers_and_a_console_run_each_slot_once(
    home: Path, partner: PartnerServer, start: Callable[..., Process]
) -> None:
    exports = {f"e{i}": 1_500 for i in range(5)}
    make_home(home, partner, exports, quick=12)
    partner.delay = 0.1  # each export takes a few hundred ms: the runs overlap in time
    console, client = console_session(start)
    a = start("a", *scheduler_args())
    b = start("b", *scheduler_args())
    launched = [run_now(client, name) for name in exports]  # while the schedulers start
    assert all(answer.status_code in (200, 303) for answer in launched), launched

    jobs = {f"query:{name}" for name in exports} | {f"query:quick{i:02}" for i in range(12)}

    def every_job_ran() -> list[dict[str, Any]] | None:
        outcomes = a.json_lines() + b.json_lines()
        return outcomes if {o["job"] for o in outcomes} >= jobs else None

    what = "every due job to run"
    wait_for(every_job_ran, 30, what=what, process=a.popen, interval=0.1)
    catalog = open_catalog(Settings().catalog_path)
    try:
        # the console's launches end too (they were refused, or ran, or wait for nothing)
        wait_for(
            lambda: all(r.status != "running" for job in jobs for r in job_runs(catalog, job)),
            30,
            what="no run left running",
        )
        outcomes = a.json_lines() + b.json_lines()
        assert Counter(o["job"] for o in outcomes) == dict.fromkeys(jobs, 1)
        assert all(o["status"] == "succeeded" for o in outcomes), outcomes
        assert {o["job"] for o in a.json_lines()} and {o["job"] for o in b.json_lines()}
        for job in jobs:
            runs = sorted(job_runs(catalog, job), key=lambda r: r.started_at)
            for earlier, later in pairwise(runs):
                assert earlier.finished_at is not None
                assert earlier.finished_at <= later.started_at, f"{job}: two runs overlap"
        for name, count in exports.items():
            assert cohort_members(partner, name) == ids(name, count)
    finally:
        catalog.dispose()
    stop_all(a, b, console)
    client.close()
    assert leases_left(home) == []


def killed_while_sending(
    partner: PartnerServer, catalog: Any, schedulers: list[Process]
) -> tuple[run_history.RunRecord, Process]:
    """SIGKILL the scheduler running ``query:big`` once 3 batches are in; its run and it."""

    def sending() -> run_history.RunRecord | None:
        runs = job_runs(catalog, "query:big")
        if runs and len(run_history.acknowledged_batches(catalog, runs[0].id)) >= 3:
            return runs[0]
        return None

    run = wait_for(sending, 30, what="the export to be sending", process=schedulers[0].popen)
    lease = get_lease(catalog, "query:big")
    assert lease is not None
    [holder] = [process for process in schedulers if process.popen.pid == lease.pid]
    holder.popen.send_signal(signal.SIGKILL)
    holder.popen.wait(timeout=10)
    return run, holder


def finished_run(catalog: Any, what: str) -> run_history.RunRecord:
    """The one run of ``query:big``, once it has succeeded."""
    wait_for(lambda: job_runs(catalog, "query:big")[0].status == "succeeded", 30, what=what)
    [finished] = job_runs(catalog, "query:big")
    return finished


def test_a_scheduler_killed_mid_export_leaves_its_run_to_the_other_at_once(
    home: Path, partner: PartnerServer, start: Callable[..., Process]
) -> None:
    """The live scheduler takes the dead one's lease over and continues the same run now,
    not at the job's next slot (next year)."""
    make_home(home, partner, {"big": 20_000}, quick=0)
    partner.delay = 0.15  # 20 batches, one at a time: about 3 s of sending
    a = start("a", *scheduler_args())
    b = start("b", *scheduler_args())
    catalog = open_catalog(Settings().catalog_path)
    try:
        run, holder = killed_while_sending(partner, catalog, [a, b])
        other = b if holder is a else a
        partner.delay = 0
        finished = finished_run(catalog, "the other scheduler to finish the run")
        assert finished.id == run.id  # the killed run, continued from its checkpoints
        assert cohort_members(partner, "big") == ids("big", 20_000)
        # Resent only what was in flight when the process died: one batch at a time.
        assert len(partner.users_requests()) <= 20 + 1
        assert get_lease(catalog, "query:big") is None
        taken_over = [line for line in other.json_lines() if line.get("job") == "query:big"]
        assert [line["status"] for line in taken_over] == ["succeeded"], taken_over
        assert "which died; continuing its run now" in other.stderr.read_text()
    finally:
        catalog.dispose()
    stop_all(other)
    assert leases_left(home) == []


def test_a_lone_scheduler_killed_mid_export_leaves_no_lease_that_locks_the_job(
    home: Path, partner: PartnerServer, start: Callable[..., Process]
) -> None:
    """With no scheduler left, the console's Run now takes the dead lease over and finishes."""
    make_home(home, partner, {"big": 20_000}, quick=0)
    partner.delay = 0.15
    a = start("a", *scheduler_args())
    catalog = open_catalog(Settings().catalog_path)
    try:
        run, _holder = killed_while_sending(partner, catalog, [a])
        assert get_lease(catalog, "query:big") is not None  # left behind by the dead process
        partner.delay = 0
        console, client = console_session(start)
        answer = run_now(client, "big")
        assert answer.status_code in (200, 303), answer.text
        finished = finished_run(catalog, "the run to be finished from the console")
        assert finished.id == run.id
        assert cohort_members(partner, "big") == ids("big", 20_000)
        assert get_lease(catalog, "query:big") is None
    finally:
        catalog.dispose()
    stop_all(console)
    client.close()
    assert leases_left(home) == []
