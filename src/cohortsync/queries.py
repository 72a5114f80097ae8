"""Saved queries: save, list, show, delete and run (the Data Workbench path).

A saved query optionally carries export settings. Running it runs the SQL
and, when it has an export, hands an :class:`ExportSpec` to the same
:func:`cohortsync.export.run.run_export` as ``cohortsync export``: same
checks, same report, same run history (the run's job is ``"query:NAME"``).

Every run, manual or scheduled, first takes the job's lease, so a manual
``query run`` never overlaps the scheduler running the same query.
"""

from __future__ import annotations

import datetime as dt
import logging
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa
import sqlalchemy as sa
from pydantic import Field, ValidationError

from cohortsync.catalog import queries as store
from cohortsync.catalog import runs as run_history
from cohortsync.catalog import schedules
from cohortsync.catalog.db import open_catalog
from cohortsync.catalog.rows import clamped_offset
from cohortsync.definitions import Alerts, Query, validated

# The export settings of a saved query, named here for the callers of save_query.
from cohortsync.definitions import QueryExport as QueryExport
from cohortsync.definitions.invalid import refusal
from cohortsync.errors import ConfigError, SourceError
from cohortsync.export.report import ExportReport
from cohortsync.export.reporting import RunReporter
from cohortsync.export.spec import Source
from cohortsync.export.stopping import StopToken
from cohortsync.jobs.alerts import alerted
from cohortsync.jobs.cron import next_run
from cohortsync.jobs.history import failures_recorded
from cohortsync.jobs.kinds import JobContext, JobResult
from cohortsync.jobs.leases import held_lease, new_owner
from cohortsync.settings import Settings

log = logging.getLogger(__name__)

KIND = "query"
PREVIEW_ROWS = 10


class SavedQuery(Query):
    """A saved query as stored, with its schedule's state."""

    created_at: dt.datetime = Field(exclude=True)
    updated_at: dt.datetime = Field(exclude=True)
    last_run_id: str | None = Field(default=None, exclude=True)
    last_status: str | None = Field(default=None, exclude=True)
    next_run: dt.datetime | None = Field(default=None, exclude=True)

    @property
    def job(self) -> str:
        return schedules.job_label(KIND, self.name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "sql": self.sql,
            "warehouse_url": self.warehouse,
            "export": self.export.model_dump() if self.export else None,
            "schedule": self.schedule,
            "timezone": self.timezone if self.schedule else None,
            "alerts": self.alerts.model_dump() if self.alerts else None,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "last_run_id": self.last_run_id,
            "last_status": self.last_status,
            "next_run": self.next_run.isoformat() if self.next_run else None,
        }


def _catalog(settings: Settings | None) -> tuple[Settings, sa.Engine]:
    settings = settings or Settings()
    return settings, open_catalog(settings.catalog_path)


def _saved(row: store.QueryRow, schedule: schedules.Schedule | None) -> SavedQuery:
    fields = {
        "name": row.name,
        "sql": row.sql,
        "warehouse": row.warehouse_url,
        "alerts": row.alerts,
    }
    state = {
        "schedule": schedule.cron if schedule else None,
        "timezone": schedule.timezone if schedule else "UTC",
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "last_run_id": schedule.last_run_id if schedule else None,
        "last_status": schedule.last_status if schedule else None,
        "next_run": next_run(schedule, dt.datetime.now(dt.UTC)) if schedule else None,
    }
    return validated(
        SavedQuery, {**fields, "export": row.export, **state}, subject=f"saved query {row.name!r}"
    )


# --- save / get / list / delete ---------------------------------------------------


SaveOutcome = Literal["created", "updated", "unchanged"]


def check_saved_sql(name: str, sql: str, warehouse_url: str) -> None:
    """Refuse now SQL that every run would refuse: one read-only statement or nothing.

    Raises:
        ConfigError: ``sql`` is not exactly one query (see
            :mod:`cohortsync.warehouse.statements`).
    """
    # Imported here: DuckDB is loaded only by commands that check or run SQL.
    from cohortsync.warehouse.query_check import check_query_for

    try:
        check_query_for(sql, warehouse_url)
    except SourceError as error:
        raise ConfigError(f"query {name!r} is refused: {error.message}", hint=error.hint) from None


