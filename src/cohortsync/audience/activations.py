"""Activations: a segment exported to a Braze cohort, now or on a schedule.

An activation joins a segment, a saved authentication, the export settings
of the spec (cohort id and name, operation, alias column, thread count) and
an output mapping. Everything that can be checked is checked when it is
saved: the segment and auth exist, the mapping's attributes are string
columns of the parent table (or cast on request), the output names are the
allowed ones, the cron expression and time zone parse.

A run compiles the segment against the parent table as it is then and hands
one :class:`~cohortsync.export.spec.ExportSpec` labelled ``activation:NAME``
to the export run, so activations share the checks, the run history and the
mirror snapshots of every other export.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any, get_args

import sqlalchemy as sa

from cohortsync.audience import store
from cohortsync.audience.compile import CompiledSQL
from cohortsync.audience.mapping import (
    MappingInput,
    check_mapping,
    parse_mappings,
    select_items,
)
from cohortsync.audience.segments import resolve_segment
from cohortsync.catalog import audiences, schedules
from cohortsync.catalog.audiences import ActivationRow, ParentRow
from cohortsync.catalog.runs import RunRecord, list_runs
from cohortsync.errors import ConfigError
from cohortsync.export.locks import DEFAULT_LOCK_TIMEOUT
from cohortsync.export.spec import (
    DEFAULT_THREADS,
    ExportSpec,
    MirrorOptions,
    Operation,
    Source,
)
from cohortsync.jobs.cron import check_cron, zone
from cohortsync.jobs.history import failures_recorded
from cohortsync.jobs.kinds import JobContext, JobResult
from cohortsync.jobs.leases import held_lease, new_owner
from cohortsync.settings import Settings

if TYPE_CHECKING:
    from cohortsync.export.report import ExportReport

JOB_KIND = "activation"
OPERATIONS: tuple[str, ...] = get_args(Operation)

# The settable fields of an activation, for update_activation(**changes).
_SETTABLE = frozenset(
    f.name for f in fields(ActivationRow) if f.name not in ("name", "created_at", "updated_at")
)


def job_label(name: str) -> str:
    """``activation:NAME``: the label of this activation's runs and schedule."""
    return schedules.job_label(JOB_KIND, name)


def create_activation(
    name: str,
    *,
    segment: str,
    auth: str,
    cohort_id: str,
    mapping: Iterable[MappingInput],
    cohort_name: str | None = None,
    operation: str = "add",
    alias_column: str | None = None,
    threads: int = DEFAULT_THREADS,
    cast_to_string: bool = False,
    description: str | None = None,
    schedule: str | None = None,
    timezone: str = "UTC",
    mirror_allow_empty: bool = False,
    mirror_max_remove_pct: float = 50.0,
    settings: Settings | None = None,
) -> ActivationRow:
    """Save a new activation after checking it against its segment's parent table.

    Args:
        name: the activation's name; its runs are labelled ``activation:NAME``.
        segment: the segment whose rows are exported.
        auth: a saved authentication (``cohortsync auth create``).
        cohort_id: the Braze cohort id; ``cohort_name`` defaults to it in Braze.
        mapping: ``ATTRIBUTE=OUTPUT`` pairs; outputs ``user_ids``, ``device_ids``
            or ``alias_column``.
        operation: ``add``, ``remove`` or ``mirror``.
        threads: requests in flight at once.
        cast_to_string: send non-text attributes as their text form.
        schedule: a five-field cron expression read in ``timezone``; ``None``
            runs only on demand.
        mirror_allow_empty, mirror_max_remove_pct: the guards of ``mirror``.

    Raises:
        ConfigError: any part of the definition is wrong; the message says which.
    """
    row = ActivationRow(
        name=name,
        segment=segment,
        auth_name=auth,
        cohort_id=cohort_id,
        mapping=[m.to_dict() for m in parse_mappings(mapping)],
        cohort_name=cohort_name,
        operation=operation,
        alias_column=alias_column,
        threads=threads,
        cast_to_string=cast_to_string,
        description=description,
        schedule_cron=schedule,
        schedule_timezone=timezone,
        mirror_allow_empty=mirror_allow_empty,
        mirror_max_remove_pct=mirror_max_remove_pct,
    )
    row = check_activation(row, settings=settings)
    with store.catalog(settings) as catalog:
        if audiences.get(catalog, ActivationRow, name) is not None:
            raise store.exists_already("activation", name)
        return _save(catalog, row)


def update_activation(
    name: str, *, settings: Settings | None = None, **changes: Any
) -> ActivationRow:
    """Change some fields of an activation; the result is checked like a new one.

    ``changes`` use the names of :class:`ActivationRow` (``segment``,
    ``auth_name``, ``cohort_id``, ``mapping``, ``schedule_cron``...);
    ``schedule_cron=None`` removes the schedule.

    Raises:
        ConfigError: unknown activation or field, or an invalid result.
    """
    unknown = sorted(set(changes) - _SETTABLE)
    if unknown:
        raise ConfigError(
            f"cannot change {', '.join(unknown)} of an activation",
            hint=f"settable fields: {', '.join(sorted(_SETTABLE))}",
        )
    if "mapping" in changes:
        changes["mapping"] = [m.to_dict() for m in parse_mappings(changes["mapping"])]
    current = get_activation(name, settings=settings)
    row = check_activation(replace(current, **changes), settings=settings)
    with store.catalog(settings) as catalog:
        return _save(catalog, row)


