"""Stage a result's identifiers out of core, deduplicated and counted.

The source is read by DuckDB, in a per-run database under
``$COHORTSYNC_HOME/runs/<run_id>/`` with a small memory limit and a spill
directory beside it: ten million identifiers go through DuckDB's hash
aggregation, which spills to disk, instead of living as Python objects.

Two ways in, one relation out (:meth:`Staging.identifiers_sql`, the distinct
identifiers that :mod:`plan` turns into changes):

- **Arrow stream** (any engine): the engine's record batches are copied once
  into a table of the staging database (on disk, under the memory limit); a
  thin wrapper counts rows, NULL and empty values per kind with Arrow while
  DuckDB pulls them.
- **Pushdown** (the embedded DuckDB warehouse): the warehouse file is
  attached read-only to the staging database and the query runs there, so
  one DuckDB instance under one memory limit does all the work, in parallel,
  with no Arrow hop and no second buffer pool. Rows, NULL and empty values
  are counted first by one scan of the query in the same read-only
  attachment (writers are locked out, so every scan sees the same rows).

Identifiers Braze would refuse (:func:`~cohortsync.export.identifiers.invalid_reason`:
too long, control characters) are counted in the same scan as NULL and empty
values, so a bad value in row 2,500 fails the run before the first request
instead of after 2,000 identifiers were sent. The first few are then looked
up with their row numbers for the message. With ``skip_invalid`` they are
left out of the deduplication passes and counted as skipped instead.

Deduplication is bounded whatever the size: DuckDB's aggregation spills, but
the groups of one partition must still fit under the memory limit when it is
finalised (about twenty million short strings at 100 MB). So each kind is
deduplicated on its own, and a kind with more than :data:`PASS_VALUES` values
(or :data:`PASS_BYTES` bytes) is split by ``hash(value)`` into several
passes, each deduplicating a disjoint share. With one pass in all, the
relation is that pass's query; otherwise the passes are appended, one after
the other, to an ``identifiers`` table on disk. Either way the relation lists
the kinds in :data:`KINDS` order (insertion order is preserved), so a plan
needs no sort over all rows. Duplicates are what the distinct count leaves over.
"""

from __future__ import annotations

import math
import os
import re
import threading
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from cohortsync.errors import SourceError
from cohortsync.export.identifiers import (
    KINDS,
    SAMPLE_INVALID,
    IdentifierColumns,
    InvalidIdentifier,
    invalid_mask,
    invalid_reason,
    invalid_sql,
)
from cohortsync.export.stopping import StopToken

STAGING_MEMORY_LIMIT = "100MB"
STAGING_THREADS = 2
SOURCE_VIEW = "source_stream"
SOURCE_TABLE = "source_rows"
IDENTIFIERS_TABLE = "identifiers"
# One deduplication pass handles at most this many values of one kind, or this
# many bytes of them; larger kinds are split by hash over several passes so
# that every pass fits under STAGING_MEMORY_LIMIT (the limit was measured at
# 20 to 30 million 25-byte values at 100 MB; these leave a margin of two).
PASS_VALUES = 10_000_000
PASS_BYTES = 256 * 1024 * 1024
# Passes of at most half those sizes deduplicate under this smaller limit: ten
# million 25-byte values were measured to fit at 64 MB (fifteen million did
# not), so half a full pass keeps the margin of two, at the same speed, and a
# result of a few million identifiers peaks some 35 MB lower.
SMALL_PASS_MEMORY_LIMIT = "64MB"


@dataclass
class KindCounts:
    """What one identifier kind contributed: values kept and values skipped."""

    values: int = 0  # valid non-NULL, non-empty values read, duplicates included
    distinct: int = 0
    null: int = 0
    empty: int = 0
    invalid: int = 0  # values Braze would refuse (identifiers.invalid_reason)
    value_bytes: int = 0  # bytes of those values: how many passes deduplicate them

    @property
    def duplicate(self) -> int:
        return self.values - self.distinct


