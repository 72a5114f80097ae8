"""Stage a result's identifiers out of core, deduplicated and counted.

The Arrow stream of the source is read once, by DuckDB, in a per-run
database under ``$COHORTSYNC_HOME/runs/<run_id>/`` with a small memory limit
and a spill directory beside it: ten million identifiers go through a
``GROUP BY (kind, value)`` on disk instead of living as Python objects.

While DuckDB pulls the stream, a thin wrapper counts rows, NULL and empty
values per kind with Arrow (no per-row Python); duplicates are what the
distinct count leaves over. :meth:`Staging.identifiers_sql` is the relation
of distinct identifiers that :mod:`plan` turns into changes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from cohortsync.export.identifiers import KINDS, IdentifierColumns

STAGING_MEMORY_LIMIT = "128MB"
STAGING_THREADS = 2
SOURCE_VIEW = "source_stream"


@dataclass
class KindCounts:
    """What one identifier kind contributed: values kept and values skipped."""

    values: int = 0  # non-NULL, non-empty values read, duplicates included
    distinct: int = 0
    null: int = 0
    empty: int = 0

    @property
    def duplicate(self) -> int:
        return self.values - self.distinct


@dataclass
class StagedCounts:
    """Rows read from the source and per-kind counts of its identifiers."""

    rows_read: int = 0
    kinds: dict[str, KindCounts] = field(default_factory=dict)

    def skipped(self) -> dict[str, int]:
        """Skipped values over every kind: ``{"null", "empty", "duplicate"}``."""
        return {
            "null": sum(k.null for k in self.kinds.values()),
            "empty": sum(k.empty for k in self.kinds.values()),
            "duplicate": sum(k.duplicate for k in self.kinds.values()),
        }

    def skipped_by_kind(self) -> dict[str, dict[str, int]]:
        return {
            kind: {"null": c.null, "empty": c.empty, "duplicate": c.duplicate}
            for kind, c in self.kinds.items()
        }


class SourceStreamFailed(Exception):
    """The source stream raised while being staged; ``cause`` is what it raised."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class Staging:
    """A run's staging database; use as a context manager.

    Args:
        run_dir: the run's directory; the database and its spill files go there.
        memory_limit: DuckDB's memory limit, which bounds the run's peak memory.
    """

    def __init__(self, run_dir: Path, *, memory_limit: str = STAGING_MEMORY_LIMIT) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        self.path = run_dir / "staging.duckdb"
        self.connection = duckdb.connect(
            str(self.path),
            config={
                "memory_limit": memory_limit,
                "temp_directory": str(run_dir / "spill"),
                "threads": STAGING_THREADS,
            },
        )
        self.counts = StagedCounts()
        self._counted: _CountingStream | None = None

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection and delete the staging file and its spill files."""
        self.connection.close()
        for path in (self.path, self.path.with_name(self.path.name + ".wal")):
            path.unlink(missing_ok=True)

    def identifiers_sql(self, reader: pa.RecordBatchReader, columns: IdentifierColumns) -> str:
        """Register ``reader`` and return the SQL of its distinct identifiers.

        The relation has columns ``kind`` (UTINYINT, the index in :data:`KINDS`)
        and ``value`` (VARCHAR), without NULL or empty values. The stream can be
        read only once: run exactly one statement over it, then call
        :meth:`check_stream` and :meth:`set_distinct`.
        """
        names = list(dict.fromkeys(columns.columns.values()))
        kinds_of = {kind: columns.columns[kind] for kind in columns.kinds}
        self.counts.kinds = {kind: KindCounts() for kind in columns.kinds}

        schema = pa.schema([reader.schema.field(name) for name in names])
        counted = _CountingStream(reader, names, lambda batch: self._count(batch, kinds_of))
        self._counted = counted
        self.connection.register(SOURCE_VIEW, pa.RecordBatchReader.from_batches(schema, counted))
        kinds = columns.kinds
        codes = ", ".join(str(KINDS.index(kind)) for kind in kinds)
        values = ", ".join(f"{_quote(kinds_of[kind])}::VARCHAR" for kind in kinds)
        if len(kinds) == 1:
            pairs = f"SELECT {codes}::UTINYINT AS kind, {values} AS value FROM {SOURCE_VIEW}"
        else:
            pairs = (
                f"SELECT unnest([{codes}])::UTINYINT AS kind, unnest([{values}]) AS value "
                f"FROM {SOURCE_VIEW}"
            )
        return (
            f"SELECT kind, value FROM ({pairs}) "
            "WHERE value IS NOT NULL AND value <> '' GROUP BY kind, value"
        )

    def check_stream(self, error: duckdb.Error | None = None) -> None:
        """Raise :class:`SourceStreamFailed` if the source failed while being read."""
        if self._counted is not None and self._counted.failure is not None:
            raise SourceStreamFailed(self._counted.failure) from error

    def set_distinct(self, distinct: dict[str, int]) -> None:
        """Record the distinct count of each kind, once the identifiers are planned."""
        for kind, counts in self.counts.kinds.items():
            counts.distinct = distinct.get(kind, 0)

    def _count(self, batch: pa.RecordBatch, kinds_of: dict[str, str]) -> None:
        self.counts.rows_read += batch.num_rows
        for kind, column in kinds_of.items():
            array = batch.column(column)
            if pa.types.is_dictionary(array.type):
                array = array.dictionary_decode()
            nulls = array.null_count
            empty = pc.sum(pc.equal(pc.binary_length(array), 0)).as_py() or 0
            counts = self.counts.kinds[kind]
            counts.null += nulls
            counts.empty += empty
            counts.values += len(array) - nulls - empty


class _CountingStream:
    """The source's batches, counted on the way; safe to pull from several threads.

    DuckDB may pull a registered stream from more than one of its threads, so
    this is a locked iterator rather than a generator (which would raise
    "generator already executing"). The first error of the source is kept so
    that it is reported as the source's failure, not as a staging failure.
    """

    def __init__(
        self,
        reader: pa.RecordBatchReader,
        names: list[str],
        count: Callable[[pa.RecordBatch], None],
    ) -> None:
        self._reader = reader
        self._names = names
        self._count = count
        self._lock = threading.Lock()
        self.failure: BaseException | None = None

    def __iter__(self) -> _CountingStream:
        return self

    def __next__(self) -> pa.RecordBatch:
        with self._lock:
            try:
                batch = self._reader.read_next_batch()
            except StopIteration:
                raise
            except Exception as error:
                self.failure = self.failure or error
                raise
            self._count(batch)
            return batch.select(self._names)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
