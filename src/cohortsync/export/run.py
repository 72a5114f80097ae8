"""One export run: the single entry point of every export path.

The CLI, saved queries, activations and the scheduler all call
:func:`run_export`. A run is recorded in the catalog before anything is read,
streams its source into an out-of-core staging database, writes its planned
changes to ``$COHORTSYNC_HOME/runs/<run_id>/changes.parquet``, sends them with
checkpoints of every acknowledged batch, and finishes with its report or its
error. The run directory is removed when the run succeeds and kept otherwise,
so a failed run can be resumed from its plan and checkpoints.

A dry run (``dry_run=True``) stages and plans in a scratch directory, sends
nothing, and is not recorded in the run history: it changes no state.

The stages are ``staging``, ``planning``, ``sending`` and ``committing``; the
caller's :class:`~cohortsync.export.reporting.RunReporter` is told as each
starts, and of the rows read, the batches acknowledged and the end of the run.
The planner of the export's operation is chosen once
(:func:`~cohortsync.export.planners.planner_for`). Each stage returns its
result (:mod:`cohortsync.export.stages`): :func:`prepare` stages and plans,
:func:`send_plan` sends; the run's report is assembled from those results when
it ends, whether it succeeded or not (:meth:`ExportReport.from_stages`).

Runs are durable (:mod:`resume`, :mod:`locks`, :mod:`stopping`): a run holds
its cohort's lock from before it plans until it has finished; the same export
started again continues an unfinished run from its plan and checkpoints. A run
stops cooperatively: the caller's :class:`~cohortsync.export.stopping.StopToken`
(SIGTERM and Ctrl-C request it in the main thread; the scheduler requests it
for its jobs) is checked at every stage and batch boundary. While sending, a
first request lets the requests in flight finish and records them; either way
the run ends ``interrupted`` and raises :class:`RunInterrupted`. A ``mirror``
run commits its new snapshot only once every batch is acknowledged, and before
it is marked succeeded.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import duckdb
import pyarrow as pa
import sqlalchemy as sa

from cohortsync.catalog import runs
from cohortsync.catalog.db import open_catalog
from cohortsync.errors import (
    AlertHeld,
    CohortsyncError,
    ConfigError,
    DiskWriteFailed,
    RunInterrupted,
)
from cohortsync.export import disk, formats
from cohortsync.export.batches import Batch, iter_batches
from cohortsync.export.client import PartnerClient
from cohortsync.export.hold import HoldCheck
from cohortsync.export.identifiers import KINDS, IdentifierColumns, identifier_columns
from cohortsync.export.locks import DEFAULT_LOCK_TIMEOUT, CohortLock
from cohortsync.export.match_log import MatchLog, resumed_match
from cohortsync.export.plan import (
    CHANGES_FILE,
    Plan,
    Planner,
    resume_plan,
    write_plan,
)
from cohortsync.export.planners import check_planned_state, in_warehouse_url, planner_for
from cohortsync.export.report import ExportReport
from cohortsync.export.reporting import RunReporter, SilentReporter
from cohortsync.export.rest_attribute import check_attribute, unaddressable_kinds
from cohortsync.export.resume import RunChoice, choose_run, complete_parquet, resolve_superseded
from cohortsync.export.send import send_all
from cohortsync.export.sinks import batch_size_of, sink_for
from cohortsync.export.snapshots import CohortKey
from cohortsync.export.source import check_pushdown, query_failed, source_sql, stream_source
from cohortsync.export.spec import REST_ATTRIBUTE, ExportSpec
from cohortsync.export.stages import Planned, Recorded, SendTally, Sent, Staged
from cohortsync.export.staging import SourceStreamFailed, Staging
from cohortsync.export.stopping import StopToken, stop_on_signals
from cohortsync.settings import Settings
from cohortsync.warehouse.connect import duckdb_path

if TYPE_CHECKING:
    from cohortsync.export.warehouse_mirror import WarehouseMirror as WarehouseMirrorType

log = logging.getLogger(__name__)

# Every acknowledgement is recorded before its worker takes another batch, so a
# run killed at any moment re-sends at most the batches that were in flight: it
# is appended to the run's ack log (one write(2), which a killed process cannot
# lose, like the catalog's WAL commit without fsync). The log is folded into the
# catalog every CHECKPOINT_BATCHES acks or CHECKPOINT_SECONDS, when the run
# stops, and, after a kill, before the run is resumed. The log starts with a
# header naming its format version (:mod:`formats`); logs of the previous
# release have none and are read the same way.
CHECKPOINT_SECONDS = 0.5
CHECKPOINT_BATCHES = 500
ACK_LOG = formats.ACK_LOG_FILE
_ACK_RECORD = formats.ACK_RECORD  # batch number, identifier count


def run_export(
    spec: ExportSpec,
    *,
    dry_run: bool = False,
    reporter: RunReporter | None = None,
    settings: Settings | None = None,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    resume_run_id: str | None = None,
    stop: StopToken | None = None,
    hold: HoldCheck | None = None,
) -> ExportReport:
    """Run one export and return its report.

    Args:
        spec: what to export and where.
        dry_run: stage and plan only; send nothing, record nothing.
        reporter: told of each stage, the rows read and the batches sent, and
            of the end of the run (:mod:`cohortsync.export.reporting`); the
            run reports nothing when ``None``.
        settings: the settings to use; read from the environment when ``None``.
        lock_timeout: seconds to wait for another run of the same cohort.
        resume_run_id: continue this run (``cohortsync runs resume``); by
            default the cohort's unfinished run of the same job is continued.
        stop: the caller's stop token; a new one when ``None``. In the main
            thread, SIGTERM and SIGINT request it while the run (not a dry run)
            lasts.

    Raises:
        CohortsyncError: the run failed; its subclass says how (exit codes).
            Once the run is recorded, the error names it (``run_id``, ``report``).
        RunInterrupted: stopped by its token (SIGTERM, Ctrl-C, the scheduler);
            run it again to resume.
    """
    settings = settings or Settings()
    check_spec(spec)
    stop = stop or StopToken()
    reporter = reporter or SilentReporter()
    if dry_run:
        return _dry_run(spec, settings, stop, reporter)
    return _run(spec, settings, stop, reporter, lock_timeout, resume_run_id, hold)


def _dry_run(
    spec: ExportSpec,
    settings: Settings,
    stop: StopToken,
    reporter: RunReporter,
) -> ExportReport:
    """Stage and plan in a scratch directory; send nothing, record nothing."""
    started = time.monotonic()
    run_dir = settings.home_dir / "runs" / f"dry-{runs.new_run_id()}"
    staged: Staged | None = None

    def columns_found(partial: Staged) -> None:
        nonlocal staged
        staged = partial

    try:
        key = cohort_key_of(spec)
        planner = planner_for(
            spec, settings.home_dir, key, run_dir.name, dry_run=True, stop=stop, settings=settings
        )
        prepared = prepare(
            spec,
            settings,
            run_dir,
            dry_run=True,
            planner=planner,
            stop=stop,
            reporter=reporter,
            on_columns=columns_found,
        )
        report = ExportReport.from_stages(
            spec,
            run_id=None,
            status="dry-run",
            dry_run=True,
            staged=prepared.staged,
            planned=prepared.planned,
            preview=dry_run_plan(spec, prepared.planned),
            duration_s=round(time.monotonic() - started, 3),
        )
    except BaseException:
        reporter.finished(
            ExportReport.from_stages(
                spec, run_id=None, status="running", staged=staged, dry_run=True
            )
        )
        raise
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    reporter.finished(report)
    return report


def _run(
    spec: ExportSpec,
    settings: Settings,
    stop: StopToken,
    reporter: RunReporter,
    lock_timeout: float,
    resume_run_id: str | None,
    hold: HoldCheck | None = None,
) -> ExportReport:
    """A recorded run: take the cohort's lock, choose a run to continue or start one."""
    catalog = open_catalog(settings.catalog_path)
    lock = CohortLock(settings.home_dir, cohort_key_of(spec))
    try:
        with stop_on_signals(stop):
            try:
                choice = _lock_and_choose(
                    spec, settings, catalog, lock, stop, lock_timeout, resume_run_id
                )
            except BaseException:  # no run was recorded: the reporter still hears of the end
                reporter.finished(ExportReport.from_stages(spec, run_id=None, status="running"))
                raise
            return _run_locked(spec, settings, catalog, lock, choice, stop, reporter, hold)
    finally:
        lock.release()
        catalog.dispose()


