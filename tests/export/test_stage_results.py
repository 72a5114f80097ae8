"""A run's report is assembled from what its stages returned, also when it fails half way."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from cohortsync.catalog import runs
from cohortsync.catalog.db import open_catalog
from cohortsync.errors import CohortsyncError, SourceError
from cohortsync.export.run import run_export
from cohortsync.export.spec import Destination, ExportSpec, Source
from export.partner_server import CLIENT_SECRET, PartnerServer

Warehouse = Callable[[str], None]
USERS = 2500  # three batches
# The report's keys, in the order `--json` and `runs show` print them.
REPORT_KEYS = [
    "run_id", "cohort_id", "operation", "status", "rows_read", "sent", "skipped",
    "skipped_by_kind", "invalid", "ignored_columns", "batches", "requests", "retries",
    "duration_s", "identifiers_per_second", "dry_run", "skip_invalid", "concurrency", "sent_total",
]  # fmt: skip


def make_spec(partner: PartnerServer, source: Source) -> ExportSpec:
    destination = Destination(
        endpoint=partner.url, data_import_key=CLIENT_SECRET, partner_api_key=partner.partner_api_key
    )
    return ExportSpec(source=source, destination=destination, cohort_id="c", threads=1)


def test_a_send_failing_half_way_reports_and_records_what_was_acknowledged(
    partner: PartnerServer, warehouse: Warehouse, home: Path
) -> None:
    warehouse(
        f"CREATE TABLE people AS SELECT 'u' || i::VARCHAR AS user_ids FROM range({USERS}) t(i)"
    )
    partner.script("users", 201, "success")
    partner.script("users", 400, "cohort_id must be a valid string")
    with pytest.raises(
        CohortsyncError, match="HTTP 400 cohort_id must be a valid string"
    ) as failed:
        run_export(make_spec(partner, Source(table="people")))
    report = failed.value.report
    assert report is not None
    assert list(report) == REPORT_KEYS
    assert report["status"] == "failed" and report["rows_read"] == USERS
    assert report["sent"] == {"user_ids": 1000} and report["sent_total"] == 1000
    assert (report["batches"], report["requests"], report["retries"]) == (3, 3, 0)
    catalog = open_catalog(home / "catalog.db")
    try:
        record = runs.get_run(catalog, report["run_id"])
    finally:
        catalog.dispose()
    assert record.status == "failed" and record.report == report  # the run history holds the same


def test_a_run_failing_while_staging_still_names_the_columns_it_ignored(
    partner: PartnerServer, warehouse: Warehouse, home: Path
) -> None:
    warehouse("CREATE TABLE people AS SELECT 'u' || chr(1) AS user_ids, 7 AS score")
    spec = make_spec(partner, Source(table="people"))
    with pytest.raises(SourceError, match="identifier of the result Braze would refuse") as failed:
        run_export(spec)
    report = failed.value.report
    assert report is not None and report["status"] == "failed"
    assert report["ignored_columns"] == ["score"]
    assert partner.requests == []
    dry = run_export(replace(spec, skip_invalid=True), dry_run=True)
    assert dry.ignored_columns == ["score"] and dry.skipped["invalid"] == 1