@dataclass
class StagedCounts:
    """Rows read from the source and per-kind counts of its identifiers."""

    rows_read: int = 0
    kinds: dict[str, KindCounts] = field(default_factory=dict)
    invalid_samples: list[InvalidIdentifier] = field(default_factory=list)  # the first rows

    @property
    def invalid(self) -> int:
        return sum(k.invalid for k in self.kinds.values())

    def skipped(self) -> dict[str, int]:
        """Skipped values over every kind: ``{"null", "empty", "invalid", "duplicate"}``."""
        return {
            "null": sum(k.null for k in self.kinds.values()),
            "empty": sum(k.empty for k in self.kinds.values()),
            "invalid": self.invalid,
            "duplicate": sum(k.duplicate for k in self.kinds.values()),
        }

    def skipped_by_kind(self) -> dict[str, dict[str, int]]:
        return {
            kind: {"null": c.null, "empty": c.empty, "invalid": c.invalid, "duplicate": c.duplicate}
            for kind, c in self.kinds.items()
        }

    def add_samples(self, found: list[InvalidIdentifier]) -> None:
        """Keep the first :data:`SAMPLE_INVALID` invalid identifiers by row."""
        if found:
            merged = sorted([*self.invalid_samples, *found], key=lambda item: item.row)
            self.invalid_samples = merged[:SAMPLE_INVALID]


class InvalidIdentifiers(SourceError):
    """The result holds identifiers Braze would refuse; nothing was sent.

    Raised while planning, before the first request, unless the export skips
    them (``--skip-invalid``). The message names the first one: its kind, its
    value (escaped and cut), its row of the result and the reason.
    """

    def __init__(self, counts: StagedCounts) -> None:
        first = counts.invalid_samples[0] if counts.invalid_samples else None
        total = counts.invalid
        what = f"{total:,} identifier{'s' if total != 1 else ''} of the result Braze would refuse"
        if first is not None:
            what += f", the first in {first.describe()}"
        super().__init__(
            f"{what}; nothing was sent",
            hint="fix the query, or pass --skip-invalid to skip and count them",
        )
        self.counts = counts


