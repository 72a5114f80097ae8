"""The run history as ``cohortsync runs`` and the console read it: views, filters, resuming.

Both call :mod:`cohortsync.jobs.run_history`, so these tests call it as a
library, with real runs against the partner API server, and a real killed
``cohortsync`` process for the dead run.
"""

from __future__ import annotations

import dataclasses
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from runs_helpers import export_args, membership

from cohortsync.catalog import runs as history
from cohortsync.catalog.db import open_catalog
from cohortsync.errors import ConfigError, RunInterrupted
from cohortsync.export.reporting import SilentReporter
from cohortsync.export.run import run_export
from cohortsync.export.spec import ExportSpec, Source
from cohortsync.export.stopping import StopToken
from cohortsync.jobs.history import record_failed_run
from cohortsync.jobs.run_history import (
    STATUSES,
    check_job,
    check_status,
    list_run_views,
    resume_run,
    run_view,
    show_run_view,
    spec_of,
    status_text,
)
from cohortsync.settings import Settings
from export.partner_server import CLIENT_SECRET, PartnerServer, spec_for
from support import run_cli, wait_for

Warehouse = Callable[[str], None]
Spawn = Callable[[list[str]], "subprocess.Popen[str]"]
PEOPLE = "CREATE TABLE people AS SELECT 'u' || i::VARCHAR AS user_ids FROM range(2500) t(i)"


def people(partner: PartnerServer, cohort_id: str = "c", **extra: object) -> ExportSpec:
    """An export of table ``people`` to ``cohort_id`` on the partner server."""
    return dataclasses.replace(
        spec_for(partner, Source(table="people"), **extra), cohort_id=cohort_id
    )


def record_of(run_id: str) -> history.RunRecord:
    catalog = open_catalog(Settings().catalog_path)
    try:
        return history.get_run(catalog, run_id)
    finally:
        catalog.dispose()


class StopAfterFirstBatch(SilentReporter):
    """Requests the run's stop once the server acknowledged its first batch, and keeps its ids."""

    def __init__(self, stop: StopToken | None = None) -> None:
        self.stop = stop
        self.run_ids: list[str] = []

    def run_started(self, run_id: str) -> None:
        self.run_ids.append(run_id)

    def batches_sent(self, batches: int, identifiers: int) -> None:
        if self.stop is not None:
            self.stop.request()  # while sending: a graceful stop, resumable


def test_the_view_of_a_succeeded_run(
    partner: PartnerServer, warehouse: Warehouse, home: Path
) -> None:
    warehouse(PEOPLE)
    report = run_export(people(partner))
    assert report.run_id is not None
    record = record_of(report.run_id)
    view = run_view(Settings(), record)
    assert (view["id"], view["status"], view["cohort_id"]) == (report.run_id, "succeeded", "c")
    assert (view["alive"], view["resumable"]) == (False, False)
    assert record.finished_at is not None
    assert view["duration_s"] == (record.finished_at - record.started_at).total_seconds()
    assert view["duration_s"] >= 0
    assert view["report"]["sent_total"] == 2500
    assert status_text(view) == "succeeded"
    assert CLIENT_SECRET not in str(view)

    shown = show_run_view(Settings(), report.run_id)
    assert shown["acknowledged_batches"] == 3
    assert {key: shown[key] for key in view} == view
    [listed] = list_run_views(Settings())
    assert listed == view


def test_lists_filtered_by_job_and_by_status(
    partner: PartnerServer, warehouse: Warehouse, home: Path
) -> None:
    warehouse(PEOPLE)
    query = run_export(people(partner, job="query:vip")).run_id
    activation = run_export(people(partner, job="activation:vip", cohort_id="d")).run_id
    adhoc = run_export(people(partner, cohort_id="e")).run_id
    catalog = open_catalog(Settings().catalog_path)
    try:
        failed = record_failed_run(catalog, "query:vip", "the query's SQL is wrong")
    finally:
        catalog.dispose()
    settings = Settings()

    def ids(**filters: object) -> list[str]:
        return [view["id"] for view in list_run_views(settings, **filters)]  # type: ignore[arg-type]

    assert ids() == [failed, adhoc, activation, query]
    assert ids(job="query:vip") == [failed, query]
    assert ids(job="activation:vip") == [activation]
    assert ids(job="query:other") == []
    assert ids(status="failed") == [failed]
    assert ids(job="query:vip", status="succeeded") == [query]
    assert ids(cohort_id="e") == [adhoc]
    assert ids(limit=2) == [failed, adhoc]

    # The command line shows the same runs.
    listed = run_cli("runs", "list", "--job", "query:vip", "--json", expect=None)
    assert listed.returncode == 0, listed.stderr
    assert [view["id"] for view in listed.json()] == [failed, query]
    empty = run_cli("runs", "list", "--job", "query:other", expect=None)
    assert (empty.returncode, empty.stdout.strip()) == (
        0,
        "no export runs of query:other (see 'cohortsync runs list' for every job)",
    )