def _lock_and_choose(
    spec: ExportSpec,
    settings: Settings,
    catalog: sa.Engine,
    lock: CohortLock,
    stop: StopToken,
    lock_timeout: float,
    resume_run_id: str | None,
) -> RunChoice:
    """Take the cohort's lock, then choose the run to continue or that a new one is due."""
    try:
        lock.acquire(timeout=lock_timeout, stop=stop)
    except RunInterrupted:
        raise RunInterrupted(
            f"stopped while waiting for another run of cohort {spec.cohort_id!r}"
        ) from None
    try:
        check_planned_state(spec, settings.home_dir, lock.key)  # before recording a run
        choice = choose_run(catalog, settings.home_dir, spec, resume_run_id=resume_run_id)
        stop.check()
    except RunInterrupted:  # before the run was recorded: nothing to resume
        raise RunInterrupted(
            f"export of cohort {spec.cohort_id!r} was stopped before it started sending",
            hint="run the same export again",
        ) from None
    return choice


def cohort_key_of(spec: ExportSpec) -> CohortKey:
    """The cohort an export feeds: its lock and its mirror snapshots are keyed by it."""
    destination = spec.destination
    return CohortKey.for_destination(
        destination.endpoint,
        destination.data_import_key,
        destination.cohort_slot(spec.cohort_id),
        spec.cohort_id,
    )


