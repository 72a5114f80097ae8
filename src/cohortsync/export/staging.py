"""Stage a result's identifiers out of core, deduplicated and counted.

The source is read once, by DuckDB, in a per-run database under
``$COHORTSYNC_HOME/runs/<run_id>/`` with a small memory limit and a spill
directory beside it: ten million identifiers go through a
``GROUP BY (kind, value)`` on disk instead of living as Python objects.

Two ways in, one relation out (:meth:`Staging.identifiers_sql`, the distinct
identifiers that :mod:`plan` turns into changes):

- **Arrow stream** (any engine): the engine's record batches are registered
  in the staging database; a thin wrapper counts rows, NULL and empty values
  per kind with Arrow while DuckDB pulls them.
- **Pushdown** (the embedded DuckDB warehouse): the warehouse file is
  attached read-only to the staging database and the query runs there, so
  one DuckDB instance under one memory limit does all the work, in parallel,
  with no Arrow hop and no second buffer pool. Rows, NULL and empty values
  are then counted by one more scan of the query in the same read-only
  attachment (writers are locked out, so both scans see the same rows).

Either way duplicates are what the distinct count leaves over.
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

STAGING_MEMORY_LIMIT = "100MB"
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
        self._pushed_sql: str | None = None
        self._columns: IdentifierColumns | None = None

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection and delete the staging file and its spill files."""
        self.connection.close()
        for path in (self.path, self.path.with_name(self.path.name + ".wal")):
            path.unlink(missing_ok=True)

    def attach_warehouse(self, path: str, sql: str) -> pa.Schema | None:
        """Read the source inside this database: attach the DuckDB warehouse file read-only.

        Returns the result's schema (no row is read), or ``None`` when the file
        cannot be attached here (held by a writer, or open in this process):
        then the caller streams the source through its engine instead.

        Raises:
            duckdb.Error: the query does not bind (bad SQL, unknown table or
                column); the caller reports it as the source's failure.
        """
        try:
            self.connection.execute(f"ATTACH {_literal(path)} AS warehouse (READ_ONLY)")
            self.connection.execute("USE warehouse")
        except duckdb.Error:
            return None
        query = sql.strip().rstrip(";")
        schema = self.connection.sql(f"SELECT * FROM ({query}) AS source LIMIT 0").to_arrow_table()
        self._pushed_sql = query
        return schema.schema

    def identifiers_sql(
        self, reader: pa.RecordBatchReader | None, columns: IdentifierColumns
    ) -> str:
        """Return the SQL of the source's distinct identifiers.

        The relation has columns ``kind`` (UTINYINT, the index in :data:`KINDS`)
        and ``value`` (VARCHAR), without NULL or empty values. ``reader`` is the
        source's stream, or ``None`` after :meth:`attach_warehouse`. A stream can
        be read only once: run exactly one statement over the relation, then
        call :meth:`check_stream` and :meth:`set_distinct`.
        """
        names = list(dict.fromkeys(columns.columns.values()))
        kinds_of = {kind: columns.columns[kind] for kind in columns.kinds}
        self.counts.kinds = {kind: KindCounts() for kind in columns.kinds}
        self._columns = columns
        if reader is None:
            if self._pushed_sql is None:
                raise ValueError("identifiers_sql needs a reader or attach_warehouse first")
            return _distinct_sql(f"({self._pushed_sql}) AS source", columns)

        schema = pa.schema([reader.schema.field(name) for name in names])
        counted = _CountingStream(reader, names, lambda batch: self._count(batch, kinds_of))
        self._counted = counted
        self.connection.register(SOURCE_VIEW, pa.RecordBatchReader.from_batches(schema, counted))
        return _distinct_sql(SOURCE_VIEW, columns)

    def check_stream(self, error: duckdb.Error | None = None) -> None:
        """Raise :class:`SourceStreamFailed` if the source failed while being read.

        After a pushdown the query runs in this database, so any error of the
        statement except running out of disk or memory is the source's.
        """
        if self._counted is not None and self._counted.failure is not None:
            raise SourceStreamFailed(self._counted.failure) from error
        if (
            self._pushed_sql is not None
            and error is not None
            and not isinstance(error, duckdb.IOException | duckdb.OutOfMemoryException)
        ):
            raise SourceStreamFailed(error) from error

    def set_distinct(self, distinct: dict[str, int]) -> None:
        """Record the distinct count of each kind, once the identifiers are planned.

        After a pushdown this also counts rows, NULL and empty values (one scan).
        """
        if self._pushed_sql is not None and self._columns is not None:
            self._count_pushed_down(self._pushed_sql, self._columns)
        for kind, counts in self.counts.kinds.items():
            counts.distinct = distinct.get(kind, 0)

    def _count_pushed_down(self, sql: str, columns: IdentifierColumns) -> None:
        kinds = columns.kinds
        measures = ["count(*)"]
        for kind in kinds:
            column = _quote(columns.columns[kind])
            measures += [
                f"count(*) FILTER (WHERE {column} IS NULL)",
                f"count(*) FILTER (WHERE {column}::VARCHAR = '')",
            ]
        row = self.connection.execute(
            f"SELECT {', '.join(measures)} FROM ({sql}) AS source"
        ).fetchone()
        assert row is not None
        self.counts.rows_read = int(row[0])
        for index, kind in enumerate(kinds):
            null, empty = int(row[1 + 2 * index]), int(row[2 + 2 * index])
            self.counts.kinds[kind] = KindCounts(
                values=self.counts.rows_read - null - empty, null=null, empty=empty
            )

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


def _distinct_sql(relation: str, columns: IdentifierColumns) -> str:
    """SQL of the distinct non-empty ``(kind, value)`` pairs of ``relation``."""
    kinds = columns.kinds
    codes = ", ".join(str(KINDS.index(kind)) for kind in kinds)
    values = ", ".join(f"{_quote(columns.columns[kind])}::VARCHAR" for kind in kinds)
    if len(kinds) == 1:
        pairs = f"SELECT {codes}::UTINYINT AS kind, {values} AS value FROM {relation}"
    else:
        pairs = (
            f"SELECT unnest([{codes}])::UTINYINT AS kind, unnest([{values}]) AS value "
            f"FROM {relation}"
        )
    return (
        f"SELECT kind, value FROM ({pairs}) "
        "WHERE value IS NOT NULL AND value <> '' GROUP BY kind, value"
    )


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
