"""A mirror's diff and snapshot tables inside Spark (a :class:`SnapshotWarehouse`).

The session is a new ``SparkSession`` over the process's one SparkContext
(:mod:`cohortsync.warehouse.spark_session`): its temporary views are its own,
so two mirrors in one process (the scheduler's threads) never see each
other's relations, while the tables of the warehouse are shared. Session
relations are temporary views: the ones filled from a query are cached
(memory, then local disk) and computed once, so every later statement reads
the same rows; the ones loaded from local Parquet files (a snapshot of the
local diff, abandoned plans, the sent changes) read the files where they are.

Spark has no transactions. A query reads immutable table versions
(:mod:`cohortsync.warehouse.spark_tables`), and the user's query is refused
unless it is one read-only statement (sqlglot, then Spark's own parser, as
for every Spark query). The snapshot tables are Parquet tables in the
database ``cohortsync`` (``$COHORTSYNC_HOME/spark/warehouse/cohortsync.db``),
one pair per generation, laid out as every table of the warehouse: a table
exists once its ``CURRENT`` pointer names a version, and the pointer is
written (one atomic rename) only after Spark finished writing that version.
A crash while writing leaves a version no pointer names, which the next
write of that table removes; a table found complete is never written again.
The home's snapshot store names the pair current only once both are
complete, and the next commit drops the pairs of older generations.

Spark Connect (``sc://``) is not served: its tables are the server's, and
its session cannot read the home's Parquet files.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Any

import pyarrow as pa

from cohortsync.errors import ConfigError, SourceError
from cohortsync.settings import Settings
from cohortsync.warehouse.base import DEFAULT_BATCH_SIZE
from cohortsync.warehouse.spark_engine import (
    SparkEngine,
    _arrow_schema,
    _classic_batches,
    _reason,
    _spark_errors,
    check_spark_query,
)
from cohortsync.warehouse.spark_tables import quote_spark_identifier, spark_literal


class SparkSnapshots:
    """A Spark session running a mirror's diff; close it when done.

    Args:
        url: the warehouse (``spark+local://`` or ``spark://host:port``).
        schema: the database of the snapshot tables.
    """

    engine = "spark"

    def __init__(self, url: str, schema: str) -> None:
        self.schema = schema
        self.source = SparkEngine(url, Settings().home_dir)
        if self.source._tables is None:
            raise ConfigError(
                f"a mirror cannot diff inside the Spark Connect warehouse {url}",
                hint="set COHORTSYNC_MIRROR_DIFF=local to diff in cohortsync",
            )
        self.tables = self.source._tables
        with self.errors("starting the mirror's Spark session"):
            self.spark = self.source._session().newSession()
            self._group = f"cohortsync-mirror-{uuid.uuid4().hex}"
            self.spark.sparkContext.setJobGroup(
                self._group, "cohortsync mirror diff", interruptOnCancel=True
            )
        self._cached: dict[str, Any] = {}

    # -- SQL pieces ----------------------------------------------------------------

    def check_query(self, sql: str) -> str:
        statement = check_spark_query(sql)
        try:
            self.source._refuse_commands(self.spark, statement)
        except _spark_errors() as error:
            raise SourceError(f"query failed: {_reason(error)}", hint="check the SQL") from error
        return statement

    def result_schema(self, sql: str, params: Sequence[Any]) -> pa.Schema:
        """Spark's analysis of the query: no job runs."""
        with self.errors("reading the query's columns"):
            return _arrow_schema(self.spark.sql(sql, args=list(params) or None).schema)

    def bind(self, sql: str, params: Sequence[Any]) -> tuple[str, Any]:
        return sql, list(params) or None

    def identifier(self, name: str) -> str:
        return quote_spark_identifier(name)

    def literal(self, text: str) -> str:
        return spark_literal(text)

    def invalid(self, value: str, *, max_chars: int, max_bytes: int) -> str:
        """Spark strings may hold a NUL: the control characters are U+0000 to U+001F and
        U+007F to U+009F (a Java regex, its backslashes escaped for Spark's literal)."""
        return (
            f"(char_length({value}) > {max_chars} OR octet_length({value}) > {max_bytes} "
            f"OR {value} RLIKE '[\\\\x00-\\\\x1f\\\\x7f-\\\\x9f]')"
        )

    def ordered(self, *columns: str) -> str:
        return ", ".join(columns)  # UTF8_BINARY, Spark's default collation, sorts by bytes

    def unpivot(self, pairs: Sequence[tuple[str, str]]) -> str:
        values = ", ".join(f"{kind}, {column}" for kind, column in pairs)
        return f"LATERAL VIEW stack({len(pairs)}, {values}) v AS kind, value"

    def row_number(self) -> str:
        return "row_number() OVER (ORDER BY monotonically_increasing_id())"

    # -- the session -------------------------------------------------------------

    def prepare_schema(self) -> None:
        directory = self._database_dir()
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigError(
                f"cannot create the snapshot database {self.schema!r} at {directory}: "
                f"{error.strerror}",
                hint="make the directory writable, or set COHORTSYNC_SNAPSHOT_SCHEMA",
            ) from error
        if not os.access(directory, os.W_OK | os.X_OK):
            raise ConfigError(
                f"the snapshot database {self.schema!r} at {directory} is not writable",
                hint="make the directory writable, or set COHORTSYNC_SNAPSHOT_SCHEMA",
            )

    def declare(self, name: str, schema: pa.Schema) -> None:
        with self.errors("creating session relations"):
            self.spark.createDataFrame([], _spark_schema(schema)).createOrReplaceTempView(name)

    def fill(self, name: str, sql: str, params: Any = None, *, doing: str) -> None:
        from pyspark import StorageLevel

        with self.errors(doing):
            frame = self.spark.sql(sql, args=params).persist(StorageLevel.MEMORY_AND_DISK)
            try:
                frame.count()  # computed once, here: later statements read the cache
            except BaseException:
                frame.unpersist()
                raise
            frame.createOrReplaceTempView(name)
        if name in self._cached:
            self._cached.pop(name).unpersist()
        self._cached[name] = frame

    def load(self, name: str, paths: Sequence[Path], schema: pa.Schema, *, doing: str) -> None:
        present = [str(path) for path in paths if path.exists()]
        if not present:
            self.declare(name, schema)
            return
        with self.errors(doing):
            frame = self.spark.read.parquet(*present).select(*schema.names)
            frame.createOrReplaceTempView(name)

    def reading(self) -> Any:
        return nullcontext()  # table versions are immutable: every statement reads the same

    def rows(self, sql: str, params: Any = None, *, doing: str) -> list[tuple[Any, ...]]:
        """The rows of a small result (counts, samples): collected."""
        with self.errors(doing):
            return [tuple(row) for row in self.spark.sql(sql, args=params).collect()]

    def scalar(self, sql: str, *, doing: str) -> Any:
        [row] = self.rows(sql, doing=doing)
        return row[0]

    def stream(self, sql: str, schema: pa.Schema, *, doing: str) -> pa.RecordBatchReader:
        """The engine's own streaming: Arrow batches one partition at a time, in order."""
        with self.errors(doing):
            frame = self.spark.sql(sql)
            batches = _classic_batches(
                self.spark, frame, _arrow_schema(frame.schema), DEFAULT_BATCH_SIZE
            )

        def conformed() -> Iterator[pa.RecordBatch]:
            with self.errors(doing):
                for batch in batches:
                    yield pa.RecordBatch.from_arrays(
                        [
                            column.cast(field.type)
                            for column, field in zip(batch.columns, schema, strict=True)
                        ],
                        schema=schema,
                    )

        return pa.RecordBatchReader.from_batches(schema, conformed())

    # -- snapshot tables -----------------------------------------------------------

    def table(self, name: str) -> str:
        """A temporary view of the table's live version (the catalog may not know it yet)."""
        live = self.tables.live_version(self.tables.table_dir(self.schema, name))
        if live is None:
            return f"{self.schema}.{name}"
        view = f"cs_table_{name}"
        with self.errors(f"reading the snapshot table {self.schema}.{name}"):
            self.spark.read.parquet(str(live)).createOrReplaceTempView(view)
        return view

    def has_table(self, name: str) -> bool:
        return self.tables.live_version(self.tables.table_dir(self.schema, name)) is not None

    def write_tables(self, tables: Mapping[str, str], *, doing: str) -> None:
        """Each table as a new version, named by its pointer once Spark wrote all of it."""
        for name, sql in tables.items():
            table_dir = self.tables.table_dir(self.schema, name)
            with self.tables.locked(table_dir):
                if self.tables.live_version(table_dir) is not None:
                    continue  # written by an earlier, interrupted commit
                version = self.tables.new_version(table_dir)
                try:
                    with self.errors(f"{doing}: the snapshot table {self.schema}.{name}"):
                        self.spark.sql(sql).write.mode("overwrite").parquet(str(version))
                    self.tables.swap(table_dir, version)
                except BaseException:
                    self.tables.discard(version)
                    raise

    def drop_tables(self, prefixes: Sequence[str], *, keep: Collection[str]) -> None:
        directory = self._database_dir()
        if not directory.is_dir():
            return
        for entry in directory.iterdir():
            if entry.name.startswith(tuple(prefixes)) and entry.name not in keep:
                shutil.rmtree(entry, ignore_errors=True)

    def cancel(self) -> None:
        with suppress(Exception):  # the JVM is gone: nothing runs any more
            self.spark.sparkContext.cancelJobGroup(self._group)

    def close(self) -> None:
        for frame in self._cached.values():
            with suppress(Exception):  # the JVM is gone, and its cache with it
                frame.unpersist()
        self._cached.clear()
        with suppress(Exception):
            self.spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)

    # -- errors ------------------------------------------------------------------------

    @contextmanager
    def errors(self, doing: str) -> Iterator[None]:
        """Turn a Spark error of the block into one line saying what was being done."""
        try:
            yield
        except SourceError:
            raise
        except _spark_errors() as error:
            raise SourceError(
                f"{doing} in the warehouse failed: {_reason(error)}",
                hint=f"check the warehouse; Spark's log is {self.source.spark_dir / 'spark.log'}",
            ) from error

    def _database_dir(self) -> Path:
        return self.tables.table_dir(self.schema, "t").parent


def _spark_schema(schema: pa.Schema) -> Any:
    from pyspark.sql.types import BooleanType, StringType, StructField, StructType

    types = {pa.string(): StringType(), pa.bool_(): BooleanType()}
    return StructType([StructField(field.name, types[field.type], True) for field in schema])