def _run_locked(
    spec: ExportSpec,
    settings: Settings,
    catalog: sa.Engine,
    lock: CohortLock,
    choice: RunChoice,
    stop: StopToken,
    reporter: RunReporter,
    hold: HoldCheck | None = None,
) -> ExportReport:
    """One run under its cohort's lock: plan (or resume), send, commit, finish.

    The results of the stages it got through are gathered here, and its report
    is built from them when it ends (:func:`_finish`).
    """
    started = time.monotonic()
    recorded: Recorded | None = None
    if choice.resume is not None:
        run_id = choice.resume.id
        runs.reopen_run(catalog, run_id)
        recorded = Recorded.from_report(choice.resume.report)
    else:
        run_id = runs.start_run(
            catalog,
            job=spec.to_public_dict(),
            endpoint=spec.destination.endpoint,
            partner=spec.destination.cohort_slot(spec.cohort_id),
            cohort_id=spec.cohort_id,
            data_import_key=spec.destination.data_import_key,
            operation=spec.operation,
        )
    reporter.run_started(run_id)
    lock.set_run(run_id)
    run_dir = run_directory(settings, run_id)
    planner = planner_for(
        spec,
        settings.home_dir,
        lock.key,
        run_id,
        abandoned=choice.abandoned_changes(settings.home_dir),
        stop=stop,
        settings=settings,
    )
    staged: Staged | None = None
    planned: Planned | None = None
    tally = SendTally()

    def columns_found(partial: Staged) -> None:
        nonlocal staged
        staged = partial

    def finish(status: runs.RunStatus, error: str | None) -> ExportReport:
        report = ExportReport.from_stages(
            spec,
            run_id=run_id,
            status=status,
            duration_s=round(time.monotonic() - started, 3),
            recorded=recorded,
            staged=staged,
            planned=planned,
            sent=tally.result(),
        )
        _finish(catalog, report, status, error, reporter)
        return report

    try:
        stop.check()
        if choice.resume is not None:
            plan = resume_plan(
                run_dir / CHANGES_FILE,
                alias_label=spec.alias_column,
                batch_size=batch_size_of(spec),
            )
            # a resumed run keeps the mirror summary its planning recorded
            planned = Planned(plan, planner.summary())
            if spec.destination.type == REST_ATTRIBUTE:  # a killed attempt recorded no report
                earlier = recorded or Recorded()
                match = resumed_match(catalog, run_id, run_dir, earlier.match)
                recorded = replace(earlier, match=match)
        else:
            staged, planned = prepare(
                spec,
                settings,
                run_dir,
                planner=planner,
                stop=stop,
                reporter=reporter,
                on_columns=columns_found,
            )
            if hold is not None:
                _hold_back(hold, planned, run_dir)
        with stop.sending():
            send_plan(spec, planned.plan, catalog, run_id, reporter, tally, stop=stop)
        if stop.requested and len(runs.acknowledged_batches(catalog, run_id)) < planned.batches:
            raise stop.interrupted()
        reporter.stage_started("committing")
        planner.commit()
        resolve_superseded(catalog, settings.home_dir, run_id, choice.superseded)
    except RunInterrupted:
        report = finish("interrupted", f"interrupted by {stop.by}")
        raise RunInterrupted(
            f"export run {run_id} was interrupted by {stop.by}; acknowledged batches are recorded",
            hint=f"run the same export again, or 'cohortsync runs resume {run_id}'",
        ).for_run(run_id, report.to_dict()) from None
    except DiskWriteFailed as error:
        # A full disk breaks no promise of the run: with its plan whole it ends
        # interrupted, and the same export resumes it once there is space.
        if complete_parquet(run_dir / CHANGES_FILE):
            error.for_run(run_id, finish("interrupted", str(error)).to_dict())
        else:
            _failed(error, run_id, finish, run_dir, planner)
        raise
    except CohortsyncError as error:
        _failed(error, run_id, finish, run_dir, planner)
        raise
    except Exception as error:
        finish("failed", f"internal error: {error!r}")
        raise
    report = finish("succeeded", None)
    shutil.rmtree(run_dir, ignore_errors=True)
    return report