def test_unknown_status_and_job_filters_are_refused(home: Path) -> None:
    assert STATUSES == ("running", "succeeded", "failed", "interrupted")
    for status in (None, *STATUSES):
        check_status(status)
    refusal = r"^unknown --status 'done' \(use one of running, succeeded, failed, interrupted\)$"
    with pytest.raises(ConfigError, match=refusal) as refused:
        check_status("done")
    assert refused.value.message == "unknown --status 'done'"
    with pytest.raises(ConfigError, match=refusal):
        list_run_views(Settings(), status="done")

    check_job("activation:vip")
    for job in ("vip", "query:", "cron:vip"):
        with pytest.raises(
            ConfigError, match=rf"^--job '{job}' is not the name of a saved job \(give KIND:NAME"
        ):
            check_job(job)
    cli = run_cli("runs", "list", "--job", "vip", expect=None)
    assert cli.returncode == 2
    assert "--job 'vip' is not the name of a saved job" in cli.stderr
    assert "query:vip" in cli.stderr  # the hint gives an example
    assert "Traceback" not in cli.stderr


def test_resume_run_continues_an_interrupted_run_to_the_end(
    partner: PartnerServer, warehouse: Warehouse, home: Path
) -> None:
    warehouse(PEOPLE)
    stop = StopToken()
    first = StopAfterFirstBatch(stop)
    with pytest.raises(RunInterrupted) as interrupted:
        run_export(people(partner, threads=1), reporter=first, stop=stop)
    run_id = interrupted.value.run_id
    assert run_id is not None
    view = run_view(Settings(), record_of(run_id))
    assert (view["status"], view["resumable"], view["duration_s"] is not None) == (
        "interrupted",
        True,
        True,
    )
    assert len(partner.users_requests()) < 3  # the run stopped before the end

    wrong_key = rf"^the data import key given is not the one run {run_id} used"
    with pytest.raises(ConfigError, match=wrong_key):
        resume_run(run_id, data_import_key="another workspace's key")

    reporter = StopAfterFirstBatch()
    report = resume_run(run_id, data_import_key=CLIENT_SECRET, threads=2, reporter=reporter)
    assert (report.run_id, report.status) == (run_id, "succeeded")
    assert reporter.run_ids == [run_id]
    values = [value for _kind, value, _remove in partner.identifiers()]
    assert len(values) == len(set(values)) == 2500  # each identifier sent once
    done = show_run_view(Settings(), run_id)
    assert (done["status"], done["resumable"], done["acknowledged_batches"]) == (
        "succeeded",
        False,
        3,
    )


def test_a_killed_run_is_dead_resumable_and_resumed_to_the_end(
    partner: PartnerServer, warehouse: Warehouse, spawn: Spawn
) -> None:
    warehouse(
        "CREATE TABLE t AS SELECT 'u' || lpad(i::VARCHAR, 6, '0') AS user_ids FROM range(6000) r(i)"
    )
    partner.delay = 0.15
    process = spawn(export_args(partner, "--threads", "1"))
    wait_for(lambda: len(partner.users_requests()) >= 2, what="2 acknowledged requests")
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    [view] = list_run_views(Settings())
    assert (view["status"], view["alive"], view["resumable"]) == ("running", False, True)
    assert view["duration_s"] is None
    assert status_text(view) == "running (dead: no process holds its cohort)"

    partner.delay = 0
    report = resume_run(view["id"], data_import_key=CLIENT_SECRET)
    assert (report.run_id, report.status) == (view["id"], "succeeded")
    assert membership(partner) == {("user_ids", f"u{i:06}") for i in range(6000)}


def test_a_job_that_never_sent_cannot_be_resumed_and_says_to_run_it_again(home: Path) -> None:
    catalog = open_catalog(Settings().catalog_path)
    try:
        run_id = record_failed_run(catalog, "activation:churn", "the segment 'gone' is deleted")
    finally:
        catalog.dispose()
    record = record_of(run_id)
    assert run_view(Settings(), record)["resumable"] is False
    expected = (
        rf"^run {run_id} of activation:churn never started sending, so there is nothing "
        r"to resume \(the segment 'gone' is deleted\) "
        r"\(fix the cause, then run it again: 'cohortsync activation run churn'\)$"
    )
    with pytest.raises(ConfigError, match=expected) as refused:
        resume_run(run_id)
    assert (
        refused.value.hint == "fix the cause, then run it again: 'cohortsync activation run churn'"
    )
    with pytest.raises(ConfigError, match=expected):
        spec_of(record, Settings(), CLIENT_SECRET, None)
