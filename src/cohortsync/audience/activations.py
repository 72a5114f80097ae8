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
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from cohortsync.audience import store
from cohortsync.audience.compile import CompiledSQL
from cohortsync.audience.mapping import check_mapping, select_items
from cohortsync.audience.segments import resolve_segment
from cohortsync.catalog import audiences, schedules
from cohortsync.catalog.audiences import SavedActivation, SavedParent
from cohortsync.catalog.runs import RunRecord, latest_runs, list_runs
from cohortsync.definitions import Activation, Alerts, validated
from cohortsync.errors import ConfigError
from cohortsync.export.locks import DEFAULT_LOCK_TIMEOUT
from cohortsync.export.reporting import RunReporter
from cohortsync.export.spec import ExportSpec, Source
from cohortsync.export.stopping import StopToken
from cohortsync.jobs.alerts import alerted
from cohortsync.jobs.history import failures_recorded
from cohortsync.jobs.kinds import JobContext, JobResult
from cohortsync.jobs.leases import held_lease, new_owner
from cohortsync.settings import Settings

if TYPE_CHECKING:
    from cohortsync.export.report import ExportReport

JOB_KIND = "activation"

# The fields update_activation(**changes) may change: all but the name.
_SETTABLE = frozenset(Activation.model_fields) - {"name"}


def job_label(name: str) -> str:
    """``activation:NAME``: the label of this activation's runs and schedule."""
    return schedules.job_label(JOB_KIND, name)


def create_activation(
    activation: Activation, *, settings: Settings | None = None
) -> SavedActivation:
    """Save a new activation after checking it against its segment's parent table.

    Raises:
        ConfigError: the name is taken, or the auth, the segment or the
            mapping does not fit (:func:`check_activation`).
    """
    check_activation(activation, settings=settings)
    with store.catalog(settings) as catalog:
        store.refuse_taken(catalog, SavedActivation, activation.name)
        return _save(catalog, activation)


def update_activation(
    name: str, *, settings: Settings | None = None, **changes: Any
) -> SavedActivation:
    """Change some fields of an activation; the result is checked like a new one.

    ``changes`` use the fields of :class:`~cohortsync.definitions.Activation`
    (``segment``, ``auth``, ``threads``, ``mapping``, ``schedule``...);
    ``schedule=None`` removes the schedule.

    Raises:
        ConfigError: unknown activation or field, or an invalid result.
    """
    unknown = sorted(set(changes) - _SETTABLE)
    if unknown:
        raise ConfigError(
            f"cannot change {', '.join(unknown)} of an activation",
            hint=f"settable fields: {', '.join(sorted(_SETTABLE))}",
        )
    current = get_activation(name, settings=settings)
    activation = validated(Activation, {**current.model_dump(), **changes})
    check_activation(activation, settings=settings)
    with store.catalog(settings) as catalog:
        return _save(catalog, activation)


def upsert_activation(activation: Activation, *, settings: Settings | None = None) -> bool:
    """Create the activation or bring it to this definition; ``True`` if anything changed."""
    check_activation(activation, settings=settings)
    with store.catalog(settings) as catalog:
        current = audiences.get(catalog, SavedActivation, activation.name)
        if current is not None and current.model_dump() == activation.model_dump():
            return False
        _save(catalog, activation)
        return True


def check_activation(activation: Activation, *, settings: Settings | None = None) -> None:
    """Check a definition against the catalog and the warehouse.

    Its own rules (bounds, mapping names, cron) held when it was built; here
    the auth and the segment must exist and each mapped attribute must be a
    column the export can read.

    Raises:
        ConfigError: the first problem found, with what to do about it.
    """
    # Imported here: cryptography is loaded only by commands that use a saved auth.
    from cohortsync.catalog.auths import get_auth

    with store.catalog(settings) as catalog:
        get_auth(catalog, activation.auth)
    query = resolve_segment(activation.segment, settings=settings)
    check_mapping(activation, query.schema, table=query.parent.table)


def _save(catalog: sa.Engine, activation: Activation) -> SavedActivation:
    """Store the activation and keep the scheduler's table in step with its schedule."""
    saved = audiences.save(catalog, SavedActivation, activation)
    scheduled = activation.scheduled
    if scheduled is None:
        schedules.clear_schedule(catalog, JOB_KIND, activation.name)
    else:
        schedules.set_schedule(
            catalog, JOB_KIND, activation.name, scheduled.cron, scheduled.timezone
        )
    return saved


def get_activation(name: str, *, settings: Settings | None = None) -> SavedActivation:
    """The activation named ``name``.

    Raises:
        ConfigError: there is none.
    """
    return store.get_saved(SavedActivation, name, settings)


def list_activations(
    *, segment: str | None = None, settings: Settings | None = None
) -> list[SavedActivation]:
    """Every activation by name, or those of one segment."""
    return store.list_saved(SavedActivation, settings, segment=segment)


def delete_activation(name: str, *, settings: Settings | None = None) -> None:
    """Delete an activation and its schedule; its run history stays.

    Raises:
        ConfigError: there is none.
    """
    with store.catalog(settings) as catalog:
        if not audiences.delete(catalog, SavedActivation, name):
            raise store.not_found("activation", name)
        schedules.clear_schedule(catalog, JOB_KIND, name)


