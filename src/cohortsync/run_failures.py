"""A job's failure always has a run in the run history, and the error names it.

Saved queries and activations run an export as a job (``query:NAME``,
``activation:NAME``). When the job fails, the error carries the ``run_id``
of its run: the one the export recorded, or, when it failed before an export
run existed (bad SQL, a deleted segment or authentication), a failed run
recorded here with the error's message. A dry run records nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from cohortsync.errors import CohortsyncError


@contextmanager
def failures_recorded(
    catalog: sa.Engine, job: str, *, dry_run: bool, source: dict[str, Any] | None = None
) -> Iterator[None]:
    """Give a :class:`CohortsyncError` raised in the block the ``run_id`` of its run.

    The run is the latest of ``job`` recorded since the block began, else a
    failed run recorded now (with ``source``, the query that was to run). An
    error that names a run already, or any error of a dry run, passes unchanged.
    """
    from cohortsync.scheduler import find_run_since, record_failed_run

    started = dt.datetime.now(dt.UTC)
    try:
        yield
    except CohortsyncError as error:
        if not dry_run and getattr(error, "run_id", None) is None:
            error.run_id = find_run_since(  # type: ignore[attr-defined]
                catalog, job, started
            ) or record_failed_run(catalog, job, str(error), source=source)
        raise
