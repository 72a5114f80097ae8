"""Which run an export continues, and which earlier runs it leaves behind.

Called with the cohort's lock held (:mod:`cohortsync.export.locks`), so any
run of the cohort still marked ``running`` has a dead process.

- The **same export started again** continues the cohort's latest run when
  that run is unfinished (running with a dead process, or interrupted), has
  the same job (the public spec; the thread count may differ) and has its plan
  on disk: it sends only the batches never acknowledged, then commits.
- ``cohortsync runs resume RUN_ID`` does the same for a named run, which must
  be the latest of its cohort: a later run has re-planned from a newer state.
- Any other export starts a new run. Earlier mirror runs that stopped after
  writing their plan may have applied any part of it; a new mirror run folds
  their changes into its diff (:func:`cohortsync.export.mirror.plan_mirror`,
  ``abandoned``). Once a run succeeds, those earlier runs are *resolved*:
  marked failed as superseded, their run directories and pending snapshots
  removed.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from cohortsync.catalog import runs
from cohortsync.catalog.runs import RunRecord
from cohortsync.errors import ConfigError
from cohortsync.export import formats
from cohortsync.export.snapshots import CohortKey, SnapshotStore
from cohortsync.export.spec import ExportSpec
from cohortsync.identity import normalize_endpoint

CHANGES_FILE = formats.PLAN_FILE
HISTORY_SCAN = 200


@dataclass(frozen=True)
class RunChoice:
    """The outcome of :func:`choose_run`.

    ``resume`` is the run to continue, or ``None`` for a new run;
    ``abandoned`` are earlier mirror runs whose plans a new mirror run folds in;
    ``superseded`` are the earlier unfinished or failed runs the run resolves
    when it succeeds.
    """

    resume: RunRecord | None
    abandoned: tuple[RunRecord, ...]
    superseded: tuple[RunRecord, ...]

    def abandoned_changes(self, home: Path) -> tuple[Path, ...]:
        return tuple(changes_path(home, run.id) for run in self.abandoned)


def run_dir(home: Path, run_id: str) -> Path:
    return home / "runs" / run_id


def changes_path(home: Path, run_id: str) -> Path:
    return run_dir(home, run_id) / CHANGES_FILE


def public_job(job: dict[str, Any]) -> dict[str, Any]:
    """The parts of a job that decide what is sent (not how fast), as stored in JSON."""
    stored: dict[str, Any] = orjson.loads(orjson.dumps(job))
    if not stored.get("skip_invalid"):  # runs recorded before the option had no such key
        stored.pop("skip_invalid", None)
    destination = stored.get("destination")
    if isinstance(destination, dict) and isinstance(destination.get("endpoint"), str):
        # Another spelling of the endpoint is the same cohort (cohortsync.identity).
        destination["endpoint"] = normalize_endpoint(destination["endpoint"])
    return {key: value for key, value in stored.items() if key != "threads"}


def choose_run(
    catalog: sa.Engine, home: Path, spec: ExportSpec, *, resume_run_id: str | None = None
) -> RunChoice:
    """Find the run this export continues, and the earlier runs it supersedes.

    Raises:
        ConfigError: ``resume_run_id`` names a run that cannot be resumed; the
            message says why and what to run instead.
        FileFormatTooNew: a run this export could continue or fold in left files
            of a newer format; nothing is changed.
    """
    destination = spec.destination
    key = CohortKey.for_destination(
        destination.endpoint,
        destination.data_import_key,
        destination.cohort_slot(spec.cohort_id),
        spec.cohort_id,
    ).history_key
    history = _since_last_mirror_commit(runs.list_runs(catalog, cohort_key=key, limit=HISTORY_SCAN))
    for record in history:
        if record.status != "succeeded":
            check_formats(home, record)
    for record in history:
        if record.status == "running":  # under the lock: its process is gone
            runs.finish_run(
                catalog,
                record.id,
                "interrupted",
                record.report,
                "the process running it stopped without finishing (killed or crashed)",
            )
    history = [_with_status(record) if record.status == "running" else record for record in history]
    latest = history[0] if history else None
    resume: RunRecord | None = None
    if resume_run_id is not None:
        resume = _named_run(catalog, home, resume_run_id, key, latest)
    elif (
        latest is not None
        and latest.unfinished
        and public_job(latest.job) == public_job(spec.to_public_dict())
        and resumable(home, latest)
    ):
        resume = latest
    earlier = tuple(r for r in history if r.status != "succeeded" and r is not resume)
    abandoned: tuple[RunRecord, ...] = ()
    if resume is None and spec.operation == "mirror":
        abandoned = tuple(
            r
            for r in earlier
            if r.operation == "mirror" and complete_parquet(changes_path(home, r.id))
        )
    return RunChoice(resume=resume, abandoned=abandoned, superseded=earlier)


def check_formats(home: Path, record: RunRecord) -> None:
    """Refuse a run whose plan, ack log or pending snapshot a newer release wrote.

    Checked before the run is marked, resumed or folded into another run's
    diff, so this release changes nothing of a newer release's run.
    """
    formats.check_run_files(run_dir(home, record.id))
    if record.operation == "mirror":
        SnapshotStore(home, CohortKey.for_run(record)).check_pending(record.id)


def resumable(home: Path, record: RunRecord) -> bool:
    """Whether the run's plan (and, for a mirror run, its new snapshot) is on disk."""
    if not complete_parquet(changes_path(home, record.id)):
        return False
    if record.operation == "mirror":
        return SnapshotStore(home, CohortKey.for_run(record)).has_pending(record.id)
    return True


