"""The receiving service SIGKILLed while an exporter writes to it, then restarted.

``cohortsync braze serve`` runs as a real process on a store (SQLite, then
PostgreSQL); a ``cohortsync export`` process sends it a 30,000-member
mirror, four requests in flight, through a fault proxy that only forwards
(it gives the exporter one address while the service behind it dies and is
started again on another port). The service is SIGKILLed in the middle of
the imports. Then, on the same store:

* no request was applied in part: each batch of the run's plan (1,000
  identifiers, one ``cohorts/users`` request) is wholly in the cohort or
  wholly out of it;
* the restarted service opens the store and serves it;
* running the export again (a new mirror run, which folds the failed run's
  plan in) ends with the cohort exactly the query's result.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest

from cohortsync.braze.sandbox import Sandbox, provision
from cohortsync.braze.store import open_store
from services import fresh_postgres_database
from support import cohortsync_command, run_cli, served_url, wait_for
from support.fault_proxy import FaultProxy

MEMBERS = 30_000


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh store: a SQLite file, or a PostgreSQL database of this test alone."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'braze.db'}"
        return
    with fresh_postgres_database("cohortsync_faults") as url:
        yield url


@pytest.fixture
def sandbox(store_url: str) -> Iterator[Sandbox]:
    """The workspace, partner and key in the store, and its users; not served yet."""
    store = open_store(store_url)
    try:
        made = provision(store)
        made.load_users({"external_id": f"u{i:06}"} for i in range(MEMBERS))
        yield made
    finally:
        store.close()


class Service:
    """``cohortsync braze serve`` on a store, as a process that can be killed and restarted."""

    def __init__(self, store_url: str, folder: Path) -> None:
        self.store_url = store_url
        self.folder = folder
        self.starts = 0
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> str:
        """Start it; its base URL once it serves."""
        self.starts += 1
        log = self.folder / f"serve-{self.starts}.log"
        with log.open("w") as stderr:
            self.process = subprocess.Popen(
                cohortsync_command("braze", "serve", "--db", self.store_url, "--port", "0",
                                   "--rate-limit", "40/second"),
                stdout=subprocess.DEVNULL, stderr=stderr, text=True, env=dict(os.environ),
            )  # fmt: skip
        return served_url(self.process, log)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def members(sandbox: Sandbox) -> set[str]:
    """External ids of the cohort in the store; none before the cohort exists."""
    if not any(cohort["cohort_id"] == "vip" for cohort in sandbox.cohorts()):
        return set()
    return {member["external_id"] for member in sandbox.members("vip")}


def test_a_service_killed_during_imports_applies_whole_requests_and_converges(
    home: Path,
    sandbox: Sandbox,
    store_url: str,
    tmp_path: Path,
    warehouse: Callable[[str], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    warehouse(
        "CREATE TABLE t AS SELECT 'u' || lpad(i::VARCHAR, 6, '0') AS user_ids "
        f"FROM range({MEMBERS}) r(i)"
    )
    monkeypatch.setenv("COHORTSYNC_PARTNER_API_KEY", sandbox.partner_api_key)
    monkeypatch.setenv("COHORTSYNC_HTTP_BACKOFF_BASE", "0.01")
    monkeypatch.setenv("COHORTSYNC_HTTP_BACKOFF_MAX", "0.05")
    service = Service(store_url, tmp_path)
    proxy = FaultProxy.to(service.start())
    args = [
        "export", "--endpoint", proxy.url, "--data-import-key", sandbox.data_import_key,
        "--cohort-id", "vip", "--table", "t", "--operation", "mirror", "--threads", "4",
        "--json",
    ]  # fmt: skip
    try:
        exporter = subprocess.Popen(
            cohortsync_command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=dict(os.environ),
        )  # fmt: skip
        wait_for(lambda: len(members(sandbox)) >= 5_000, 60, what="5,000 members imported",
                 interval=0.05, process=exporter)  # fmt: skip
        service.kill()
        _, stderr = exporter.communicate(timeout=60)
        assert exporter.returncode == 5, stderr  # retries exhausted while nothing answered
        [run] = run_cli("runs", "list", "--json", timeout=60).json()
        assert run["status"] == "failed"

        # No request applied in part: each batch of the plan is all in or all out.
        values = pq.read_table(home / "runs" / run["id"] / "changes.parquet").column("value")
        plan = values.to_pylist()
        assert len(plan) == MEMBERS
        applied = members(sandbox)
        assert 5_000 <= len(applied) < MEMBERS
        whole = 0
        for start in range(0, MEMBERS, 1000):
            batch = plan[start : start + 1000]
            inside = sum(value in applied for value in batch)
            assert inside in (0, len(batch)), f"batch {start // 1000}: {inside} of 1,000 applied"
            whole += inside == len(batch)
        assert whole * 1000 == len(applied)

        # The service restarted on the same store; the export run again continues the run.
        proxy.upstream_port = int(service.start().rsplit(":", 1)[1])
        again = run_cli(*args, expect=None, timeout=120)
        assert again.returncode == 0, again.stderr
        assert members(sandbox) == {f"u{i:06}" for i in range(MEMBERS)}
        # A failed run is not continued by the same export (`runs resume` would): the new
        # mirror run folded its plan in, and marked it superseded when it succeeded.
        latest, earlier = run_cli("runs", "list", "--json", timeout=60).json()
        assert latest["id"] == orjson.loads(again.stdout)["run_id"] != run["id"]
        assert (latest["status"], earlier["id"], earlier["status"]) == (
            "succeeded",
            run["id"],
            "failed",
        )
    finally:
        service.stop()
        proxy.stop()
