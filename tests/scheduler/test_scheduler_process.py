"""``cohortsync scheduler`` as a real process: SIGTERM during a real export."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import sys as _sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import sqlalchemy as sa

_sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "queries"))

from workbench_helpers import AUTH, make_workbench

from cohortsync.braze.sandbox import running_sandbox
from cohortsync.catalog import leases, schedules
from cohortsync.catalog import runs as run_history
from cohortsync.catalog.db import open_catalog
from cohortsync.queries import QueryExport, save_query
from cohortsync.settings import Settings
from support import wait_for

# The jobs are due at once (anchored two years back) and never again while the test runs.
ONCE_A_YEAR = "0 0 1 1 *"


def job_runs(catalog: sa.Engine, job: str) -> list[run_history.RunRecord]:
    return [r for r in run_history.list_runs(catalog, limit=50) if r.job.get("job") == job]


def test_sigterm_takes_no_new_job_and_checkpoints_the_running_export(
    home: Path, tmp_path: Path
) -> None:
    # 4 requests a second: 20 batches take ~5 s, long enough to stop it half-way.
    with running_sandbox(f"sqlite:///{tmp_path / 'braze.db'}", rate_limit="4/second") as sandbox:
        bench = make_workbench(home, sandbox)
        bench.add_customers(20_000)
        # Due now, and not again for a year: a run that crosses a minute is not due twice.
        two_years_ago = datetime.now(UTC) - timedelta(days=730)
        export = QueryExport(auth=AUTH, cohort_id="everyone", threads=1)
        everyone = "SELECT external_id AS user_ids FROM customers"
        save_query("a_export", everyone, export=export, schedule=ONCE_A_YEAR, now=two_years_ago)
        save_query("b_next", "SELECT 1 AS x", schedule=ONCE_A_YEAR, now=two_years_ago)
        catalog = open_catalog(Settings().catalog_path)

        process = subprocess.Popen(
            [sys.executable, "-m", "cohortsync", "scheduler", "--poll-interval", "0.2",
             "--max-parallel", "1", "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ),
        )  # fmt: skip

        def two_batches_acknowledged() -> bool:
            running = job_runs(catalog, "query:a_export")
            acked = run_history.acknowledged_batches(catalog, running[0].id) if running else set()
            return len(acked) >= 2

        try:
            what = "the export to get going (2 acknowledged batches)"
            wait_for(two_batches_acknowledged, 60, what=what, interval=0.05, process=process)
            process.send_signal(signal.SIGTERM)
            stdout, stderr = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()

        assert process.returncode == 0, stderr
        assert "received SIGTERM" in stderr
        [line] = [orjson.loads(text) for text in stdout.splitlines()]
        assert (line["job"], line["status"]) == ("query:a_export", "interrupted")
        [record] = job_runs(catalog, "query:a_export")
        assert record.id == line["run_id"]
        assert record.status == "interrupted"
        checkpointed = run_history.acknowledged_batches(catalog, record.id)
        assert 2 <= len(checkpointed) < 20  # acknowledged batches were recorded, not all sent
        # every acknowledged batch is in (the exact count, with requests in flight held
        # at the signal, is checked by test_scheduler_sigterm_in_flight.py)
        members = len(bench.members("everyone"))
        assert 1000 * len(checkpointed) <= members <= 1000 * (len(checkpointed) + 1)
        assert job_runs(catalog, "query:b_next") == []  # stopping: the next job never started
        assert leases.get_lease(catalog, "query:a_export") is None
        stored = schedules.get_schedule(catalog, "query", "a_export")
        assert stored is not None and stored.last_slot is None  # due again at the next start

        # The next start runs it again and finishes the cohort; the other job runs too.
        again = bench.cli("scheduler", "--once", "--json")
        assert again.returncode == 0, again.stderr
        outcomes = {o["job"]: o["status"] for o in map(orjson.loads, again.stdout.splitlines())}
        assert outcomes == {"query:a_export": "succeeded", "query:b_next": "succeeded"}
        assert len(bench.members("everyone")) == 20_000
        catalog.dispose()