def _failed(
    error: CohortsyncError,
    run_id: str,
    finish: Callable[[runs.RunStatus, str | None], ExportReport],
    run_dir: Path,
    planner: Planner,
) -> None:
    """Record the run failed with ``error``; drop its files if nothing can be resumed."""
    report = finish("failed", str(error))
    if not (run_dir / CHANGES_FILE).exists():  # nothing was sent: nothing to resume
        shutil.rmtree(run_dir, ignore_errors=True)
        planner.discard()
    error.for_run(run_id, report.to_dict())


def _hold_back(hold: HoldCheck, planned: Planned, run_dir: Path) -> None:
    """Apply a saved job's alert hold to the plan, before the first request.

    A held run sent nothing, so its plan is dropped: the run ends failed like
    a mirror guard's, and is never resumed.

    Raises:
        AlertHeld: the plan fires a deviation trigger of the hold.
    """
    try:
        hold.check(planned)
    except AlertHeld:
        (run_dir / CHANGES_FILE).unlink(missing_ok=True)
        raise


def check_spec(spec: ExportSpec) -> None:
    """Refuse a spec that cannot run, before touching the source.

    Raises:
        ConfigError: naming the bad setting.
    """
    if not spec.cohort_id.strip():
        raise ConfigError("the cohort id is empty", hint="give --cohort-id")
    if spec.threads != "auto" and spec.threads < 1:
        raise ConfigError(f"--threads must be auto or at least 1, not {spec.threads}")
    if not spec.destination.endpoint.startswith(("http://", "https://")):
        raise ConfigError(
            f"the endpoint {spec.destination.endpoint!r} is not an http(s) URL",
            hint="give the workspace's REST endpoint, e.g. https://rest.iad-01.braze.com",
        )
    if spec.destination.type == REST_ATTRIBUTE:
        if not spec.destination.rest_api_key:
            raise ConfigError("the REST API key is empty", hint="set COHORTSYNC_REST_API_KEY")
        check_attribute(spec.destination, spec.cohort_id)
    elif not spec.destination.data_import_key:
        raise ConfigError("the data import key is empty", hint="give --data-import-key")


def run_directory(settings: Settings, run_id: str) -> Path:
    """Where a run keeps its staging database and plan."""
    return settings.home_dir / "runs" / run_id


class Prepared(NamedTuple):
    """What staging and planning returned."""

    staged: Staged
    planned: Planned


