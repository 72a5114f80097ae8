"""A run reports its stages, rows and batches to the reporter it is given, and draws nothing."""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console

import cohortsync.export
from cohortsync.cli.progress import ConsoleReporter
from cohortsync.errors import SourceError
from cohortsync.export.report import ExportReport
from cohortsync.export.reporting import LoggingReporter, Stage
from cohortsync.export.run import run_export
from cohortsync.export.spec import Destination, ExportSpec, Source
from export.partner_server import CLIENT_SECRET, PartnerServer

Warehouse = Callable[[str], None]
USERS = 2500  # three batches


class Recorder:
    """Every call a run makes to its reporter, in order."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.stages: list[tuple[Stage, int | None]] = []
        self.rows = 0
        self.batches = 0
        self.identifiers = 0
        self.reports: list[ExportReport] = []
        self.run_ids: list[str] = []

    def run_started(self, run_id: str) -> None:
        self.run_ids.append(run_id)

    def stage_started(self, stage: Stage, *, total: int | None = None) -> None:
        self.stages.append((stage, total))

    def rows_read(self, rows: int) -> None:
        with self.lock:  # called from the staging database's threads
            self.rows += rows

    def batches_sent(self, batches: int, identifiers: int) -> None:
        self.batches += batches
        self.identifiers += identifiers

    def finished(self, report: ExportReport) -> None:
        self.reports.append(report)


def make_spec(partner: PartnerServer, source: Source) -> ExportSpec:
    destination = Destination(
        endpoint=partner.url, data_import_key=CLIENT_SECRET, partner_api_key=partner.partner_api_key
    )
    return ExportSpec(source=source, destination=destination, cohort_id="c")


PEOPLE = f"CREATE TABLE people AS SELECT 'u' || i::VARCHAR AS user_ids FROM range({USERS}) t(i)"
SOURCES = [
    pytest.param(Source(table="people"), id="read-inside-the-staging-database"),
    pytest.param(Source(sql="SELECT * FROM people WHERE ? = 1", params=(1,)), id="arrow-stream"),
]


@pytest.mark.parametrize("source", SOURCES)
def test_a_run_reports_each_stage_its_rows_and_batches_then_finishes(
    partner: PartnerServer, warehouse: Warehouse, home: Path, source: Source
) -> None:
    warehouse(PEOPLE)
    reporter = Recorder()
    report = run_export(make_spec(partner, source), reporter=reporter)
    assert reporter.stages == [
        ("staging", None),
        ("planning", None),
        ("sending", USERS),
        ("committing", None),
    ]
    assert reporter.rows == USERS
    assert (reporter.batches, reporter.identifiers) == (3, USERS)
    assert reporter.reports == [report]
    assert report.status == "succeeded"
    assert reporter.run_ids == [report.run_id]


def test_a_dry_run_reports_staging_and_planning_only(
    partner: PartnerServer, warehouse: Warehouse, home: Path
) -> None:
    warehouse(PEOPLE)
    reporter = Recorder()
    report = run_export(make_spec(partner, Source(table="people")), dry_run=True, reporter=reporter)
    assert [stage for stage, _ in reporter.stages] == ["staging", "planning"]
    assert reporter.reports == [report] and report.status == "dry-run"
    assert partner.requests == []


def test_a_failed_run_still_finishes_its_reporter(
    partner: PartnerServer, warehouse: Warehouse, home: Path
) -> None:
    reporter = Recorder()
    with pytest.raises(SourceError, match=r"the query 'SELECT \* FROM missing' failed"):
        run_export(make_spec(partner, Source(sql="SELECT * FROM missing")), reporter=reporter)
    [report] = reporter.reports  # a terminal display is always taken down
    assert report.status == "failed"


def test_the_logging_reporter_logs_stages_and_the_end(
    partner: PartnerServer, warehouse: Warehouse, home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    warehouse(PEOPLE)
    with caplog.at_level(logging.INFO, logger="cohortsync.export.reporting"):
        report = run_export(
            make_spec(partner, Source(table="people")), reporter=LoggingReporter("query:nightly")
        )
    lines = [record.getMessage() for record in caplog.records]
    assert "query:nightly: staging" in lines
    assert "query:nightly: sending 2,500 identifiers" in lines
    assert any(
        line.startswith(f"query:nightly: run {report.run_id} succeeded: 2,500 rows read, 2,500 ")
        for line in lines
    )


def test_the_export_package_draws_nothing_itself() -> None:
    """Presentation lives in the command line: the export imports no terminal library."""
    package = Path(cohortsync.export.__file__).parent
    drawing = [
        path.name
        for path in package.glob("*.py")
        if "import rich" in path.read_text() or "from rich" in path.read_text()
    ]
    assert drawing == []


def test_the_terminal_reporter_draws_reading_and_sending_then_takes_them_down(
    partner: PartnerServer, warehouse: Warehouse, home: Path
) -> None:
    """The command line's reporter, on a terminal: a spinner with rows, then a bar."""
    warehouse(PEOPLE)
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100)
    reporter = ConsoleReporter(console)
    report = run_export(make_spec(partner, Source(table="people")), reporter=reporter)
    assert report.status == "succeeded"
    drawn = screen.getvalue()
    assert "reading, deduplicating and planning the source" in drawn
    assert "sending" in drawn
    assert console._live_stack == []  # nothing left drawing over what the command prints
