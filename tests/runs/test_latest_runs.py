"""The latest run of many saved jobs in one read: what the console's lists show per row.

``latest_runs`` must agree with ``list_runs(job=..., limit=1)`` for every job,
ties on the start time included, over more jobs than one statement takes.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import sqlalchemy as sa

from cohortsync.audience.activations import latest_activation_runs
from cohortsync.catalog import runs
from cohortsync.catalog.db import open_catalog
from cohortsync.jobs.run_history import latest_run_views
from cohortsync.settings import Settings

START = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def add_run(catalog: sa.Engine, job: str | None, run_id: str, minutes: int, status: str) -> None:
    runs.start_run(
        catalog,
        job={"job": job},
        endpoint="",
        partner="",
        cohort_id="",
        data_import_key="",
        operation="query",
        run_id=run_id,
    )
    runs.finish_run(catalog, run_id, status)  # type: ignore[arg-type]
    with catalog.begin() as conn:
        conn.execute(
            runs.runs.update()
            .where(runs.runs.c.id == run_id)
            .values(started_at=START + dt.timedelta(minutes=minutes))
        )


def test_each_jobs_latest_run_as_list_runs_has_it_over_many_jobs(tmp_path: Path) -> None:
    catalog = open_catalog(tmp_path / "catalog.db")
    jobs = [f"query:q{number:04d}" for number in range(1, 1201)]
    for number, job in enumerate(jobs):
        if number % 4 == 3:
            continue  # never run
        for attempt in range(number % 3 + 1):
            add_run(catalog, job, f"r{number:04d}-{attempt}", number + attempt, "succeeded")
    # q0001: two runs started at the same instant; the larger id is listed first.
    add_run(catalog, "query:q0001", "r0000-9", 5, "failed")
    add_run(catalog, "query:q0001", "r0000-8", 5, "succeeded")
    add_run(catalog, None, "adhoc", 10_000, "succeeded")

    latest = runs.latest_runs(catalog, [*jobs, "query:missing"])

    expected = {}
    for job in jobs:
        listed = runs.list_runs(catalog, job=job, limit=1)
        if listed:
            expected[job] = listed[0].id
    assert {job: record.id for job, record in latest.items()} == expected
    assert latest["query:q0001"].id == "r0000-9"
    assert latest["query:q0001"].status == "failed"
    assert "query:q0004" not in latest and "query:missing" not in latest
    assert len(latest) == 900
    assert runs.latest_runs(catalog, []) == {}
    catalog.dispose()


def test_the_console_lists_read_views_and_activation_runs_by_name(home: Path) -> None:
    settings = Settings()
    catalog = open_catalog(settings.catalog_path)
    add_run(catalog, "query:vip", "q-old", 1, "succeeded")
    add_run(catalog, "query:vip", "q-new", 2, "failed")
    add_run(catalog, "activation:fr", "a-1", 3, "succeeded")
    catalog.dispose()

    views = latest_run_views(settings, ["query:vip", "query:never"])
    assert list(views) == ["query:vip"]
    assert views["query:vip"]["id"] == "q-new"
    assert views["query:vip"]["status"] == "failed"
    assert views["query:vip"]["resumable"] is False

    by_name = latest_activation_runs(["fr", "de"], settings=settings)
    assert {name: record.id for name, record in by_name.items()} == {"fr": "a-1"}