def prepare(
    spec: ExportSpec,
    settings: Settings,
    run_dir: Path,
    *,
    dry_run: bool = False,
    planner: Planner | None = None,
    stop: StopToken | None = None,
    reporter: RunReporter | None = None,
    on_columns: Callable[[Staged], None] | None = None,
) -> Prepared:
    """Stream the source, stage its identifiers and write the plan; return both results.

    ``stop`` is checked before each batch of the source and between statements,
    and interrupts the statement running (:class:`Staging`). ``reporter`` is
    told when staging and planning start, and of the rows read. ``on_columns``
    is given what staging knows once it has the source's columns (the ignored
    ones), so a run that fails while staging or planning still reports them.

    Raises:
        SourceError: the query failed or the result has no usable identifier column.
        InvalidIdentifiers: the result holds identifiers Braze would refuse (and
            the export does not skip them); raised before anything is sent.
    """
    reporter = reporter or SilentReporter()
    if planner is None:  # a caller outside a run: plan as the spec says, in run_dir
        planner = planner_for(
            spec,
            settings.home_dir,
            cohort_key_of(spec),
            run_dir.name,
            dry_run=dry_run,
            settings=settings,
        )
    reporter.stage_started("staging")
    if spec.operation == "mirror" and in_warehouse_url(spec, settings) is not None:
        # Loaded only for such a mirror: a plain export keeps its imports (and peak) lean.
        from cohortsync.export.warehouse_mirror import WarehouseMirror

        if isinstance(planner, WarehouseMirror):
            return _prepare_in_warehouse(spec, planner, reporter, dry_run=dry_run)
    # A dry run never fails on invalid identifiers: it plans without them and shows them.
    staging = Staging(
        run_dir,
        skip_invalid=spec.skip_invalid or dry_run,
        also_writes=planner.snapshot_dirs(run_dir),
        stop=stop,
        on_rows=reporter.rows_read,
    )
    with staging, _source(spec, settings, staging) as (schema, reader):
        columns = identifier_columns(schema, spec.alias_column)
        left_out = _left_out(spec, columns)
        ignored = tuple(columns.ignored)
        if ignored:
            _warn_ignored(ignored)
            if on_columns is not None:
                on_columns(Staged(ignored_columns=ignored))
        plan, unaddressable = _stage_and_plan(
            staging, reader, columns, spec, run_dir, planner, reporter, left_out
        )
        staging.set_distinct({**planner.distinct_by_kind(plan), **unaddressable})
        return Prepared(
            Staged.of(staging.counts, ignored, unaddressable), Planned(plan, planner.summary())
        )


def _prepare_in_warehouse(
    spec: ExportSpec, planner: WarehouseMirrorType, reporter: RunReporter, *, dry_run: bool
) -> Prepared:
    """Stage, diff and plan inside the warehouse: only the changes reach the run's plan."""

    def left_out(columns: IdentifierColumns) -> tuple[str, ...]:
        kinds = _left_out(spec, columns)
        if columns.ignored:
            _warn_ignored(columns.ignored)
        return kinds

    prepared = planner.prepare(
        spec.source,
        skip_invalid=spec.skip_invalid or dry_run,
        left_out=left_out,
        batch_size=batch_size_of(spec),
        reporter=reporter,
    )
    for kind, count in prepared.unaddressable.items():
        if count:
            _warn_unaddressable(kind, count)
    return Prepared(
        Staged.of(prepared.counts, prepared.ignored, prepared.unaddressable),
        Planned(prepared.plan, planner.summary()),
    )


def _left_out(spec: ExportSpec, columns: IdentifierColumns) -> tuple[str, ...]:
    """The kinds the destination cannot address (device ids on ``/users/track``)."""
    return unaddressable_kinds(columns) if spec.destination.type == REST_ATTRIBUTE else ()


def _warn_ignored(ignored: tuple[str, ...]) -> None:
    log.warning(
        "ignoring columns %s: only user_ids, device_ids and the alias column are sent",
        ", ".join(repr(name) for name in ignored),
    )


def _warn_unaddressable(kind: str, count: int) -> None:
    log.warning(
        "skipping %s %s: Braze's /users/track cannot address a user by device id "
        "(use --type partner-cohort to deliver them)",
        f"{count:,}",
        kind,
    )


@contextmanager
def _source(
    spec: ExportSpec, settings: Settings, staging: Staging
) -> Iterator[tuple[pa.Schema, pa.RecordBatchReader | None]]:
    """The source's schema and stream; no stream when the staging database reads it itself.

    The embedded DuckDB warehouse is attached to the staging database (see
    :mod:`staging`); parameterised or multi-statement SQL, and every other
    engine, stream Arrow batches through :func:`stream_source`.
    """
    path = pushdown_path(spec, settings)
    if path is not None:
        check_pushdown(spec.source, settings)
        try:
            schema = staging.attach_warehouse(path, source_sql(spec.source))
        except duckdb.Error as error:
            raise query_failed(spec.source, error) from error
        if schema is not None:
            yield schema, None
            return
    with stream_source(spec.source, settings) as reader:
        yield reader.schema, reader


def pushdown_path(spec: ExportSpec, settings: Settings) -> str | None:
    """The DuckDB warehouse file the staging database can read the source from, if any."""
    url = spec.source.warehouse_url or settings.warehouse_url
    if not url.startswith("duckdb:") or spec.source.params:
        return None
    path = duckdb_path(url)
    sql = source_sql(spec.source).strip().rstrip(";")
    if path == ":memory:" or ";" in sql or not Path(path).is_file():
        return None
    return path