def upsert_activation(
    name: str,
    *,
    segment: str,
    auth: str,
    cohort_id: str,
    mapping: Iterable[MappingInput],
    cohort_name: str | None = None,
    operation: str = "add",
    alias_column: str | None = None,
    threads: int = DEFAULT_THREADS,
    cast_to_string: bool = False,
    description: str | None = None,
    schedule: str | None = None,
    timezone: str = "UTC",
    mirror_allow_empty: bool = False,
    mirror_max_remove_pct: float = 50.0,
    settings: Settings | None = None,
) -> bool:
    """Create the activation or bring it to this definition; ``True`` if anything changed.

    Takes the arguments of :func:`create_activation`; for ``cohortsync apply``.
    """
    row = ActivationRow(
        name=name,
        segment=segment,
        auth_name=auth,
        cohort_id=cohort_id,
        mapping=[m.to_dict() for m in parse_mappings(mapping)],
        cohort_name=cohort_name,
        operation=operation,
        alias_column=alias_column,
        threads=threads,
        cast_to_string=cast_to_string,
        description=description,
        schedule_cron=schedule,
        schedule_timezone=timezone,
        mirror_allow_empty=mirror_allow_empty,
        mirror_max_remove_pct=mirror_max_remove_pct,
    )
    row = check_activation(row, settings=settings)
    with store.catalog(settings) as catalog:
        current = audiences.get(catalog, ActivationRow, name)
        if current is not None and audiences.definition(current) == audiences.definition(row):
            return False
        _save(catalog, row)
        return True


def check_activation(row: ActivationRow, *, settings: Settings | None = None) -> ActivationRow:
    """Check a definition against the catalog and the warehouse; returns it normalised.

    Raises:
        ConfigError: the first problem found, with what to do about it.
    """
    # Imported here: cryptography is loaded only by commands that use a saved auth.
    from cohortsync.catalog.auths import get_auth

    store.check_name("activation", row.name)
    if not row.cohort_id.strip():
        raise ConfigError("the cohort id is empty", hint="pass --cohort-id, e.g. vip_customers")
    if row.operation not in OPERATIONS:
        raise ConfigError(
            f"unknown operation {row.operation!r}", hint=f"use one of {', '.join(OPERATIONS)}"
        )
    if row.threads < 1:
        raise ConfigError(f"thread count {row.threads} is below 1", hint="use --threads 1 or more")
    if not 0 <= row.mirror_max_remove_pct <= 100:
        raise ConfigError(
            f"mirror max remove percentage {row.mirror_max_remove_pct} is not within 0..100"
        )
    cron = row.schedule_cron
    if cron is not None:
        cron = check_cron(cron, row.schedule_timezone)
    else:
        zone(row.schedule_timezone)
    with store.catalog(settings) as catalog:
        get_auth(catalog, row.auth_name)
    query = resolve_segment(row.segment, settings=settings)
    check_mapping(
        parse_mappings(row.mapping),
        query.schema,
        table=query.parent.table_name,
        alias_column=row.alias_column,
        cast_to_string=row.cast_to_string,
    )
    return replace(row, schedule_cron=cron)


def _save(catalog: sa.Engine, row: ActivationRow) -> ActivationRow:
    """Store the row and keep the scheduler's table in step with its schedule."""
    saved = audiences.save(catalog, row)
    if row.schedule_cron is None:
        schedules.clear_schedule(catalog, JOB_KIND, row.name)
    else:
        schedules.set_schedule(
            catalog, JOB_KIND, row.name, row.schedule_cron, row.schedule_timezone
        )
    return saved


def get_activation(name: str, *, settings: Settings | None = None) -> ActivationRow:
    """The activation named ``name``.

    Raises:
        ConfigError: there is none.
    """
    with store.catalog(settings) as catalog:
        row = audiences.get(catalog, ActivationRow, name)
    if row is None:
        raise store.not_found("activation", name)
    return row


def list_activations(
    *, segment: str | None = None, settings: Settings | None = None
) -> list[ActivationRow]:
    """Every activation by name, or those of one segment."""
    where = {"segment": segment} if segment is not None else {}
    with store.catalog(settings) as catalog:
        return audiences.list_rows(catalog, ActivationRow, **where)


def delete_activation(name: str, *, settings: Settings | None = None) -> None:
    """Delete an activation and its schedule; its run history stays.

    Raises:
        ConfigError: there is none.
    """
    with store.catalog(settings) as catalog:
        if not audiences.delete(catalog, ActivationRow, name):
            raise store.not_found("activation", name)
        schedules.clear_schedule(catalog, JOB_KIND, name)


