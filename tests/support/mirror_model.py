"""A model of a Braze cohort for the mirror's property tests, whatever diffs the runs.

Each run of a random sequence has a result, may re-send everything, and either
finishes or stops with some of its batches applied; a stopped run is then
resumed (its other batches applied) or abandoned for the next run. The local
diff's properties (tests/mirror) and the in-warehouse ones
(tests/warehouse_mirror, tests/warehouse) draw their sequences here and apply
each run's changes to the same model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
from hypothesis import strategies as st

Identifier = tuple[str, str]
Change = tuple[str, str, bool]


def read_changes(path: Path) -> list[Change]:
    """The ``(kind, value, should_remove)`` rows of a changes or plan file, in file order."""
    table = pq.read_table(path, columns=["kind", "value", "should_remove"])
    return list(
        zip(
            table.column("kind").to_pylist(),
            table.column("value").to_pylist(),
            table.column("should_remove").to_pylist(),
            strict=True,
        )
    )


KINDS = ("user_ids", "device_ids", "alias")


@dataclass(frozen=True)
class Step:
    """One run: its result, whether it re-sends everything, and how it ends.

    ``ending`` is "done", or "stopped" with ``applied`` the batches that
    reached Braze before the stop; a stopped run is then "resume"d or
    "abandon"ed for the next step's result.
    """

    result: frozenset[Identifier]
    full_resync: bool
    ending: str
    applied: frozenset[int]
    after_stop: str


def identifiers(prefix: str, per_kind: int) -> list[Identifier]:
    """``per_kind`` identifiers of each kind, named ``<prefix><n>``."""
    return [(kind, f"{prefix}{i}") for kind in KINDS for i in range(per_kind)]


def steps(ours: Sequence[Identifier], *, batches: int) -> st.SearchStrategy[Step]:
    """Runs whose results are subsets of ``ours``, stopped after up to ``batches`` batches."""
    return st.builds(
        Step,
        result=st.frozensets(st.sampled_from(list(ours)), max_size=len(ours)),
        full_resync=st.sampled_from([False, False, False, True]),
        ending=st.sampled_from(["done", "done", "stopped"]),
        applied=st.frozensets(st.integers(0, batches - 1), max_size=batches),
        after_stop=st.sampled_from(["resume", "abandon"]),
    )


def batches_of(changes: list[Change], size: int) -> list[list[Change]]:
    """The run's requests: ``size`` changes each, in plan order."""
    return [changes[start : start + size] for start in range(0, len(changes), size)]


def apply(cohort: set[Identifier], batch: list[Change]) -> None:
    """What Braze does with one acknowledged request."""
    for kind, value, remove in batch:
        (cohort.discard if remove else cohort.add)((kind, value))


def check_changes(
    changes: list[Change], result: frozenset[Identifier], ever_added: set[Identifier]
) -> None:
    """A run's changes: in plan order, each once, never removing what this system did not add
    nor anything of the result; records the run's adds in ``ever_added``."""
    assert changes == sorted(set(changes), key=lambda c: (c[2], c[0], c[1]))
    removed = {(kind, value) for kind, value, remove in changes if remove}
    assert removed <= ever_added, "a removal of something this system never added"
    assert not removed & result
    ever_added |= {(kind, value) for kind, value, remove in changes if not remove}


def play(step: Step, cohort: set[Identifier], changes: list[Change], size: int) -> bool:
    """Apply one run's batches as its ending says; ``False`` when it is abandoned (no commit)."""
    parts = batches_of(changes, size)
    if step.ending == "stopped":
        for index in sorted(step.applied):
            if index < len(parts):
                apply(cohort, parts[index])
        if step.after_stop == "abandon":
            return False
        # Resume: the unacknowledged batches (re-sent in-flight ones are harmless).
        for index, batch in enumerate(parts):
            if index not in step.applied:
                apply(cohort, batch)
        return True
    for batch in parts:
        apply(cohort, batch)
    return True
