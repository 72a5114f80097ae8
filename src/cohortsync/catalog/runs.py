"""Export run history and batch checkpoints.

A run is recorded before anything is sent and finished with its report or
its error, so ``cohortsync runs`` can always tell what happened. Each
acknowledged batch of ``cohorts/users`` requests is recorded in
``run_batches``: batch numbers are stable positions in the run's planned
changes, so a resumed run sends exactly the batches that were never
acknowledged. A checkpoint is written only after the server's 2xx.

Secrets never reach these tables: the job is ``ExportSpec.to_public_dict()``
and the cohort key carries a hash of the data import key, not the key.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import orjson
import sqlalchemy as sa

from cohortsync.catalog.db import metadata, stored_utc
from cohortsync.catalog.rows import first_row, update_rows
from cohortsync.errors import ConfigError
from cohortsync.identity import CohortKey, key_fingerprint

RunStatus = Literal["running", "succeeded", "failed", "interrupted"]

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("job", sa.Text, nullable=False),  # the public spec, JSON
    # The saved job's name ("query:NAME", "activation:NAME"), null for an ad-hoc export:
    # the spec's "job" key, kept in a column so a job's runs are found through the index.
    sa.Column("job_name", sa.String, nullable=True),
    sa.Column("cohort_key", sa.String, nullable=False, index=True),
    sa.Column("endpoint", sa.String, nullable=False),
    sa.Column("partner", sa.String, nullable=False),
    sa.Column("cohort_id", sa.String, nullable=False),
    sa.Column("key_hash", sa.String, nullable=False),
    sa.Column("operation", sa.String, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("report", sa.Text),  # ExportReport.to_dict(), JSON
    sa.Column("error", sa.Text),
    sa.Index("ix_runs_job_name_started_at", "job_name", "started_at"),
    # The history's order (latest first) and one cohort's runs, without sorting every run.
    sa.Index("ix_runs_started_at_id", "started_at", "id"),
    sa.Index("ix_runs_cohort_id_started_at", "cohort_id", "started_at"),
)

run_batches = sa.Table(
    "run_batches",
    metadata,
    sa.Column("run_id", sa.String, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("batch_number", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("count", sa.Integer, nullable=False),
)


@dataclass(frozen=True)
class RunRecord:
    """One export run as the catalog holds it."""

    id: str
    job: dict[str, Any]
    cohort_key: str
    operation: str
    status: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    report: dict[str, Any] | None
    error: str | None
    endpoint: str = ""
    partner: str = ""
    cohort_id: str = ""
    key_hash: str = ""
    job_name: str | None = None

    @property
    def unfinished(self) -> bool:
        """Whether the run may still be resumed: it never reached succeeded or failed."""
        return self.status in ("running", "interrupted")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "job": self.job,
            "cohort_key": self.cohort_key,
            "operation": self.operation,
            "status": self.status,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "report": self.report,
            "error": self.error,
        }


def new_run_id() -> str:
    """A short id that sorts by start time: ``20261128T110512-3f9a``."""
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(2)


key_hash = key_fingerprint


def cohort_key(endpoint: str, partner: str, cohort_id: str, data_import_key: str) -> str:
    """Which Braze cohort a run feeds: the :class:`CohortKey` that locks and snapshots use."""
    return CohortKey.for_destination(endpoint, data_import_key, partner, cohort_id).history_key


def start_run(
    catalog: sa.Engine,
    *,
    job: dict[str, Any],
    endpoint: str,
    partner: str,
    cohort_id: str,
    data_import_key: str,
    operation: str,
    run_id: str | None = None,
) -> str:
    """Record a new run as ``running`` and return its id.

    ``job`` is the run's public spec; its ``"job"`` key (the saved job's
    name, absent or null for an ad-hoc export) is also kept in ``job_name``.
    """
    run_id = run_id or new_run_id()
    name = job.get("job")
    with catalog.begin() as conn:
        conn.execute(
            runs.insert().values(
                id=run_id,
                job=orjson.dumps(job).decode(),
                job_name=name if isinstance(name, str) and name else None,
                cohort_key=cohort_key(endpoint, partner, cohort_id, data_import_key),
                endpoint=endpoint,
                partner=partner,
                cohort_id=cohort_id,
                key_hash=key_hash(data_import_key),
                operation=operation,
                status="running",
                started_at=dt.datetime.now(dt.UTC),
            )
        )
    return run_id


class AckRecorder:
    """Records acknowledged batches of one run over one held connection.

    A run may record every acknowledgement as it arrives (thousands per
    run); holding one DBAPI connection with a prepared statement makes each
    record a plain SQLite insert and commit instead of a pool checkout and a
    statement compile. Idempotent: recording a batch twice keeps one row.
    """

    _INSERT = "INSERT OR IGNORE INTO run_batches (run_id, batch_number, count) VALUES (?, ?, ?)"

    def __init__(self, catalog: sa.Engine, run_id: str) -> None:
        self.run_id = run_id
        self._connection = catalog.raw_connection()

    def record(self, acks: Iterable[tuple[int, int]]) -> None:
        """Record ``(batch_number, identifier count)`` pairs and commit."""
        rows = [(self.run_id, number, count) for number, count in acks]
        if rows:
            cursor = self._connection.cursor()
            try:
                cursor.executemany(self._INSERT, rows)
            finally:
                cursor.close()
            self._connection.commit()

    def close(self) -> None:
        self._connection.close()


def acknowledged_batches(catalog: sa.Engine, run_id: str) -> set[int]:
    """The batch numbers of ``run_id`` the server has acknowledged."""
    with catalog.connect() as conn:
        result = conn.execute(
            sa.select(run_batches.c.batch_number).where(run_batches.c.run_id == run_id)
        )
        return {row[0] for row in result}


def finish_run(
    catalog: sa.Engine,
    run_id: str,
    status: RunStatus,
    report: dict[str, Any] | None = None,
    error: str | None = None,
) -> None:
    """Close a run with its final status, report counts and error line."""
    update_rows(
        catalog,
        runs,
        runs.c.id == run_id,
        status=status,
        finished_at=dt.datetime.now(dt.UTC),
        report=orjson.dumps(report).decode() if report is not None else None,
        error=error,
    )


def _record(row: sa.Row[Any]) -> RunRecord:
    return RunRecord(
        id=row.id,
        job=orjson.loads(row.job),
        cohort_key=row.cohort_key,
        operation=row.operation,
        status=row.status,
        started_at=stored_utc(row.started_at) or dt.datetime.now(dt.UTC),
        finished_at=stored_utc(row.finished_at),
        report=orjson.loads(row.report) if row.report else None,
        error=row.error,
        endpoint=row.endpoint,
        partner=row.partner,
        cohort_id=row.cohort_id,
        key_hash=row.key_hash,
        job_name=row.job_name,
    )


def get_run(catalog: sa.Engine, run_id: str) -> RunRecord:
    """One run by id.

    Raises:
        ConfigError: no run has that id.
    """
    row = first_row(catalog, runs, runs.c.id == run_id)
    if row is None:
        raise ConfigError(f"no export run with id {run_id!r}", hint="see 'cohortsync runs list'")
    return _record(row)


def list_runs(
    catalog: sa.Engine,
    *,
    cohort_key: str | None = None,
    status: str | None = None,
    limit: int = 50,
    cohort_id: str | None = None,
    job: str | None = None,
    before: str | None = None,
) -> list[RunRecord]:
    """The latest runs first, optionally of one cohort (key or id), one status or one job.

    ``job`` is a saved job's name (``"query:NAME"``); its runs are read
    through the index on ``job_name`` and the start time, however many runs
    of other jobs the history holds.

    ``before`` is a run's id: only the runs listed after it (started earlier,
    or at the same time with a smaller id) are returned, so a page of the
    history continues where the previous one ended without counting the runs
    above it, as an offset would. An id no run has returns nothing.
    """
    query = sa.select(runs).order_by(runs.c.started_at.desc(), runs.c.id.desc()).limit(limit)
    if before is not None:
        anchor = sa.select(runs.c.started_at).where(runs.c.id == before).scalar_subquery()
        query = query.where(
            sa.or_(
                runs.c.started_at < anchor,
                sa.and_(runs.c.started_at == anchor, runs.c.id < before),
            )
        )
    if job is not None:
        query = query.where(runs.c.job_name == job)
    if cohort_key is not None:
        query = query.where(runs.c.cohort_key == cohort_key)
    if cohort_id is not None:
        query = query.where(runs.c.cohort_id == cohort_id)
    if status is not None:
        query = query.where(runs.c.status == status)
    with catalog.connect() as conn:
        return [_record(row) for row in conn.execute(query)]


# Jobs per statement of latest_runs: well under SQLite's limit on bound parameters.
_JOBS_PER_QUERY = 500


def latest_runs(catalog: sa.Engine, jobs: Iterable[str]) -> dict[str, RunRecord]:
    """The latest run of each saved job in ``jobs`` (``"query:NAME"``), by job; none if never run.

    One statement per 500 jobs, each job's latest run found through the
    index on ``job_name`` and the start time (no other run of the job is
    read): a list of a thousand saved queries shows each one's last run
    without a thousand queries of the history.
    """
    wanted = sorted(set(jobs))
    latest: dict[str, RunRecord] = {}
    with catalog.connect() as conn:
        for start in range(0, len(wanted), _JOBS_PER_QUERY):
            chunk = wanted[start : start + _JOBS_PER_QUERY]
            named = (
                sa.select(runs.c.job_name.label("job"))
                .where(runs.c.job_name.in_(chunk))
                .distinct()
                .subquery("named")
            )
            latest_of_job = runs.alias("latest_of_job")
            first = sa.select(
                sa.select(latest_of_job.c.id)
                .where(latest_of_job.c.job_name == named.c.job)
                .order_by(latest_of_job.c.started_at.desc(), latest_of_job.c.id.desc())
                .limit(1)
                .scalar_subquery()
            ).select_from(named)
            for row in conn.execute(sa.select(runs).where(runs.c.id.in_(first))):
                record = _record(row)
                latest[str(record.job_name)] = record
    return latest


def run_facets(catalog: sa.Engine) -> tuple[list[str], list[str]]:
    """The saved jobs and the cohort ids the history has runs of, each sorted: what to filter by."""
    with catalog.connect() as conn:
        jobs = conn.execute(
            sa.select(runs.c.job_name).where(runs.c.job_name.is_not(None)).distinct()
        ).scalars()
        cohorts = conn.execute(
            sa.select(runs.c.cohort_id).where(runs.c.cohort_id != "").distinct()
        ).scalars()
        return sorted(jobs), sorted(cohorts)


def reopen_run(catalog: sa.Engine, run_id: str) -> None:
    """Mark an unfinished run ``running`` again, as it resumes; its checkpoints stay."""
    update_rows(catalog, runs, runs.c.id == run_id, status="running", finished_at=None, error=None)