def activation_sql(name: str, *, settings: Settings | None = None) -> CompiledSQL:
    """The query an activation runs: mapped columns under their output names, segment rows.

    Compiled against the parent table as it is now, so a column dropped since
    the activation was saved is reported by name.
    """
    sql, _ = _compiled(get_activation(name, settings=settings), settings)
    return sql


def _compiled(row: ActivationRow, settings: Settings | None) -> tuple[CompiledSQL, ParentRow]:
    query = resolve_segment(row.segment, settings=settings)
    mappings = parse_mappings(row.mapping)
    check_mapping(
        mappings,
        query.schema,
        table=query.parent.table_name,
        alias_column=row.alias_column,
        cast_to_string=row.cast_to_string,
    )
    items = select_items(mappings, query.schema, cast_to_string=row.cast_to_string)
    return query.select(items), query.parent


def activation_spec(
    name: str,
    *,
    full_resync: bool = False,
    skip_invalid: bool = False,
    settings: Settings | None = None,
) -> ExportSpec:
    """The export an activation stands for, with its destination's keys resolved.

    Raises:
        ConfigError: unknown activation, segment, parent or auth; no partner
            API key for the auth's region; a mapping that no longer fits.
    """
    # Imported here: cryptography is loaded only by commands that use a saved auth.
    from cohortsync.catalog.auths import destination_for_auth

    row = get_activation(name, settings=settings)
    sql, parent = _compiled(row, settings)
    return ExportSpec(
        source=Source(sql=sql.sql, params=sql.params, warehouse_url=parent.warehouse_url),
        destination=destination_for_auth(row.auth_name, settings),
        cohort_id=row.cohort_id,
        cohort_name=row.cohort_name,
        operation=row.operation,  # type: ignore[arg-type]  # checked against OPERATIONS
        alias_column=row.alias_column,
        threads=row.threads,
        mirror=MirrorOptions(
            allow_empty=row.mirror_allow_empty,
            max_remove_pct=row.mirror_max_remove_pct,
            full_resync=full_resync,
        ),
        skip_invalid=skip_invalid,
        job=job_label(name),
    )


def run_activation(
    name: str,
    *,
    dry_run: bool = False,
    full_resync: bool = False,
    progress: bool | None = None,
    settings: Settings | None = None,
    lease_owner: str | None = None,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    skip_invalid: bool = False,
) -> ExportReport:
    """Export the activation's segment to its cohort now; returns the run's report.

    ``skip_invalid`` skips identifiers Braze would refuse for this run only
    (activations keep no such setting: a scheduled run fails on them).

    Holds the job's lease for the whole run, so a manual run and the scheduler
    never feed the same cohort at once; the scheduler passes the
    ``lease_owner`` it already holds it as. ``lock_timeout`` is how long to
    wait for another run feeding the same cohort (a saved query, say).

    A failure before the export run started (a deleted segment, a missing
    auth) is still recorded in the run history under ``activation:NAME``, and
    the error carries its ``run_id``.

    Raises:
        ConfigError: the activation cannot run as defined, or is running elsewhere.
        SourceError, DestinationRefused, RetriesExhausted, RunInterrupted: as
            :func:`cohortsync.export.run.run_export` raises them.
    """
    settings = settings or Settings()
    with store.catalog(settings) as catalog:
        if lease_owner is not None:
            return _run(
                catalog, name, dry_run, full_resync, progress, settings, lock_timeout, skip_invalid
            )
        with held_lease(catalog, job_label(name), new_owner("activation-run")):
            return _run(
                catalog, name, dry_run, full_resync, progress, settings, lock_timeout, skip_invalid
            )


def _run(
    catalog: sa.Engine,
    name: str,
    dry_run: bool,
    full_resync: bool,
    progress: bool | None,
    settings: Settings,
    lock_timeout: float,
    skip_invalid: bool = False,
) -> ExportReport:
    # Imported here: the export pipeline (DuckDB, HTTP) is loaded only to run one.
    from cohortsync.export.run import run_export

    with failures_recorded(catalog, job_label(name), dry_run=dry_run):
        spec = activation_spec(
            name, full_resync=full_resync, skip_invalid=skip_invalid, settings=settings
        )
        return run_export(
            spec, dry_run=dry_run, progress=progress, settings=settings, lock_timeout=lock_timeout
        )


def activation_runs(
    name: str, *, limit: int = 5, settings: Settings | None = None
) -> list[RunRecord]:
    """The last runs of an activation, latest first, from the run history."""
    label = job_label(name)
    with store.catalog(settings) as catalog:
        return list_runs(catalog, job=label, limit=limit)


# --- the scheduler's "activation" job kind ------------------------------------------


def run_activation_job(context: JobContext) -> JobResult:
    """Run an activation for the scheduler (job kind ``"activation"``)."""
    report = run_activation(
        context.name, progress=False, settings=context.settings, lease_owner=context.lease_owner
    )
    data = report.to_dict()
    return JobResult(str(data.get("status", "succeeded")), report.run_id, None, data)