def activation_sql(name: str, *, settings: Settings | None = None) -> CompiledSQL:
    """The query an activation runs: mapped columns under their output names, segment rows.

    Compiled against the parent table as it is now, so a column dropped since
    the activation was saved is reported by name.
    """
    sql, _ = _compiled(get_activation(name, settings=settings), settings)
    return sql


def _compiled(activation: Activation, settings: Settings | None) -> tuple[CompiledSQL, SavedParent]:
    query = resolve_segment(activation.segment, settings=settings)
    check_mapping(activation, query.schema, table=query.parent.table)
    return query.select(select_items(activation, query.schema)), query.parent


def activation_spec(
    name: str,
    *,
    full_resync: bool = False,
    skip_invalid: bool = False,
    settings: Settings | None = None,
) -> ExportSpec:
    """The export an activation stands for, with its destination's keys resolved.

    The run skips invalid identifiers when the activation says so, or when
    ``skip_invalid`` asks it for this run.

    Raises:
        ConfigError: unknown activation, segment, parent or auth; no partner
            API key for the auth's region; a mapping that no longer fits.
    """
    # Imported here: cryptography is loaded only by commands that use a saved auth.
    from cohortsync.export.destinations import export_spec

    activation = get_activation(name, settings=settings)
    sql, parent = _compiled(activation, settings)
    return export_spec(
        activation,
        Source(sql=sql.sql, params=sql.params, warehouse_url=parent.warehouse),
        job=job_label(name),
        full_resync=full_resync,
        skip_invalid=skip_invalid,
        settings=settings,
    )


def run_activation(
    name: str,
    *,
    dry_run: bool = False,
    full_resync: bool = False,
    reporter: RunReporter | None = None,
    settings: Settings | None = None,
    lease_owner: str | None = None,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    skip_invalid: bool = False,
    stop: StopToken | None = None,
) -> ExportReport:
    """Export the activation's segment to its cohort now; returns the run's report.

    ``reporter`` and ``stop`` are passed on to the export
    (:func:`cohortsync.export.run.run_export`).

    ``skip_invalid`` skips identifiers Braze would refuse in this run even
    when the activation does not save that setting; a scheduled run follows
    the saved ``skip_invalid``.

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
        lease: AbstractContextManager[object] = (
            nullcontext()  # the scheduler holds it already
            if lease_owner is not None
            else held_lease(catalog, job_label(name), new_owner("activation-run"))
        )
        with lease:
            return _run(
                catalog,
                name,
                dry_run,
                full_resync,
                reporter,
                settings,
                lock_timeout,
                skip_invalid,
                stop=stop,
            )


def _run(
    catalog: sa.Engine,
    name: str,
    dry_run: bool,
    full_resync: bool,
    reporter: RunReporter | None,
    settings: Settings,
    lock_timeout: float,
    skip_invalid: bool = False,
    *,
    stop: StopToken | None = None,
) -> ExportReport:
    # Imported here: the export pipeline (DuckDB, HTTP) is loaded only to run one.
    from cohortsync.export.run import run_export

    job = job_label(name)
    with (
        alerted(
            catalog, job, _alerts_of(name, settings), dry_run=dry_run, settings=settings
        ) as hold,
        failures_recorded(catalog, job, dry_run=dry_run),
    ):
        spec = activation_spec(
            name, full_resync=full_resync, skip_invalid=skip_invalid, settings=settings
        )
        return run_export(
            spec,
            dry_run=dry_run,
            reporter=reporter,
            settings=settings,
            lock_timeout=lock_timeout,
            stop=stop,
            hold=hold,
        )


def _alerts_of(name: str, settings: Settings) -> Alerts | None:
    """The activation's alerts; ``None`` for none, or when it cannot be read (its run says why)."""
    try:
        return get_activation(name, settings=settings).alerts
    except ConfigError:
        return None


def activation_runs(
    name: str, *, limit: int = 5, settings: Settings | None = None
) -> list[RunRecord]:
    """The last runs of an activation, latest first, from the run history."""
    label = job_label(name)
    with store.catalog(settings) as catalog:
        return list_runs(catalog, job=label, limit=limit)


def latest_activation_runs(
    names: Iterable[str], *, settings: Settings | None = None
) -> dict[str, RunRecord]:
    """The latest run of each activation in ``names``, by name; none for one never run.

    One read of the history for a whole list of activations
    (:func:`cohortsync.catalog.runs.latest_runs`), instead of one
    :func:`activation_runs` each.
    """
    labels = {job_label(name): name for name in names}
    with store.catalog(settings) as catalog:
        latest = latest_runs(catalog, labels)
    return {labels[job]: record for job, record in latest.items()}


# --- the scheduler's "activation" job kind ------------------------------------------


def run_activation_job(context: JobContext) -> JobResult:
    """Run an activation for the scheduler (job kind ``"activation"``)."""
    report = run_activation(
        context.name,
        reporter=context.reporter,
        settings=context.settings,
        lease_owner=context.lease_owner,
        stop=context.stop,
    )
    data = report.to_dict()
    return JobResult(str(data.get("status", "succeeded")), report.run_id, None, data)
