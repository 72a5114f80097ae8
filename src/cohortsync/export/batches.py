"""Cut a plan into request bodies of at most 1,000 identifiers.

Bodies are built straight from Arrow slices: one ``to_pylist`` per kind and
one ``orjson.dumps`` per request, no per-identifier Python except for alias
objects. Because the plan is sorted by ``(should_remove, kind, value)``, a
batch holds a few contiguous runs, each becoming one ``cohort_changes``
object.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from cohortsync.export.identifiers import ALIAS
from cohortsync.export.spec import MAX_IDENTIFIERS_PER_REQUEST

READ_BATCH_ROWS = 50_000


@dataclass(frozen=True)
class Batch:
    """One ``cohorts/users`` request: its stable number, body and counts by kind."""

    number: int
    body: bytes
    counts: dict[str, int]

    @property
    def size(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class BodyBuilder:
    """Builds request bodies for one cohort; holds the keys, so never printed."""

    partner_api_key: str
    client_secret: str
    cohort_id: str
    alias_label: str | None = None

    def __repr__(self) -> str:
        return f"BodyBuilder(cohort_id={self.cohort_id!r})"

    def envelope(self) -> dict[str, Any]:
        return {
            "partner_api_key": self.partner_api_key,
            "client_secret": self.client_secret,
            "cohort_id": self.cohort_id,
        }

    def changes_body(self, chunk: pa.Table) -> tuple[bytes, dict[str, int]]:
        """The body of one request for ``chunk`` (columns kind, value, should_remove)."""
        changes: list[dict[str, Any]] = []
        counts: dict[str, int] = {}
        for kind, remove, values in _runs(chunk):
            change: dict[str, Any]
            if kind == ALIAS:
                label = self.alias_label
                change = {
                    "aliases": [{"alias_name": v, "alias_label": label} for v in values.to_pylist()]
                }
            else:
                change = {kind: values.to_pylist()}
            change["should_remove"] = remove
            changes.append(change)
            counts[kind] = counts.get(kind, 0) + len(values)
        body = self.envelope()
        body["cohort_changes"] = changes
        return orjson.dumps(body), counts


def _runs(chunk: pa.Table) -> Iterator[tuple[str, bool, pa.ChunkedArray]]:
    """Contiguous runs of equal ``(kind, should_remove)`` in a sorted chunk."""
    kinds = chunk.column("kind")
    removes = chunk.column("should_remove")
    values = chunk.column("value")
    last = len(chunk) - 1
    first_key = (kinds[0].as_py(), removes[0].as_py())
    if first_key == (kinds[last].as_py(), removes[last].as_py()):
        yield first_key[0], bool(first_key[1]), values  # the common case: one run
        return
    keys = list(zip(kinds.to_pylist(), removes.to_pylist(), strict=True))
    start = 0
    for index in range(1, len(keys) + 1):
        if index == len(keys) or keys[index] != keys[start]:
            kind, remove = keys[start]
            yield kind, bool(remove), values.slice(start, index - start)
            start = index


def rechunk(batches: Iterable[pa.RecordBatch], size: int) -> Iterator[pa.Table]:
    """Re-cut record batches of any sizes into tables of exactly ``size`` rows (last: fewer)."""
    pending: pa.Table | None = None
    for batch in batches:
        table = pa.Table.from_batches([batch])
        if pending is not None and len(pending):
            table = pa.concat_tables([pending, table])
        offset = 0
        while len(table) - offset >= size:
            yield table.slice(offset, size)
            offset += size
        pending = table.slice(offset)
    if pending is not None and len(pending):
        yield pending


def iter_batches(
    plan_path: Path,
    builder: BodyBuilder,
    *,
    skip: frozenset[int] | set[int] = frozenset(),
    batch_size: int = MAX_IDENTIFIERS_PER_REQUEST,
) -> Iterator[Batch]:
    """The plan's requests in batch-number order, leaving out the ``skip`` numbers."""
    parquet = pq.ParquetFile(plan_path)
    record_batches = parquet.iter_batches(
        batch_size=READ_BATCH_ROWS, columns=["kind", "value", "should_remove"]
    )
    for number, chunk in enumerate(rechunk(record_batches, batch_size)):
        if number in skip:
            continue
        body, counts = builder.changes_body(chunk)
        yield Batch(number, body, counts)