def _stage_and_plan(
    staging: Staging,
    reader: pa.RecordBatchReader | None,
    columns: IdentifierColumns,
    spec: ExportSpec,
    run_dir: Path,
    planner: Planner,
    reporter: RunReporter,
    left_out: tuple[str, ...] = (),
) -> tuple[Plan, dict[str, int]]:
    """Stage and plan; ``left_out`` kinds are counted and kept out of the plan."""
    try:
        identifiers = staging.identifiers_sql(reader, columns)
        unaddressable: dict[str, int] = {}
        if left_out:
            identifiers, unaddressable = _without_kinds(staging, identifiers, left_out)
        reporter.stage_started("planning")
        plan = write_plan(
            staging, spec, run_dir, identifiers, planner, batch_size=batch_size_of(spec)
        )
        return plan, unaddressable
    except SourceStreamFailed as failed:
        raise query_failed(spec.source, failed.cause) from failed.cause
    except duckdb.Error as error:
        full = disk.disk_full_in(
            str(error), what="a staging or plan file", fallback=staging.path.parent
        )
        if full is not None:
            raise full from error
        raise CohortsyncError(
            f"staging or planning the changes in {staging.path.parent} failed: {error}",
            hint="check the free disk space of COHORTSYNC_HOME, where large results spill",
        ) from error


def _without_kinds(
    staging: Staging, identifiers: str, kinds: tuple[str, ...]
) -> tuple[str, dict[str, int]]:
    """The staged identifiers without ``kinds``, and how many distinct ones of each were left out.

    The destination cannot address them (device ids on ``/users/track``): they
    are neither planned, nor sent, nor kept in a mirror's snapshot. A kind
    whose column held no value costs no statement.
    """
    skipped = dict.fromkeys(kinds, 0)
    present = [kind for kind in kinds if staging.counts.kinds[kind].values]
    if not present:
        return identifiers, skipped
    codes = ", ".join(str(KINDS.index(kind)) for kind in present)
    for kind in present:
        row = staging.run(f"SELECT count(*) FROM ({identifiers}) WHERE kind = {KINDS.index(kind)}")
        skipped[kind] = int(row[0]) if row else 0
        _warn_unaddressable(kind, skipped[kind])
    return f"SELECT kind, value FROM ({identifiers}) WHERE kind NOT IN ({codes})", skipped


def dry_run_plan(spec: ExportSpec, planned: Planned) -> dict[str, Any]:
    """What a dry run prints: counts by kind, requests, the first body (keys masked).

    A mirror's diff counts come with it (``mirror``).
    """
    plan = planned.plan
    sink = sink_for(spec)
    first: bytes | None = None
    for batch in iter_batches(plan.path, sink, batch_size=plan.batch_size):
        first = batch.body
        break
    preview: dict[str, Any] = {
        "identifiers": plan.by_kind(),
        "adds": sum(c for (_, remove), c in plan.counts.items() if not remove),
        "removes": sum(c for (_, remove), c in plan.counts.items() if remove),
        "batches": plan.batches,
        "requests": sink.requests(plan.batches),
        **sink.preview(first),
    }
    if planned.mirror is not None:
        preview["mirror"] = dict(planned.mirror)
    return preview


class Checkpoint:
    """Records acknowledged batches as they come (see :data:`CHECKPOINT_BATCHES`).

    Each acknowledgement is appended to the ack log at once, and folded into
    the catalog in groups. Only batches the server acknowledged are ever
    added, so a checkpoint never claims a batch that was not received;
    :meth:`close` folds what is pending on every exit and removes the log.
    """

    def __init__(self, catalog: sa.Engine, run_id: str, log_path: Path) -> None:
        self.recorder = runs.AckRecorder(catalog, run_id)
        self.log_path = log_path
        self.log = disk.AppendLog(log_path, formats.ACK_HEADER, formats.ACK_LOG_WHAT)
        self.pending: list[tuple[int, int]] = []
        self.last_flush = time.monotonic()

    def add(self, batch: Batch) -> None:
        self.log.append(_ACK_RECORD.pack(batch.number, batch.size))
        self.pending.append((batch.number, batch.size))
        now = time.monotonic()
        if len(self.pending) >= CHECKPOINT_BATCHES or now - self.last_flush >= CHECKPOINT_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.recorder.record(self.pending)
            self.pending = []
        self.last_flush = time.monotonic()

    def close(self) -> None:
        """Flush what is pending, release the connection and remove the folded log."""
        try:
            self.flush()
            self.log_path.unlink(missing_ok=True)
        finally:
            self.log.close()
            self.recorder.close()