def save_query(
    name: str,
    sql: str,
    *,
    export: QueryExport | None = None,
    schedule: str | None = None,
    timezone: str = "UTC",
    warehouse_url: str | None = None,
    alerts: Alerts | dict[str, Any] | None = None,
    settings: Settings | None = None,
    now: dt.datetime | None = None,
) -> SaveOutcome:
    """Create or replace the saved query ``name``: ``created``, ``updated`` or ``unchanged``.

    The definition is replaced whole: a save without ``schedule`` unschedules
    the query, one without ``alerts`` drops its alerts. See :func:`save`.
    """
    fields = {
        "name": name,
        "sql": sql,
        "warehouse": warehouse_url,
        "export": export,
        "alerts": alerts,
    }
    query = validated(Query, {**fields, "schedule": schedule, "timezone": timezone})
    return save(query, settings=settings, now=now)


def _export_to_store(
    export: QueryExport | None, stored: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The export settings to store: the stored ones when they mean the same.

    A query saved by an earlier release lacks the keys added since (their
    defaults); re-saving the same settings keeps that JSON, so the save is
    ``unchanged`` rather than an update that changes nothing.
    """
    if export is None:
        return None
    if stored is not None:
        try:
            if QueryExport.model_validate(stored) == export:
                return stored
        except ValidationError:
            pass  # stored by hand or by a looser release: rewritten whole
    return export.model_dump()


def save(
    query: Query, *, settings: Settings | None = None, now: dt.datetime | None = None
) -> SaveOutcome:
    """Create or replace a saved query: ``created``, ``updated`` or ``unchanged``.

    The export's authentication must exist, the warehouse must keep its data,
    and the SQL must be one read-only statement, so a bad definition fails
    now rather than at 3 a.m. in the scheduler.
    """
    # Imported here: DuckDB is loaded only by commands that save or run SQL.
    from cohortsync.warehouse.connect import require_stored_warehouse

    name = query.name
    warehouse_url = require_stored_warehouse(query.warehouse, f"saved query {name!r}")
    settings = settings or Settings()
    check_saved_sql(name, query.sql, warehouse_url or settings.warehouse_url)
    settings, catalog = _catalog(settings)
    try:
        if query.export is not None:
            # Imported here: cryptography is loaded only when an export names an auth.
            from cohortsync.catalog.auths import get_auth

            get_auth(catalog, query.export.auth)
        stored = store.fetch_query(catalog, name)
        existed = stored is not None
        changed = store.store_query(
            catalog,
            name=name,
            sql=query.sql,
            warehouse_url=warehouse_url,
            export=_export_to_store(query.export, stored.export if stored else None),
            alerts=query.alerts.model_dump() if query.alerts else None,
        )
        scheduled = query.scheduled
        if scheduled is not None:
            changed |= schedules.set_schedule(
                catalog, KIND, name, scheduled.cron, scheduled.timezone, now=now
            )
        else:
            changed |= schedules.clear_schedule(catalog, KIND, name)
    finally:
        catalog.dispose()
    if not existed:
        return "created"
    return "updated" if changed else "unchanged"


def get_query(name: str, *, settings: Settings | None = None) -> SavedQuery:
    """The saved query ``name``.

    Raises:
        ConfigError: no saved query has that name.
    """
    _, catalog = _catalog(settings)
    try:
        row = store.fetch_query(catalog, name)
        if row is None:
            raise _unknown(name)
        return _saved(row, schedules.get_schedule(catalog, KIND, name))
    finally:
        catalog.dispose()


def list_queries(*, settings: Settings | None = None) -> list[SavedQuery]:
    """Every saved query, by name."""
    _, catalog = _catalog(settings)
    try:
        scheduled = {s.name: s for s in schedules.list_schedules(catalog) if s.kind == KIND}
        return [_saved(row, scheduled.get(row.name)) for row in store.fetch_queries(catalog)]
    finally:
        catalog.dispose()


@dataclass(frozen=True)
class QueryPage:
    """One page of the saved queries, by name, and how many match in all."""

    queries: list[SavedQuery]
    total: int
    offset: int
    limit: int


def page_of_queries(
    *,
    offset: int = 0,
    limit: int = 50,
    name_contains: str = "",
    settings: Settings | None = None,
) -> QueryPage:
    """The saved queries from ``offset``, at most ``limit``, whose name contains ``name_contains``.

    For a list people read (the console's *Queries*): only the page's
    queries are built whole, with their schedule's next run, so a list over
    thousands of saved queries costs one page of them.
    """
    _, catalog = _catalog(settings)
    try:
        wanted = name_contains.strip().lower()
        rows = [row for row in store.fetch_queries(catalog) if wanted in row.name.lower()]
        offset = clamped_offset(offset, len(rows))
        shown = rows[offset : offset + max(limit, 1)]
        scheduled = {s.name: s for s in schedules.list_schedules(catalog) if s.kind == KIND}
        page = [_saved(row, scheduled.get(row.name)) for row in shown]
    finally:
        catalog.dispose()
    return QueryPage(page, len(rows), offset, limit)


def delete_query(name: str, *, settings: Settings | None = None) -> None:
    """Delete a saved query and its schedule (its past runs stay in the history).

    Raises:
        ConfigError: no saved query has that name.
    """
    _, catalog = _catalog(settings)
    try:
        if not store.remove_query(catalog, name):
            raise _unknown(name)
        schedules.clear_schedule(catalog, KIND, name)
    finally:
        catalog.dispose()


def _unknown(name: str) -> ConfigError:
    return ConfigError(
        f"no saved query named {name!r}",
        hint="see 'cohortsync query list', or save it with 'cohortsync query save'",
    )


# --- run ---------------------------------------------------------------------------


@dataclass
class QueryRunResult:
    """What ``query run`` did: the export report, or the row count and a preview."""

    name: str
    status: str
    run_id: str | None
    report: dict[str, Any] | None = None
    rows: int | None = None
    columns: list[str] = field(default_factory=list)
    preview: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.name,
            "status": self.status,
            "run_id": self.run_id,
            "exported": self.report is not None,
            "report": self.report,
            "rows": self.rows,
            "columns": self.columns,
            "preview": self.preview,
        }


def run_query(
    name: str,
    *,
    dry_run: bool = False,
    full_resync: bool = False,
    reporter: RunReporter | None = None,
    settings: Settings | None = None,
    lease_owner: str | None = None,
    stop: StopToken | None = None,
) -> QueryRunResult:
    """Run the saved query ``name`` and, when it has an export, export its result.

    ``reporter`` and ``stop`` are passed on to the export
    (:func:`cohortsync.export.run.run_export`).

    Takes the job's lease for the whole run, unless the caller (the
    scheduler) already holds it and says so with ``lease_owner``. A dry run
    sends and records nothing, so it needs no lease.

    Raises:
        ConfigError: unknown query or authentication, or the job runs elsewhere.
        SourceError: the query failed; a failed run is in the history.
        CohortsyncError: the export failed; its run in the history says why.
            The error's ``run_id`` names that run.
    """
    settings, catalog = _catalog(settings)
    try:
        row = store.fetch_query(catalog, name)
        if row is None:
            raise _unknown(name)
        lease: AbstractContextManager[object] = (
            nullcontext()  # the scheduler holds it already, or a dry run needs none
            if lease_owner is not None or dry_run
            else held_lease(catalog, schedules.job_label(KIND, name), new_owner("query-run"))
        )
        with lease:
            return _run(catalog, settings, row, dry_run, full_resync, reporter, stop)
    finally:
        catalog.dispose()


def _run(
    catalog: sa.Engine,
    settings: Settings,
    row: store.QueryRow,
    dry_run: bool,
    full_resync: bool,
    reporter: RunReporter | None,
    stop: StopToken | None = None,
) -> QueryRunResult:
    # Imported here: the export pipeline (DuckDB, HTTP) is loaded only to run one.
    from cohortsync.export.run import run_export

    job = schedules.job_label(KIND, row.name)
    source = Source(sql=row.sql, warehouse_url=row.warehouse_url)
    alerts = _alerts_of(row)
    with (
        alerted(catalog, job, alerts, dry_run=dry_run, settings=settings) as hold,
        failures_recorded(catalog, job, dry_run=dry_run, source=_source_dict(source)),
    ):
        if row.export is None:
            return _run_without_export(catalog, settings, row, source, dry_run)
        # Imported here: cryptography is loaded only by commands that use a saved auth.
        from cohortsync.export.destinations import export_spec

        export = validated(QueryExport, row.export, subject=f"saved query {row.name!r}")
        spec = export_spec(export, source, job=job, full_resync=full_resync, settings=settings)
        report = run_export(
            spec, dry_run=dry_run, reporter=reporter, settings=settings, stop=stop, hold=hold
        )
    return QueryRunResult(row.name, report.status, report.run_id, report.to_dict())


def _alerts_of(row: store.QueryRow) -> Alerts | None:
    """The saved query's alerts; ``None`` when it has none, or when they no longer read.

    Alerts that a looser release stored and this one refuses are skipped, with
    a warning, rather than failing a run that would otherwise work.
    """
    if row.alerts is None:
        return None
    try:
        return Alerts.model_validate(row.alerts)
    except ValidationError as error:
        log.warning("saved query %r: its alerts are skipped: %s", row.name, refusal(error))
        return None


def plan_export(
    sql: str,
    export: QueryExport,
    *,
    name: str | None = None,
    warehouse_url: str | None = None,
    settings: Settings | None = None,
) -> ExportReport:
    """The dry run of a query's export as defined now, saved or not: the exact plan, nothing sent.

    What ``query run --dry-run`` reports for a saved query, for SQL and export
    settings that are still being edited (the console's *Dry run*): the same
    spec as a run of the saved query (``name`` gives its job label), staged
    and planned by :func:`cohortsync.export.run.run_export` with
    ``dry_run=True``. Nothing is recorded; the report's ``plan`` holds the
    counts by kind, the requests and the first body with its keys masked.

    Raises:
        ConfigError: unknown authentication, or a refused export setting.
        SourceError: the query failed or its result has no identifier column.
    """
    # Imported here: the export pipeline (DuckDB, HTTP, cryptography) is loaded only to plan.
    from cohortsync.export.destinations import export_spec
    from cohortsync.export.run import run_export

    settings = settings or Settings()
    job = schedules.job_label(KIND, name or "unsaved")
    source = Source(sql=sql, warehouse_url=warehouse_url)
    spec = export_spec(export, source, job=job, settings=settings)
    return run_export(spec, dry_run=True, settings=settings)


def _run_without_export(
    catalog: sa.Engine,
    settings: Settings,
    row: store.QueryRow,
    source: Source,
    dry_run: bool,
) -> QueryRunResult:
    """Run a query that has no export: count its rows and keep a preview."""
    # Imported here: DuckDB is loaded only to run a query.
    from cohortsync.export.source import stream_source

    rows = 0
    preview: list[dict[str, Any]] = []
    with stream_source(source, settings) as reader:
        columns = list(reader.schema.names)
        for batch in reader:
            if len(preview) < PREVIEW_ROWS:
                preview.extend(
                    pa.Table.from_batches([batch]).slice(0, PREVIEW_ROWS - len(preview)).to_pylist()
                )
            rows += batch.num_rows
    run_id = None
    if not dry_run:
        run_id = _record_query_run(catalog, schedules.job_label(KIND, row.name), source, rows)
    return QueryRunResult(row.name, "succeeded", run_id, None, rows, columns, preview)


# --- run history of a query without export ----------------------------------------


def _source_dict(source: Source) -> dict[str, Any]:
    return {"sql": source.sql, "warehouse_url": source.warehouse_url}


def _record_query_run(catalog: sa.Engine, job: str, source: Source, rows: int) -> str:
    """A succeeded run of a query without export: the history shows it ran, and how many rows."""
    run_id = run_history.start_run(
        catalog,
        job={"job": job, "source": _source_dict(source)},
        endpoint="",
        partner="",
        cohort_id="",
        data_import_key="",
        operation="query",
    )
    run_history.finish_run(catalog, run_id, "succeeded", report={"job": job, "rows": rows})
    return run_id


# --- the scheduler's "query" job kind ------------------------------------------------


def run_query_job(context: JobContext) -> JobResult:
    """Run a saved query for the scheduler (job kind ``"query"``)."""
    result = run_query(
        context.name,
        reporter=context.reporter,
        settings=context.settings,
        lease_owner=context.lease_owner,
        stop=context.stop,
    )
    return JobResult(result.status, result.run_id, None, result.report or result.to_dict())


def query_runs(name: str, *, limit: int = 5, settings: Settings | None = None) -> list[Any]:
    """The last runs of a saved query, latest first, from the run history."""
    label = schedules.job_label(KIND, name)
    _, catalog = _catalog(settings)
    try:
        return run_history.list_runs(catalog, job=label, limit=limit)
    finally:
        catalog.dispose()
