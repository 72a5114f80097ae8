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
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import sqlalchemy as sa
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

from cohortsync import secrets
from cohortsync.catalog import runs
from cohortsync.catalog.db import open_catalog
from cohortsync.errors import CohortsyncError, ConfigError, RunInterrupted
from cohortsync.export.batches import Batch, BodyBuilder, iter_batches
from cohortsync.export.client import PartnerClient
from cohortsync.export.identifiers import IdentifierColumns, identifier_columns
from cohortsync.export.plan import Plan, write_plan
from cohortsync.export.report import ExportReport
from cohortsync.export.send import send_all
from cohortsync.export.source import query_failed, stream_source
from cohortsync.export.spec import ExportSpec
from cohortsync.export.staging import SourceStreamFailed, StagedCounts, Staging
from cohortsync.settings import Settings

log = logging.getLogger(__name__)

CHECKPOINT_SECONDS = 0.5
CHECKPOINT_BATCHES = 500


def run_export(
    spec: ExportSpec,
    *,
    dry_run: bool = False,
    progress: bool | None = None,
    settings: Settings | None = None,
) -> ExportReport:
    """Run one export and return its report.

    Args:
        spec: what to export and where.
        dry_run: stage and plan only; send nothing, record nothing.
        progress: show a progress bar on stderr; ``None`` shows it when stderr
            is a terminal.
        settings: the settings to use; read from the environment when ``None``.

    Raises:
        CohortsyncError: the run failed; its subclass says how (exit codes).
    """
    settings = settings or Settings()
    check_spec(spec)
    started = time.monotonic()
    report = ExportReport(
        run_id=None, cohort_id=spec.cohort_id, operation=spec.operation, dry_run=dry_run
    )
    if dry_run:
        run_dir = settings.home_dir / "runs" / f"dry-{runs.new_run_id()}"
        try:
            plan = prepare(spec, settings, run_dir, report)
            report.plan = dry_run_plan(spec, plan)
            report.status = "dry-run"
            report.batches = plan.batches
            report.duration_s = round(time.monotonic() - started, 3)
            return report
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)

    catalog = open_catalog(settings.catalog_path)
    try:
        run_id = runs.start_run(
            catalog,
            job=spec.to_public_dict(),
            endpoint=spec.destination.endpoint,
            partner=spec.destination.partner,
            cohort_id=spec.cohort_id,
            data_import_key=spec.destination.data_import_key,
            operation=spec.operation,
        )
        report.run_id = run_id
        run_dir = run_directory(settings, run_id)
        try:
            plan = prepare(spec, settings, run_dir, report)
            report.batches = plan.batches
            send_plan(spec, plan, catalog, run_id, report, show_progress(progress))
        except CohortsyncError as error:
            _finish(catalog, report, started, "failed", str(error))
            raise
        except KeyboardInterrupt:
            _finish(catalog, report, started, "interrupted", "interrupted by the user")
            raise RunInterrupted(
                f"export run {run_id} was interrupted; acknowledged batches are recorded",
                hint="run the export again",
            ) from None
        except Exception as error:
            _finish(catalog, report, started, "failed", f"internal error: {error!r}")
            raise
        _finish(catalog, report, started, "succeeded", None)
        shutil.rmtree(run_dir, ignore_errors=True)
        return report
    finally:
        catalog.dispose()


def check_spec(spec: ExportSpec) -> None:
    """Refuse a spec that cannot run, before touching the source.

    Raises:
        ConfigError: naming the bad setting.
    """
    if not spec.cohort_id.strip():
        raise ConfigError("the cohort id is empty", hint="give --cohort-id")
    if spec.threads < 1:
        raise ConfigError(f"--threads must be at least 1, not {spec.threads}")
    if not spec.destination.endpoint.startswith(("http://", "https://")):
        raise ConfigError(
            f"the endpoint {spec.destination.endpoint!r} is not an http(s) URL",
            hint="give the workspace's REST endpoint, e.g. https://rest.iad-01.braze.com",
        )
    if not spec.destination.data_import_key:
        raise ConfigError("the data import key is empty", hint="give --data-import-key")


def run_directory(settings: Settings, run_id: str) -> Path:
    """Where a run keeps its staging database and plan."""
    return settings.home_dir / "runs" / run_id


def prepare(spec: ExportSpec, settings: Settings, run_dir: Path, report: ExportReport) -> Plan:
    """Stream the source, stage its identifiers and write the plan; fill the counts.

    Raises:
        SourceError: the query failed or the result has no usable identifier column.
    """
    with stream_source(spec.source, settings) as reader:
        columns = identifier_columns(reader.schema, spec.alias_column)
        if columns.ignored:
            report.ignored_columns = list(columns.ignored)
            log.warning(
                "ignoring columns %s: only user_ids, device_ids and the alias column are sent",
                ", ".join(repr(name) for name in columns.ignored),
            )
        with Staging(run_dir) as staging:
            plan = _stage_and_plan(staging, reader, columns, spec, run_dir)
            staging.set_distinct(plan.by_kind())
            _fill_counts(report, staging.counts)
            return plan


