"""Properties of mirror sync over random sequences of results, interruptions included.

A model of the Braze cohort (a set of identifiers) receives each run's changes
batch by batch. Runs may stop half-way with any subset of their batches
applied (those acknowledged, plus any in flight), then either resume with the
same changes or be abandoned for a run of a new result. After every run that
commits, the cohort must equal the latest result plus the foreign members that
were there all along; and no run ever removes an identifier it did not add.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mirror_helpers import write_identifiers

from cohortsync.export.mirror import ParquetResult, plan_mirror
from cohortsync.export.snapshots import CohortKey, SnapshotStore
from cohortsync.export.spec import MirrorOptions
from support.mirror_model import Step, check_changes, identifiers, play, read_changes, steps

BATCH = 3  # identifiers per request in the model (1,000 in production)
OURS = identifiers("v", 8)
FOREIGN = identifiers("foreign", 3)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    foreign=st.frozensets(st.sampled_from(FOREIGN)),
    runs=st.lists(steps(OURS, batches=10), min_size=1, max_size=6),
)
def test_mirror_converges_to_the_latest_result_and_spares_foreign_members(
    foreign: frozenset[tuple[str, str]], runs: list[Step]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        key = CohortKey.for_destination("http://127.0.0.1:1", "k", "treasuredata", "prop")
        store = SnapshotStore(root / "home", key)
        cohort: set[tuple[str, str]] = set(foreign)
        ever_added: set[tuple[str, str]] = set()
        abandoned: list[Path] = []
        for number, step in enumerate(runs):
            run_id = f"r{number}"
            source = write_identifiers(root / f"result-{run_id}.parquet", sorted(step.result))
            changes_path = root / f"changes-{run_id}.parquet"
            plan = plan_mirror(
                ParquetResult.of(source),
                store.current(),
                work_dir=root / "work",
                options=MirrorOptions(
                    allow_empty=True, max_remove_pct=100, full_resync=step.full_resync
                ),
                abandoned=tuple(abandoned),
                changes_path=changes_path,
                snapshot_dir=store.pending_dir(run_id),
                threads=1,
            )
            store.write_pending_meta(
                run_id, members=plan.result_members, exits=plan.new_known_exits, alias_label=None
            )
            changes = read_changes(changes_path)
            assert (plan.adds, plan.removes) == (
                sum(not remove for *_, remove in changes),
                sum(remove for *_, remove in changes),
            )
            check_changes(changes, step.result, ever_added)
            if not play(step, cohort, changes, BATCH):
                abandoned.append(changes_path)
                store.discard_pending(run_id)
                continue
            store.commit(run_id)
            abandoned.clear()
            assert cohort == set(step.result) | foreign
            snapshot = store.current()
            assert snapshot is not None
            assert snapshot.members == len(step.result)