def resolve_superseded(
    catalog: sa.Engine, home: Path, run_id: str, superseded: tuple[RunRecord, ...]
) -> None:
    """After run ``run_id`` succeeded: close and clean up the runs it superseded."""
    for record in superseded:
        if record.unfinished:
            runs.finish_run(
                catalog,
                record.id,
                "failed",
                record.report,
                f"superseded by run {run_id}, which planned from a later state",
            )
        shutil.rmtree(run_dir(home, record.id), ignore_errors=True)
        if record.operation == "mirror":
            SnapshotStore(home, CohortKey.for_run(record)).discard_pending(record.id)


def _since_last_mirror_commit(history: list[RunRecord]) -> list[RunRecord]:
    """The runs after the cohort's last successful mirror run (that run resolved the rest)."""
    for index, record in enumerate(history):
        if record.status == "succeeded" and record.operation == "mirror":
            return history[:index]
    return history


def _with_status(record: RunRecord) -> RunRecord:
    return replace(record, status="interrupted")


def _named_run(
    catalog: sa.Engine, home: Path, run_id: str, key: str, latest: RunRecord | None
) -> RunRecord:
    record = runs.get_run(catalog, run_id)
    if record.cohort_key != key:
        raise ConfigError(
            f"run {run_id} exported to another cohort or workspace than this export",
            hint="resume it with 'cohortsync runs resume' and its own saved job",
        )
    if record.status == "succeeded":
        raise ConfigError(f"run {run_id} already succeeded; there is nothing to resume")
    if latest is None or latest.id != run_id:
        later = f" (run {latest.id})" if latest is not None else ""
        raise ConfigError(
            f"run {run_id} cannot be resumed: a later run of cohort {record.cohort_id!r}{later} "
            "planned from a newer state",
            hint="run the export again instead",
        )
    record = latest  # carries the status just updated
    if not resumable(home, record):
        raise ConfigError(
            f"run {run_id} cannot be resumed: it stopped before its plan was written",
            hint="run the export again; nothing of this run was sent",
        )
    return record


def complete_parquet(path: Path) -> bool:
    """Whether ``path`` is a complete Parquet file (a run killed, or out of space, leaves none)."""
    try:
        pq.ParquetFile(path)
    except (FileNotFoundError, pa.ArrowInvalid, OSError):
        return False
    return True