class SourceStreamFailed(Exception):
    """The source stream raised while being staged; ``cause`` is what it raised."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class Staging:
    """A run's staging database; use as a context manager.

    Args:
        run_dir: the run's directory; the database and its spill files go there.
        memory_limit: DuckDB's memory limit, which bounds the run's peak memory;
            :data:`STAGING_MEMORY_LIMIT` by default.
        pass_values: the most values of one kind one deduplication pass takes;
            :data:`PASS_VALUES` by default (:data:`PASS_BYTES` scales with it).
        skip_invalid: leave out (and count) identifiers Braze would refuse,
            instead of raising :class:`InvalidIdentifiers`.
        also_writes: directories besides ``run_dir`` that this database writes
            (a mirror's new snapshot); the only other places a pushed-down
            query can reach.
        stop: the run's stop token. It is checked before each batch of the
            source's stream and between statements, and a request interrupts
            the statement running (``connection.interrupt()``), so a run
            stopped while reading ends within a fraction of a second.
        on_rows: told how many more rows of the source were read, batch by
            batch (called from DuckDB's threads on the stream path).
    """

    def __init__(
        self,
        run_dir: Path,
        *,
        memory_limit: str | None = None,
        pass_values: int | None = None,
        skip_invalid: bool = False,
        also_writes: Sequence[Path] = (),
        stop: StopToken | None = None,
        on_rows: Callable[[int], None] | None = None,
    ) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        self._on_rows = on_rows or (lambda _rows: None)
        self.also_writes = tuple(also_writes)
        self.path = run_dir / "staging.duckdb"
        self._memory_limit = memory_limit or STAGING_MEMORY_LIMIT
        self.connection = duckdb.connect(
            str(self.path),
            config={
                "memory_limit": self._memory_limit,
                "temp_directory": str(run_dir / "spill"),
                "threads": STAGING_THREADS,
            },
        )
        self.pass_values = pass_values or PASS_VALUES
        self.skip_invalid = skip_invalid
        self.pass_bytes = max(1, PASS_BYTES * self.pass_values // PASS_VALUES)
        self.passes = 0
        # Tables go to this database even after "USE warehouse" (attach_warehouse).
        ((database,),) = self.connection.execute("SELECT current_database()").fetchall()
        self._own = f"{_quote(str(database))}.main."
        self.counts = StagedCounts()
        self._counted: _CountingStream | None = None
        self._pushed_sql: str | None = None
        self._columns: IdentifierColumns | None = None
        self.stop = stop or StopToken()
        self._interrupting = ExitStack()
        self._interrupting.enter_context(self.stop.interrupting(self.connection.interrupt))

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection and delete the staging file and its spill files."""
        self._interrupting.close()
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
            self._confine_to_run_dir(path)
            self.connection.execute(f"ATTACH {_literal(path)} AS warehouse (READ_ONLY)")
            self.connection.execute("USE warehouse")
        except duckdb.Error:
            return None
        query = sql.strip().rstrip(";")
        schema = self.connection.sql(f"SELECT * FROM ({query}) AS source LIMIT 0").to_arrow_table()
        self._pushed_sql = query
        return schema.schema

    def _confine_to_run_dir(self, warehouse: str) -> None:
        """Switch this database's file access off but for the run's directory and the warehouse.

        The pushed-down query is the user's SQL, and it runs here, not on the
        engine's locked-down connection. The engine checked and bound it first;
        this is the second wall: even a file path the check missed reaches
        nothing but the run's own files and the warehouse being read. DuckDB
        cannot switch access back on, so this happens once, just before ATTACH.
        """
        directories = [self.path.parent, *self.also_writes]
        warehouse_file = Path(warehouse).resolve()
        self.connection.execute(
            "SET allowed_directories = ?",
            [[f"{directory.resolve()}{os.sep}" for directory in directories]],
        )
        self.connection.execute(
            "SET allowed_paths = ?", [[str(warehouse_file), f"{warehouse_file}.wal"]]
        )
        self.connection.execute("SET enable_external_access = false")

    def identifiers_sql(
        self, reader: pa.RecordBatchReader | None, columns: IdentifierColumns
    ) -> str:
        """Stage and count the source; return the SQL of its distinct identifiers.

        The relation has columns ``kind`` (UTINYINT, the index in :data:`KINDS`)
        and ``value`` (VARCHAR), without NULL or empty values, in :data:`KINDS`
        order. ``reader`` is the source's stream, or ``None`` after
        :meth:`attach_warehouse`. Rows, NULL and empty values are counted here;
        call :meth:`set_distinct` once the identifiers are planned.

        Raises:
            InvalidIdentifiers: the result holds identifiers Braze would refuse
                and ``skip_invalid`` is off (raised before any deduplication).
            SourceStreamFailed: the source failed while being read.
            duckdb.Error: staging failed (disk full, out of memory).
        """
        names = list(dict.fromkeys(columns.columns.values()))
        kinds_of = {kind: columns.columns[kind] for kind in columns.kinds}
        self.counts.kinds = {kind: KindCounts() for kind in columns.kinds}
        self._columns = columns
        if reader is None:
            if self._pushed_sql is None:
                raise ValueError("identifiers_sql needs a reader or attach_warehouse first")
            relation = f"({self._pushed_sql}) AS source"
            self._count_pushed_down(relation, columns)
        else:
            schema = pa.schema([reader.schema.field(name) for name in names])
            counted = _CountingStream(
                reader, names, lambda batch: self._count(batch, kinds_of), self.stop
            )
            self._counted = counted
            self.connection.register(
                SOURCE_VIEW, pa.RecordBatchReader.from_batches(schema, counted)
            )
            relation = self._own + SOURCE_TABLE
            self.run(f"CREATE TABLE {relation} AS SELECT * FROM {SOURCE_VIEW}")
            self.connection.unregister(SOURCE_VIEW)
        if self.counts.invalid and not self.skip_invalid:
            raise InvalidIdentifiers(self.counts)
        passes = [
            _pass_sql(
                relation,
                kind,
                columns.columns[kind],
                part,
                parts,
                skip_invalid=self.counts.kinds[kind].invalid > 0,
            )
            for kind in columns.kinds
            for parts in [self._parts(self.counts.kinds[kind])]
            for part in range(parts)
        ]
        self.passes = len(passes)
        self._fit_memory_limit()
        if not passes:
            return "SELECT NULL::UTINYINT AS kind, NULL::VARCHAR AS value WHERE false"
        if len(passes) == 1:
            return passes[0]
        table = self._own + IDENTIFIERS_TABLE
        self.connection.execute(
            f"CREATE TABLE {table} (kind UTINYINT NOT NULL, value VARCHAR NOT NULL)"
        )
        for sql in passes:  # one at a time, in KINDS order: each under the memory limit
            self.stop.check()
            self.run(f"INSERT INTO {table} {sql}")
        return f"SELECT kind, value FROM {table}"

    def _fit_memory_limit(self) -> None:
        """Lower the memory limit to :data:`SMALL_PASS_MEMORY_LIMIT` when every pass is small.

        Only the default limit is lowered (a caller's own stays, and so does
        a default already below it), and only when no pass of any kind takes
        more than half of :attr:`pass_values` values or of :attr:`pass_bytes`
        bytes; the deduplication and the plan that follow then run under it.
        """
        default = _megabytes(STAGING_MEMORY_LIMIT)
        small = _megabytes(SMALL_PASS_MEMORY_LIMIT)
        if self._memory_limit != STAGING_MEMORY_LIMIT or not (default and small < default):
            return
        for counts in self.counts.kinds.values():
            parts = self._parts(counts)
            if parts and (
                2 * counts.values > parts * self.pass_values
                or 2 * counts.value_bytes > parts * self.pass_bytes
            ):
                return
        self.connection.execute(f"SET memory_limit = {_literal(SMALL_PASS_MEMORY_LIMIT)}")

    def _parts(self, counts: KindCounts) -> int:
        """How many hash-partitioned passes deduplicate one kind's values."""
        if counts.values == 0:
            return 0
        return max(
            1,
            math.ceil(counts.values / self.pass_values),
            math.ceil(counts.value_bytes / self.pass_bytes),
        )

    def run(self, statement: str) -> tuple[Any, ...] | None:
        """Run one statement on this database and return its first row, if any.

        Every statement of the run's staging and planning goes through here,
        so that its failure is told apart in one place (:meth:`check_stream`):
        a failure of the source is raised as the source's, and a statement
        interrupted because the run's stop was requested as the run's
        interruption. A stop requested before the statement starts is raised
        here too: ``connection.interrupt()`` only stops a statement running.
        """
        self.stop.check()
        try:
            rows = self.connection.execute(statement).fetchall()
        except (duckdb.Error, RuntimeError) as error:  # RuntimeError: "Query interrupted"
            self.check_stream(error)
            raise
        self.check_stream()
        return rows[0] if rows else None

    def check_stream(self, error: Exception | None = None) -> None:
        """Raise :class:`SourceStreamFailed` if the source failed while being read.

        After a pushdown the query runs in this database, so any error of the
        statement except running out of disk or memory is the source's. Every
        statement on this database is followed by this check, so it is also
        where a requested stop is raised (:class:`RunInterrupted`): the
        statement was interrupted for it, or has just ended.
        """
        if self.stop.requested:
            raise self.stop.interrupted("reading and planning the source") from error
        if self._counted is not None and self._counted.failure is not None:
            raise SourceStreamFailed(self._counted.failure) from error
        if (
            self._pushed_sql is not None
            and isinstance(error, duckdb.Error)
            and not isinstance(error, duckdb.IOException | duckdb.OutOfMemoryException)
        ):
            raise SourceStreamFailed(error) from error

    def set_distinct(self, distinct: dict[str, int]) -> None:
        """Record the distinct count of each kind, once the identifiers are planned."""
        for kind, counts in self.counts.kinds.items():
            counts.distinct = distinct.get(kind, 0)

    def _count_pushed_down(self, relation: str, columns: IdentifierColumns) -> None:
        kinds = columns.kinds
        measures = ["count(*)"]
        for kind in kinds:
            column = _quote(columns.columns[kind])
            measures += [
                f"count(*) FILTER (WHERE {column} IS NULL)",
                f"count(*) FILTER (WHERE {column}::VARCHAR = '')",
                f"coalesce(sum(strlen({column}::VARCHAR)), 0)",
                f"count(*) FILTER (WHERE {invalid_sql(f'{column}::VARCHAR')})",
            ]
        row = self.run(f"SELECT {', '.join(measures)} FROM {relation}")
        assert row is not None
        self.counts.rows_read = int(row[0])
        self._on_rows(self.counts.rows_read)
        for index, kind in enumerate(kinds):
            null, empty, size, invalid = (int(v) for v in row[1 + 4 * index : 5 + 4 * index])
            self.counts.kinds[kind] = KindCounts(
                values=self.counts.rows_read - null - empty - invalid,
                null=null,
                empty=empty,
                invalid=invalid,
                value_bytes=size,
            )
        if self.counts.invalid:
            self._sample_pushed_down(relation, columns)

    def _sample_pushed_down(self, relation: str, columns: IdentifierColumns) -> None:
        """Find the first invalid identifiers with their row numbers (only when there are some).

        The counting scan is parallel and cannot number rows; this reads the
        result again, in its order, through Arrow, and stops at the first few.
        """
        kinds_of = {kind: columns.columns[kind] for kind in columns.kinds}
        names = ", ".join(_quote(name) for name in dict.fromkeys(kinds_of.values()))
        try:
            reader = self.connection.sql(f"SELECT {names} FROM {relation}").to_arrow_reader()
            first_row = 1
            for batch in reader:
                self.stop.check()
                self.counts.add_samples(_invalid_in(batch, kinds_of, first_row))
                first_row += batch.num_rows
                if len(self.counts.invalid_samples) >= SAMPLE_INVALID:
                    break
        except (duckdb.Error, RuntimeError) as error:
            self.check_stream(error)
            raise

    def _count(self, batch: pa.RecordBatch, kinds_of: dict[str, str]) -> None:
        import pyarrow.compute as pc  # here: only the stream path needs it (30 ms to import)

        first_row = self.counts.rows_read + 1
        self.counts.rows_read += batch.num_rows
        self._on_rows(batch.num_rows)
        for kind, column in kinds_of.items():
            array = batch.column(column)
            if pa.types.is_dictionary(array.type):
                array = array.dictionary_decode()
            nulls = array.null_count
            lengths = pc.binary_length(array)
            empty = pc.sum(pc.equal(lengths, 0)).as_py() or 0
            mask = invalid_mask(array, lengths)
            invalid = (pc.sum(mask).as_py() or 0) if mask is not None else 0
            counts = self.counts.kinds[kind]
            counts.null += nulls
            counts.empty += empty
            counts.invalid += invalid
            counts.values += len(array) - nulls - empty - invalid
            counts.value_bytes += pc.sum(lengths).as_py() or 0
            if invalid and len(self.counts.invalid_samples) < SAMPLE_INVALID:
                assert mask is not None
                self.counts.add_samples(_described(kind, array, mask, first_row))


class _CountingStream:
    """The source's batches, counted on the way; safe to pull from several threads.

    DuckDB may pull a registered stream from more than one of its threads, so
    this is a locked iterator rather than a generator (which would raise
    "generator already executing"). The first error of the source is kept so
    that it is reported as the source's failure, not as a staging failure.
    Before each batch the run's stop token is checked: a requested stop fails
    the stream (never ends it early, which would stage half a result), and
    :meth:`Staging.check_stream` then raises it as the run's interruption.
    """

    def __init__(
        self,
        reader: pa.RecordBatchReader,
        names: list[str],
        count: Callable[[pa.RecordBatch], None],
        stop: StopToken,
    ) -> None:
        self._reader = reader
        self._names = names
        self._count = count
        self._stop = stop
        self._lock = threading.Lock()
        self.failure: BaseException | None = None

    def __iter__(self) -> _CountingStream:
        return self

    def __next__(self) -> pa.RecordBatch:
        with self._lock:
            self._stop.check()
            try:
                batch = self._reader.read_next_batch()
            except StopIteration:
                raise
            except Exception as error:
                self.failure = self.failure or error
                raise
            self._count(batch)
            return batch.select(self._names)


def _pass_sql(
    relation: str, kind: str, column: str, part: int, parts: int, *, skip_invalid: bool = False
) -> str:
    """SQL of one deduplication pass: the distinct non-empty values of one kind (one share).

    ``skip_invalid`` leaves out the values Braze would refuse; it is set only
    for a kind that holds some, so a clean result pays nothing for it.
    """
    value = f"{_quote(column)}::VARCHAR"
    share = f" AND hash({value}) % {parts} = {part}" if parts > 1 else ""
    valid = f" AND NOT {invalid_sql(value)}" if skip_invalid else ""
    return (
        f"SELECT {KINDS.index(kind)}::UTINYINT AS kind, value FROM ("
        f"SELECT DISTINCT {value} AS value FROM {relation} "
        f"WHERE {value} IS NOT NULL AND {value} <> ''{valid}{share})"
    )


def _invalid_in(
    batch: pa.RecordBatch, kinds_of: dict[str, str], first_row: int
) -> list[InvalidIdentifier]:
    """The invalid identifiers of one batch whose first row is ``first_row``."""
    import pyarrow.compute as pc

    found: list[InvalidIdentifier] = []
    for kind, column in kinds_of.items():
        array = batch.column(column)
        if pa.types.is_dictionary(array.type):
            array = array.dictionary_decode()
        mask = invalid_mask(array, pc.binary_length(array))
        if mask is not None:
            found += _described(kind, array, mask, first_row)
    return found


def _described(
    kind: str, array: pa.Array, mask: pa.Array, first_row: int
) -> list[InvalidIdentifier]:
    """The first :data:`SAMPLE_INVALID` flagged values of ``array``, with rows and reasons."""
    import pyarrow.compute as pc

    found: list[InvalidIdentifier] = []
    for index in pc.indices_nonzero(mask)[:SAMPLE_INVALID].to_pylist():
        value = array[index].as_py()
        reason = invalid_reason(value) if isinstance(value, str) else None
        if reason is not None:
            found.append(InvalidIdentifier(kind, first_row + index, value, reason))
    return found


def _megabytes(limit: str) -> float:
    """A memory limit such as ``"100MB"`` or ``"1GiB"`` in megabytes; 0 when not understood.

    Only used to compare two limits, so KB and KiB count the same.
    """
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT])i?B\s*", limit, re.IGNORECASE)
    if found is None:
        return 0.0
    return float(found.group(1)) * 1024 ** ("KMGT".index(found.group(2).upper()) - 1)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