def fold_ack_log(catalog: sa.Engine, run_id: str, log_path: Path) -> None:
    """Record in the catalog the acks a killed attempt logged but had not folded yet.

    Idempotent: acks already in the catalog are ignored. A torn last record
    (the process died inside the write) is left out: its batch is sent again.
    Logs with a format header and the previous release's, without one, are read.

    Raises:
        FileFormatTooNew: a newer release wrote the log; it is left as it is.
    """
    try:
        data = log_path.read_bytes()
    except FileNotFoundError:
        return
    records = formats.ack_log_records(log_path, data)
    acks = [(int(n), int(c)) for n, c in _ACK_RECORD.iter_unpack(records)]
    recorder = runs.AckRecorder(catalog, run_id)
    try:
        recorder.record(acks)
    finally:
        recorder.close()
    log_path.unlink()


def send_plan(
    spec: ExportSpec,
    plan: Plan,
    catalog: sa.Engine,
    run_id: str,
    reporter: RunReporter,
    tally: SendTally,
    *,
    stop: StopToken | None = None,
) -> Sent:
    """Send the plan's unacknowledged batches, recording each acknowledgement.

    Returns what this send got acknowledged and the requests it took; they
    are counted in ``tally`` as they come, so a send that fails or is
    interrupted leaves its partial counts there for the run's report.

    After ``stop`` is requested no new batch is handed out; the requests in
    flight finish and are recorded. A second request (or one made before
    sending) cancels the requests in flight at once.

    Raises:
        RunInterrupted: the requests in flight were cancelled on ``stop``'s request.
    """
    stop = stop or StopToken()
    ack_log = plan.path.parent / ACK_LOG
    fold_ack_log(catalog, run_id, ack_log)
    done = runs.acknowledged_batches(catalog, run_id)
    sink = sink_for(spec)
    batches = stop.batches(iter_batches(plan.path, sink, skip=done, batch_size=plan.batch_size))
    formats.start_ack_log(ack_log)
    checkpoint = Checkpoint(catalog, run_id, ack_log)
    match_log = None
    if spec.destination.type == REST_ATTRIBUTE:  # /users/track answers say what they matched
        match_log = MatchLog(plan.path.parent / formats.MATCH_LOG_FILE)
    # paced by the workspace's budget in the catalog, shared with every run of the home
    client = PartnerClient(spec.destination, threads=spec.threads, catalog=catalog)
    reporter.stage_started("sending", total=plan.total)

    def on_ack(batch: Batch, answer: bytes) -> None:
        read = sink.read_answer(batch, answer)
        if match_log is not None and read is not None:
            match_log.add(batch, read)  # before the ack: an acknowledged batch has its line
        checkpoint.add(batch)
        tally.acknowledged(batch, read)
        reporter.batches_sent(1, batch.size)

    async def main() -> None:
        cancel = _cancel_soon(asyncio.get_running_loop(), asyncio.current_task())
        with stop.interrupting(cancel):
            async with client:
                await send_all(
                    client,
                    sink.opening(),
                    batches,
                    batch_path=sink.batch_path,
                    pending=plan.batches - len(done),
                    on_ack=on_ack,
                )

    try:
        asyncio.run(main())
    except asyncio.CancelledError:
        if not stop.requested:
            raise
        raise stop.interrupted("sending") from None
    finally:
        checkpoint.close()
        if match_log is not None:
            match_log.close()
        tally.requests_made(
            client.stats.requests, client.stats.retries, client.concurrency.to_dict()
        )
    return tally.result()


def _cancel_soon(
    loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any] | None
) -> Callable[[], None]:
    """A stop interrupter that cancels ``task`` from any thread or a signal handler."""

    def cancel() -> None:
        if task is None:
            return
        with suppress(RuntimeError):  # the loop has closed: the sending is over anyway
            loop.call_soon_threadsafe(task.cancel)

    return cancel


def _finish(
    catalog: sa.Engine,
    report: ExportReport,
    status: runs.RunStatus,
    error: str | None,
    reporter: RunReporter,
) -> None:
    """Record the run's end and its report in the run history, then tell the reporter."""
    assert report.run_id is not None
    runs.finish_run(catalog, report.run_id, status, report.to_dict(), error)
    reporter.finished(report)