def _stage_and_plan(
    staging: Staging,
    reader: pa.RecordBatchReader,
    columns: IdentifierColumns,
    spec: ExportSpec,
    run_dir: Path,
) -> Plan:
    identifiers = staging.identifiers_sql(reader, columns)
    try:
        return write_plan(staging, spec, run_dir, identifiers, kinds=len(columns.kinds))
    except SourceStreamFailed as failed:
        raise query_failed(spec.source, failed.cause) from failed.cause
    except duckdb.Error as error:
        raise CohortsyncError(
            f"staging the result in {staging.path.parent} failed: {error}",
            hint="check the free disk space of COHORTSYNC_HOME",
        ) from error


def _fill_counts(report: ExportReport, counts: StagedCounts) -> None:
    report.rows_read = counts.rows_read
    report.skipped = counts.skipped()
    report.skipped_by_kind = counts.skipped_by_kind()
    report.sent = {kind: 0 for kind in counts.kinds}


def body_builder(spec: ExportSpec) -> BodyBuilder:
    return BodyBuilder(
        partner_api_key=spec.destination.partner_api_key,
        client_secret=spec.destination.data_import_key,
        cohort_id=spec.cohort_id,
    )


def name_fields(spec: ExportSpec) -> dict[str, str]:
    """The fields of the ``cohorts`` (create or rename) request."""
    created_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return {"cohort_id": spec.cohort_id, "name": spec.name, "created_at": created_at}


def dry_run_plan(spec: ExportSpec, plan: Plan) -> dict[str, Any]:
    """What a dry run prints: counts by kind, requests and the first body, keys masked."""
    first: dict[str, Any] | None = None
    for batch in iter_batches(plan.path, body_builder(spec)):
        first = orjson.loads(batch.body)
        break
    if first is not None:
        first["partner_api_key"] = secrets.mask_prefix(first["partner_api_key"])
        first["client_secret"] = secrets.mask_prefix(first["client_secret"])
    return {
        "identifiers": plan.by_kind(),
        "adds": sum(c for (_, remove), c in plan.counts.items() if not remove),
        "removes": sum(c for (_, remove), c in plan.counts.items() if remove),
        "batches": plan.batches,
        "requests": plan.batches + 1,
        "first_request": first,
    }


class Checkpoint:
    """Records acknowledged batches in small groups: every 0.5 s or 500 batches.

    Only batches the server acknowledged are ever added, so a checkpoint never
    claims a batch that was not received; :meth:`flush` runs on every exit.
    """

    def __init__(self, catalog: sa.Engine, run_id: str) -> None:
        self.catalog = catalog
        self.run_id = run_id
        self.pending: list[tuple[int, int]] = []
        self.last_flush = time.monotonic()

    def add(self, batch: Batch) -> None:
        self.pending.append((batch.number, batch.size))
        now = time.monotonic()
        if len(self.pending) >= CHECKPOINT_BATCHES or now - self.last_flush >= CHECKPOINT_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            runs.record_batch_acks(self.catalog, self.run_id, self.pending)
            self.pending = []
        self.last_flush = time.monotonic()


def send_plan(
    spec: ExportSpec,
    plan: Plan,
    catalog: sa.Engine,
    run_id: str,
    report: ExportReport,
    progress: bool,
) -> None:
    """Send the plan's unacknowledged batches, recording each acknowledgement."""
    done = runs.acknowledged_batches(catalog, run_id)
    batches = iter_batches(plan.path, body_builder(spec), skip=done)
    checkpoint = Checkpoint(catalog, run_id)
    client = PartnerClient(spec.destination, threads=spec.threads)
    name_body = client.body(**name_fields(spec))
    with _progress_bar(progress, plan.total) as advance:

        def on_ack(batch: Batch) -> None:
            checkpoint.add(batch)
            for kind, count in batch.counts.items():
                report.sent[kind] = report.sent.get(kind, 0) + count
            advance(batch.size)

        async def main() -> None:
            async with client:
                await send_all(
                    client, name_body, batches, pending=plan.batches - len(done), on_ack=on_ack
                )

        try:
            asyncio.run(main())
        finally:
            checkpoint.flush()
            report.requests = client.stats.requests
            report.retries = client.stats.retries


def show_progress(progress: bool | None) -> bool:
    return sys.stderr.isatty() if progress is None else progress


@contextmanager
def _progress_bar(enabled: bool, total: int) -> Iterator[Any]:
    """A rich progress bar on stderr, or a no-op when disabled."""
    if not enabled:
        yield lambda _count: None
        return
    bar = Progress(
        TextColumn("sending"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    with bar:
        task = bar.add_task("send", total=total)
        yield lambda count: bar.advance(task, count)


def _finish(
    catalog: sa.Engine,
    report: ExportReport,
    started: float,
    status: runs.RunStatus,
    error: str | None,
) -> None:
    report.status = status
    report.duration_s = round(time.monotonic() - started, 3)
    sent = report.sent_total
    report.identifiers_per_second = round(sent / report.duration_s, 1) if report.duration_s else 0
    assert report.run_id is not None
    runs.finish_run(catalog, report.run_id, status, report.to_dict(), error)
