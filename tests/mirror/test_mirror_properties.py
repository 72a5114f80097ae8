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
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mirror_helpers import read_changes, write_identifiers

from cohortsync.export.mirror import ParquetResult, plan_mirror
from cohortsync.export.snapshots import CohortKey, SnapshotStore
from cohortsync.export.spec import MirrorOptions

BATCH = 3  # identifiers per request in the model (1,000 in production)
KINDS = ("user_ids", "device_ids", "alias")
OURS = [(kind, f"v{i}") for kind in KINDS for i in range(8)]
FOREIGN = [(kind, f"foreign{i}") for kind in KINDS for i in range(3)]


@dataclass(frozen=True)
class Step:
    """One run: its result, whether it re-sends everything, and how it ends.

    ``ending`` is "done", or "stopped" with ``applied`` the batches that
    reached Braze before the stop; a stopped run is then "resume"d or
    "abandon"ed for the next step's result.
    """

    result: frozenset[tuple[str, str]]
    full_resync: bool
    ending: str
    applied: frozenset[int]
    after_stop: str


steps = st.builds(
    Step,
    result=st.frozensets(st.sampled_from(OURS), max_size=len(OURS)),
    full_resync=st.sampled_from([False, False, False, True]),
    ending=st.sampled_from(["done", "done", "stopped"]),
    applied=st.frozensets(st.integers(0, 9), max_size=10),
    after_stop=st.sampled_from(["resume", "abandon"]),
)


def batches(changes: list[tuple[str, str, bool]]) -> list[list[tuple[str, str, bool]]]:
    return [changes[start : start + BATCH] for start in range(0, len(changes), BATCH)]


def apply(cohort: set[tuple[str, str]], batch: list[tuple[str, str, bool]]) -> None:
    for kind, value, remove in batch:
        if remove:
            cohort.discard((kind, value))
        else:
            cohort.add((kind, value))


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    foreign=st.frozensets(st.sampled_from(FOREIGN)),
    runs=st.lists(steps, min_size=1, max_size=6),
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
            assert changes == sorted(set(changes), key=lambda c: (c[2], c[0], c[1]))
            assert (plan.adds, plan.removes) == (
                sum(not remove for *_, remove in changes),
                sum(remove for *_, remove in changes),
            )
            removed = {(kind, value) for kind, value, remove in changes if remove}
            added = {(kind, value) for kind, value, remove in changes if not remove}
            assert removed <= ever_added, "a removal of something this system never added"
            assert not removed & step.result
            ever_added |= added

            parts = batches(changes)
            if step.ending == "stopped":
                for index in sorted(step.applied):
                    if index < len(parts):
                        apply(cohort, parts[index])
                if step.after_stop == "abandon":
                    abandoned.append(changes_path)
                    store.discard_pending(run_id)
                    continue
                # Resume: the same changes, the unacknowledged batches (re-sent in-flight ones
                # are harmless), then the commit.
                for index, batch in enumerate(parts):
                    if index not in step.applied:
                        apply(cohort, batch)
            else:
                for batch in parts:
                    apply(cohort, batch)
            store.commit(run_id)
            abandoned.clear()
            assert cohort == set(step.result) | foreign
            snapshot = store.current()
            assert snapshot is not None
            assert snapshot.members == len(step.result)
