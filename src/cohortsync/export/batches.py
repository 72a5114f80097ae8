"""Cut a plan into request bodies of at most 1,000 identifiers.

The plan stores each identifier already encoded as JSON with a trailing
comma (the ``item`` column), so a body is assembled from byte slices of
Arrow buffers: no Python object per identifier, no JSON encoding per request.
Because the plan is grouped by ``(should_remove, kind)``, a batch holds one
run of equal ``(kind, should_remove)``, rarely a few, each becoming one
``cohort_changes`` object.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from cohortsync.export.identifiers import ALIAS
from cohortsync.export.spec import MAX_IDENTIFIERS_PER_REQUEST

READ_BATCH_ROWS = 50_000
PLAN_COLUMNS = ["kind", "should_remove", "item"]


@dataclass(frozen=True)
class Batch:
    """One request of the plan (``cohorts/users``, ``users/track``): number, body, counts."""

    number: int
    body: bytes
    counts: dict[str, int]

    @property
    def size(self) -> int:
        return sum(self.counts.values())


class ChangesBody(Protocol):
    """What turns a chunk of the plan into one request body (a destination's sink)."""

    def changes_body(self, chunk: pa.Table) -> tuple[bytes, dict[str, int]]: ...


class BodyBuilder:
    """Builds the request bodies of one cohort; holds the keys, so never printed.

    Args:
        partner_api_key: the vendor's key for the endpoint's region.
        client_secret: the workspace's data import key.
        cohort_id: the cohort the changes go to.
    """

    def __init__(self, partner_api_key: str, client_secret: str, cohort_id: str) -> None:
        envelope = orjson.dumps(
            {
                "partner_api_key": partner_api_key,
                "client_secret": client_secret,
                "cohort_id": cohort_id,
            }
        )
        self._prefix = envelope[:-1] + b',"cohort_changes":['
        self.cohort_id = cohort_id

    def __repr__(self) -> str:
        return f"BodyBuilder(cohort_id={self.cohort_id!r})"

    def changes_body(self, chunk: pa.Table) -> tuple[bytes, dict[str, int]]:
        """The body of one request for ``chunk`` (columns kind, should_remove, item)."""
        parts = [self._prefix]
        counts: dict[str, int] = {}
        for index, (kind, remove, items) in enumerate(runs_of(chunk)):
            key = b'"aliases"' if kind == ALIAS else orjson.dumps(kind)
            parts.append(b"," if index else b"")
            parts += [b"{", key, b":[", joined_items(items)[:-1], b"]"]
            parts.append(b',"should_remove":true}' if remove else b',"should_remove":false}')
            counts[kind] = counts.get(kind, 0) + len(items)
        parts.append(b"]}")
        return b"".join(parts), counts


def joined_items(items: pa.ChunkedArray | pa.Array) -> bytes:
    """The concatenated bytes of a string array's values, straight from its data buffer."""
    if isinstance(items, pa.ChunkedArray):
        return b"".join(joined_items(chunk) for chunk in items.chunks)
    if len(items) == 0:
        return b""
    _, offsets, data = items.buffers()
    raw = memoryview(offsets)
    positions = raw.cast("q") if pa.types.is_large_string(items.type) else raw.cast("i")
    start, end = positions[items.offset], positions[items.offset + len(items)]
    return memoryview(data)[start:end].tobytes()


def runs_of(chunk: pa.Table) -> Iterator[tuple[str, bool, pa.ChunkedArray]]:
    """Contiguous runs of equal ``(kind, should_remove)`` in a grouped chunk."""
    kinds = chunk.column("kind")
    removes = chunk.column("should_remove")
    items = chunk.column("item")
    last = len(chunk) - 1
    first_key = (kinds[0].as_py(), removes[0].as_py())
    if first_key == (kinds[last].as_py(), removes[last].as_py()):
        yield first_key[0], bool(first_key[1]), items  # the common case: one run
        return
    keys = list(zip(kinds.to_pylist(), removes.to_pylist(), strict=True))
    start = 0
    for index in range(1, len(keys) + 1):
        if index == len(keys) or keys[index] != keys[start]:
            kind, remove = keys[start]
            yield kind, bool(remove), items.slice(start, index - start)
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
    builder: ChangesBody,
    *,
    skip: frozenset[int] | set[int] = frozenset(),
    batch_size: int = MAX_IDENTIFIERS_PER_REQUEST,
) -> Iterator[Batch]:
    """The plan's requests in batch-number order, leaving out the ``skip`` numbers."""
    parquet = pq.ParquetFile(plan_path, pre_buffer=False)  # pre-buffering keeps every row group
    record_batches = parquet.iter_batches(batch_size=READ_BATCH_ROWS, columns=PLAN_COLUMNS)
    for number, chunk in enumerate(rechunk(record_batches, batch_size)):
        if number in skip:
            continue
        body, counts = builder.changes_body(chunk)
        yield Batch(number, body, counts)
