"""A job's failure always has a run in the run history, and the error names it.

Saved queries and activations run an export as a job (``query:NAME``,
``activation:NAME``). When the job fails, the error carries the ``run_id``
of its run: the one the export recorded, or, when it failed before an export
run existed (bad SQL, a deleted segment or authentication), a failed run
recorded here with the error's message. A dry run records nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from cohortsync.catalog import runs
from cohortsync.errors import CohortsyncError


def record_failed_run(
    engine: sa.Engine,
    job: str,
    error: str,
    *,
    status: str = "failed",
    source: dict[str, Any] | None = None,
) -> str:
    """Record a run of ``job`` that failed before any export run existed, with its message.

    Bad SQL, a deleted query or authentication, a missing partner key: the run
    history must still say that the job ran and why it failed.
    """
    job_data: dict[str, Any] = {"job": job}
    if source is not None:
        job_data["source"] = source
    run_id = runs.start_run(
        engine,
        job=job_data,
        endpoint="",
        partner="",
        cohort_id="",
        data_import_key="",
        operation=job.split(":", 1)[0],
    )
    runs.finish_run(
        engine, run_id, "interrupted" if status == "interrupted" else "failed", error=error
    )
    return run_id


def find_run_since(engine: sa.Engine, job: str, since: datetime) -> str | None:
    """The latest run of ``job`` the export recorded at or after ``since``, if any."""
    latest = runs.list_runs(engine, job=job, limit=1)
    return latest[0].id if latest and latest[0].started_at >= since else None


@contextmanager
def failures_recorded(
    catalog: sa.Engine, job: str, *, dry_run: bool, source: dict[str, Any] | None = None
) -> Iterator[None]:
    """Give a :class:`CohortsyncError` raised in the block the ``run_id`` of its run.

    The run is the latest of ``job`` recorded since the block began, else a
    failed run recorded now (with ``source``, the query that was to run). An
    error that names a run already, or any error of a dry run, passes unchanged.
    """
    started = datetime.now(UTC)
    try:
        yield
    except CohortsyncError as error:
        if not dry_run and error.run_id is None:
            error.for_run(
                find_run_since(catalog, job, started)
                or record_failed_run(catalog, job, str(error), source=source)
            )
        raise
