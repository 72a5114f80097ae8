"""The scheduler's stop requests each running job's stop token: nothing is raised into threads.

A job kind here runs a real export (as the ``query`` and ``activation`` kinds
do) with the token of its :class:`JobContext`, against the partner API server
of the export tests, slowed down so that the stop comes mid-send.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from scheduler_helpers import Clock

import cohortsync
from cohortsync.catalog import runs as run_history
from cohortsync.catalog import schedules
from cohortsync.catalog.db import open_catalog
from cohortsync.export.run import run_export
from cohortsync.export.spec import Destination, ExportSpec, Source
from cohortsync.jobs.kinds import JobContext, JobResult
from cohortsync.scheduler import Scheduler, register_job_kind
from cohortsync.settings import Settings
from export.partner_server import CLIENT_SECRET, PartnerServer
from support import wait_for

USERS = 20_000  # 20 batches


@pytest.fixture
def partner() -> Iterator[PartnerServer]:
    server = PartnerServer().start()
    server.delay = 0.05
    yield server
    server.stop()


def export_spec(partner: PartnerServer) -> ExportSpec:
    destination = Destination(
        endpoint=partner.url, data_import_key=CLIENT_SECRET, partner_api_key=partner.partner_api_key
    )
    return ExportSpec(
        source=Source(table="people"),
        destination=destination,
        cohort_id="everyone",
        threads=1,
        job="export:everyone",
    )


@pytest.fixture
def export_kind(partner: PartnerServer, home: Path) -> ExportSpec:
    """The ``export`` job kind: one real export run, stopped through its context's token."""
    with duckdb.connect(str(home / "warehouse.duckdb")) as connection:
        connection.execute(
            f"CREATE TABLE people AS SELECT 'u' || i::VARCHAR AS user_ids FROM range({USERS}) t(i)"
        )
    spec = export_spec(partner)

    def run(context: JobContext) -> JobResult:
        report = run_export(
            spec, settings=context.settings, reporter=context.reporter, stop=context.stop
        )
        return JobResult(report.status, report.run_id, None, report.to_dict())

    register_job_kind("export", run)
    return spec


def test_a_job_stopped_mid_send_ends_interrupted_and_resumable(
    home: Path, partner: PartnerServer, export_kind: ExportSpec
) -> None:
    clock = Clock("2026-03-02T12:00:00")
    settings = Settings()
    catalog = open_catalog(settings.catalog_path)
    schedules.set_schedule(catalog, "export", "everyone", "*/5 * * * *", "UTC", now=clock())
    clock.advance(minutes=5)
    scheduler = Scheduler(settings, clock=clock)
    try:
        [future] = scheduler.tick()

        def got_going() -> bool:
            assert not future.done(), future.result()
            return len(partner.users_requests()) >= 3

        wait_for(got_going, 60, what="the export to get going", interval=0.01)
        scheduler.stop()
        [outcome] = scheduler.drain()
    finally:
        scheduler.close()
    assert outcome.result.status == "interrupted"
    assert "acknowledged batches are recorded" in (outcome.result.error or "")
    record = run_history.get_run(catalog, outcome.result.run_id or "")
    assert record.status == "interrupted"  # the export's own run, named by its error
    assert record.job["job"] == "export:everyone"
    acknowledged = run_history.acknowledged_batches(catalog, record.id)
    answered = len(partner.users_requests())
    assert len(acknowledged) == answered < USERS // 1000  # the one in flight was recorded
    assert len(partner.users_requests(answered=False)) == answered

    report = run_export(export_kind)  # the next run continues it
    assert (report.run_id, report.status) == (record.id, "succeeded")
    received = Counter(value for _kind, value, _remove in partner.identifiers())
    assert len(received) == USERS and max(received.values()) == 1
    catalog.dispose()


def test_no_code_injects_an_exception_into_a_thread() -> None:
    """Stops are cooperative: nothing in cohortsync raises into another thread."""
    package = Path(cohortsync.__file__).parent
    injecting = [
        path.relative_to(package)
        for path in package.rglob("*.py")
        if "PyThreadState_SetAsyncExc" in path.read_text()
    ]
    assert injecting == []
