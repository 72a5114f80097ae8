"""The planner of an export, chosen once from its operation.

``add`` and ``remove`` send the staged identifiers as they are
(:class:`~cohortsync.export.plan.AddRemovePlanner`); ``mirror`` diffs them
against the cohort's snapshot: inside the warehouse where its engine can
(:class:`~cohortsync.export.warehouse_mirror.WarehouseMirror`, PostgreSQL and Spark,
unless ``COHORTSYNC_MIRROR_DIFF=local``), else in cohortsync
(:class:`~cohortsync.export.mirror.MirrorStep`).
The rest of a run only talks to the :class:`~cohortsync.export.plan.Planner`
it gets here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cohortsync.errors import ConfigError
from cohortsync.export.mirror import MirrorStep
from cohortsync.export.plan import CHANGES_FILE, AddRemovePlanner, Planner
from cohortsync.export.snapshots import SnapshotStore
from cohortsync.export.spec import ExportSpec
from cohortsync.export.stopping import StopToken
from cohortsync.identity import CohortKey
from cohortsync.settings import Settings
from cohortsync.warehouse.capabilities import (
    capabilities_of,
    check_mirror_diff_mode,
    check_snapshot_schema,
)


def planner_for(
    spec: ExportSpec,
    home: Path,
    key: CohortKey,
    run_id: str,
    *,
    abandoned: Sequence[Path] = (),
    dry_run: bool = False,
    stop: StopToken | None = None,
    settings: Settings | None = None,
) -> Planner:
    """The planner of ``spec``'s operation for the run ``run_id`` of the cohort ``key``.

    Args:
        home: the cohortsync home (a mirror's snapshots live there).
        abandoned: plans of earlier runs that may have been applied in part
            (a mirror folds them in).
        dry_run: plan only; keep every stored state untouched.
        stop: the run's stop token (a mirror's diff stops on its request).
        settings: where the source is read and a mirror diffs; ``None`` diffs in
            cohortsync.

    Raises:
        ConfigError: the operation is not one cohortsync knows, or
            ``COHORTSYNC_MIRROR_DIFF`` or ``COHORTSYNC_SNAPSHOT_SCHEMA`` is wrong.
    """
    if spec.operation in ("add", "remove"):
        return AddRemovePlanner(remove=spec.operation == "remove")
    if spec.operation == "mirror":
        url = in_warehouse_url(spec, settings)
        if url is not None and settings is not None:
            # Loaded only for such a mirror: a plain export keeps its imports lean.
            from cohortsync.export.warehouse_mirror import WarehouseMirror

            return WarehouseMirror(
                SnapshotStore(home, key),
                run_id,
                spec.mirror,
                plan_path=home / "runs" / run_id / CHANGES_FILE,
                alias_label=spec.alias_column,
                warehouse_url=url,
                schema=check_snapshot_schema(settings.snapshot_schema),
                abandoned=abandoned,
                dry_run=dry_run,
                stop=stop,
            )
        return MirrorStep(
            SnapshotStore(home, key),
            run_id,
            spec.mirror,
            alias_label=spec.alias_column,
            abandoned=abandoned,
            dry_run=dry_run,
            stop=stop,
        )
    raise ConfigError(
        f"operation {spec.operation!r} is not supported by this export",
        hint="use --operation add, remove or mirror",
    )


def in_warehouse_url(spec: ExportSpec, settings: Settings | None) -> str | None:
    """The warehouse a mirror of ``spec`` diffs inside, or ``None`` to diff in cohortsync."""
    if settings is None or check_mirror_diff_mode(settings.mirror_diff) == "local":
        return None
    url = spec.source.warehouse_url or settings.warehouse_url
    return url if capabilities_of(url).diffs_in_warehouse else None


def check_planned_state(spec: ExportSpec, home: Path, key: CohortKey) -> None:
    """Refuse, before a run is recorded, state its planner could not read.

    Raises:
        FileFormatTooNew: a mirror's current snapshot was written by a newer release.
    """
    if spec.operation == "mirror":
        SnapshotStore(home, key).check_current()
