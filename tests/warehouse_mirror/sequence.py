"""One random sequence of mirror runs diffed inside a warehouse, checked run by run.

The PostgreSQL and the Spark property tests draw their sequences from
:mod:`support.mirror_model` and play them here, with the warehouse's own way
to load a result and to read a snapshot table back.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from cohortsync.export.snapshots import CohortKey, SnapshotStore
from cohortsync.export.spec import MirrorOptions, Source
from cohortsync.export.warehouse_mirror import WarehouseMirror
from support.mirror_model import Identifier, Step, check_changes, play, read_changes

BATCH = 3  # identifiers per request in the model (1,000 in production)


def play_in_warehouse(
    runs: list[Step],
    foreign: frozenset[Identifier],
    *,
    warehouse_url: str,
    schema: str,
    source: Source,
    load_result: Callable[[frozenset[Identifier]], None],
    members_of: Callable[[str], set[Identifier]],
) -> None:
    """Play ``runs`` on a cohort that also holds ``foreign`` members; check after each commit.

    Every run's changes are in plan order and never remove what this system
    did not add; after each committed run the cohort is the result plus the
    foreign members, and the warehouse's members table is the result. A
    commit is repeated, as a resumed run that died after it would.
    """
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        key = CohortKey.for_destination("http://127.0.0.1:1", "k", "treasuredata", root.name)
        store = SnapshotStore(root / "home", key)
        cohort: set[Identifier] = set(foreign)
        ever_added: set[Identifier] = set()
        abandoned: list[Path] = []
        for number, step in enumerate(runs):
            run_id = f"20261203T000000-{number:04x}"
            load_result(step.result)
            planner = WarehouseMirror(
                store,
                run_id,
                MirrorOptions(allow_empty=True, max_remove_pct=100, full_resync=step.full_resync),
                plan_path=root / "home" / "runs" / run_id / "changes.parquet",
                alias_label="email",
                warehouse_url=warehouse_url,
                schema=schema,
                abandoned=tuple(abandoned),
            )
            prepared = planner.prepare(source, skip_invalid=False, batch_size=BATCH)
            changes = read_changes(prepared.plan.path)
            check_changes(changes, step.result, ever_added)
            if not play(step, cohort, changes, BATCH):
                abandoned.append(prepared.plan.path)
                planner.discard()
                continue
            planner.commit()
            planner.commit()  # a resumed run that died after its commit commits again: a no-op
            abandoned.clear()
            assert cohort == set(step.result) | foreign
            snapshot = store.current()
            assert snapshot is not None and snapshot.members == len(step.result)
            assert snapshot.warehouse is not None
            assert members_of(snapshot.warehouse["members_table"]) == set(step.result)
