"""A run tells its reporter the id it is recorded under, once, before its first stage.

A console follows a live run by this id, so it must be the id the history
and the report carry, and a resumed run must report the id it continues.
Each case is a real run against the partner API server, on the real DuckDB
warehouse file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from cohortsync.catalog import runs
from cohortsync.catalog.db import open_catalog
from cohortsync.errors import RunInterrupted
from cohortsync.export.reporting import SilentReporter, Stage
from cohortsync.export.run import run_export
from cohortsync.export.spec import Source
from cohortsync.export.stopping import StopToken
from cohortsync.settings import Settings
from export.partner_server import PartnerServer, spec_for

Warehouse = Callable[[str], None]
PEOPLE = "CREATE TABLE people AS SELECT 'u' || i::VARCHAR AS user_ids FROM range(2500) t(i)"


class IdRecorder(SilentReporter):
    """The run ids reported, and what was reported before each: the first calls of a run."""

    def __init__(self, stop_after_batches: int | None = None, stop: StopToken | None = None):
        self.run_ids: list[str] = []
        self.calls: list[str] = []
        self.stop_after_batches = stop_after_batches
        self.stop = stop
        self.batches = 0

    def run_started(self, run_id: str) -> None:
        self.run_ids.append(run_id)
        self.calls.append("run_started")

    def stage_started(self, stage: Stage, *, total: int | None = None) -> None:
        self.calls.append(stage)

    def batches_sent(self, batches: int, identifiers: int) -> None:
        self.batches += batches
        if self.stop is not None and self.batches == self.stop_after_batches:
            self.stop.request()  # while sending: the run stops gracefully, resumable


def recorded_ids(home: Path) -> list[str]:
    catalog = open_catalog(Settings().catalog_path)
    try:
        return [record.id for record in runs.list_runs(catalog, limit=10)]
    finally:
        catalog.dispose()


def test_a_run_reports_its_id_once_before_its_first_stage(
    partner: PartnerServer, warehouse: Warehouse, home: Path
) -> None:
    warehouse(PEOPLE)
    reporter = IdRecorder()
    report = run_export(spec_for(partner, Source(table="people")), reporter=reporter)
    assert report.status == "succeeded" and report.run_id is not None
    assert reporter.run_ids == [report.run_id] == recorded_ids(home)
    assert reporter.calls[0] == "run_started"
    assert reporter.calls.count("run_started") == 1


def test_a_resumed_run_reports_the_id_it_continues(
    partner: PartnerServer, warehouse: Warehouse, home: Path
) -> None:
    warehouse(PEOPLE)
    spec = spec_for(partner, Source(table="people"), threads=1)  # one batch in flight
    stop = StopToken()
    first = IdRecorder(stop_after_batches=1, stop=stop)
    with pytest.raises(RunInterrupted) as stopped:
        run_export(spec, reporter=first, stop=stop)
    run_id = stopped.value.run_id
    assert run_id is not None and first.run_ids == [run_id]
    assert first.batches < 3  # the run stopped before sending everything

    again = IdRecorder()
    report = run_export(spec, reporter=again, resume_run_id=run_id)
    assert (report.run_id, report.status) == (run_id, "succeeded")
    assert again.run_ids == [run_id]
    assert again.calls[:2] == ["run_started", "sending"]  # a resumed run skips staging
    assert recorded_ids(home) == [run_id]  # no second run was recorded


def test_a_dry_run_records_nothing_so_reports_no_id(
    partner: PartnerServer, warehouse: Warehouse, home: Path
) -> None:
    warehouse(PEOPLE)
    reporter = IdRecorder()
    report = run_export(spec_for(partner, Source(table="people")), dry_run=True, reporter=reporter)
    assert report.status == "dry-run"
    assert reporter.run_ids == []
