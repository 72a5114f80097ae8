"""A saved job's runs are found by the run history's job column, among any number of others.

Finding a job's runs used to decode the latest runs in Python (50 for the
run a failure names, 1,000 for ``query show`` and ``activation show``), so a
job whose last run was older than that window had no history. The job's
name is now a column with an index (revision 0003).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from cohortsync.audience.activations import activation_runs
from cohortsync.catalog import runs as history
from cohortsync.catalog.db import open_catalog
from cohortsync.jobs.history import find_run_since, record_failed_run
from cohortsync.queries import query_runs
from cohortsync.settings import Settings

OTHER_RUNS = 1_200


def start(catalog: sa.Engine, job: str | None) -> str:
    return history.start_run(
        catalog,
        job={"job": job, "cohort_id": "vip"},
        endpoint="https://rest.iad-01.braze.com",
        partner="treasuredata",
        cohort_id="vip",
        data_import_key="key",
        operation="add",
    )


def test_a_jobs_latest_run_is_found_among_many_runs_of_other_jobs(home: Path) -> None:
    settings = Settings()
    catalog = open_catalog(settings.catalog_path)
    try:
        before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        query_run = start(catalog, "query:daily")
        activation_run = record_failed_run(catalog, "activation:churn", "the segment is gone")
        with catalog.begin() as conn:  # a long history of other jobs and ad-hoc exports since
            conn.execute(
                history.runs.insert(),
                [
                    {
                        "id": f"29991231T000000-{n:04x}",
                        "job": '{"job": null}' if n % 3 == 0 else f'{{"job": "query:q{n}"}}',
                        "job_name": None if n % 3 == 0 else f"query:q{n}",
                        "cohort_key": "other",
                        "endpoint": "",
                        "partner": "",
                        "cohort_id": "",
                        "key_hash": "",
                        "operation": "add",
                        "status": "succeeded",
                        "started_at": dt.datetime.now(dt.UTC) + dt.timedelta(seconds=n),
                    }
                    for n in range(OTHER_RUNS)
                ],
            )

        assert find_run_since(catalog, "query:daily", before) == query_run
        assert find_run_since(catalog, "activation:churn", before) == activation_run
        assert find_run_since(catalog, "query:daily", dt.datetime.now(dt.UTC)) is None
        assert find_run_since(catalog, "query:never", before) is None
        assert [run.id for run in query_runs("daily", settings=settings)] == [query_run]
        assert [run.id for run in activation_runs("churn", settings=settings)] == [activation_run]

        latest = start(catalog, "query:daily")
        found = history.list_runs(catalog, job="query:daily", limit=5)
        assert [run.id for run in found] == [latest, query_run]
        assert {run.job_name for run in found} == {"query:daily"}
        assert [run.id for run in query_runs("daily", limit=1, settings=settings)] == [latest]
    finally:
        catalog.dispose()


def test_the_runs_of_a_job_are_read_through_the_index(home: Path) -> None:
    """SQLite's plan of the statement ``list_runs(job=...)`` sends: the index, no table scan."""
    catalog = open_catalog(Settings().catalog_path)
    sent: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    try:
        event.listen(catalog, "before_cursor_execute", capture)
        history.list_runs(catalog, job="query:daily", limit=1)
        event.remove(catalog, "before_cursor_execute", capture)
        [(statement, parameters)] = sent
        with catalog.connect() as conn:
            plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
    finally:
        catalog.dispose()
    details = [str(row[-1]) for row in plan]
    assert any("USING INDEX ix_runs_job_name_started_at (job_name=?)" in d for d in details)
    assert not any(d.startswith("SCAN runs") for d in details)
