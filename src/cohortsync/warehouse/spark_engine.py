"""Apache Spark as a warehouse, through pyspark 4.

URLs:

- ``spark+local://``: a Spark session in this process (``local[*]``), its
  tables kept as Parquet under ``$COHORTSYNC_HOME/spark/warehouse``
  (:mod:`cohortsync.warehouse.spark_tables` says how, and why not Hive).
- ``spark://host:port``: the same, with the jobs run by a standalone
  cluster; its workers must see ``$COHORTSYNC_HOME`` at the same path.
- ``sc://host:port``: a Spark Connect server, whose catalog holds the
  tables; queries only (loads are refused: load with the cluster's tools).

pyspark is imported on first use (:mod:`cohortsync.warehouse.spark_session`),
and the one session of the process outlives the engines that use it.

How results stream: never collected. ``DataFrame.toArrow()`` and
``_collect_as_arrow`` gather the whole result on the Python side (the JVM
sends partitions out of order and the batch order last), and
``toLocalIterator`` sends pickled rows. Here the JVM turns the query into
Arrow record batches per partition (``Dataset.toArrowBatchRdd``) and serves
them one partition at a time (``PythonRDD.toLocalIteratorAndServe``, what
``toLocalIterator`` uses underneath, with the next partition prefetched):
Python holds one batch, the driver JVM one or two partitions. Spark Connect
streams Arrow batches over gRPC by itself.

Why queries cannot write: each one is checked twice before Spark runs it,
since ``spark.sql`` runs commands (DDL, ``INSERT``, ``SET``, ``CACHE``) at
once. First sqlglot in Spark's dialect (the rules of
:mod:`cohortsync.warehouse.statements`) plus a refusal of ``reflect`` and
``java_method``, which call Java methods; then Spark's own parser, whose plan
must hold no command and no insert. Queries cannot reach host files by path
(``spark.sql.runSQLOnFiles`` is off).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Self

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from cohortsync.errors import ConfigError, SourceError, whole_message
from cohortsync.warehouse.base import DEFAULT_BATCH_SIZE
from cohortsync.warehouse.loading import (
    FileChecker,
    LoadOptions,
    interrupted,
    is_interrupt,
)
from cohortsync.warehouse.loading.atomic import duckdb_types
from cohortsync.warehouse.loading.entry import LoadsFiles
from cohortsync.warehouse.names import split_table_name
from cohortsync.warehouse.placeholders import to_named
from cohortsync.warehouse.spark_session import (
    classic_session,
    connect_session,
    running_classic,
)
from cohortsync.warehouse.spark_tables import SparkTables, quote_spark_identifier
from cohortsync.warehouse.statements import LOAD_HINT

LOCAL_URL = "spark+local://"
_TABLES_HINT = "check the table name; 'cohortsync warehouse tables' lists them"
_URL_HINT = "use spark+local://, spark://host:7077 (a standalone master) or sc://host:15002"
# Functions that call Java methods by name: a query could write through them.
_JAVA_CALLS = {"reflect", "java_method", "try_reflect"}
# Spark error conditions, with what the user should check.
_CONDITION_HINTS = {
    "TABLE_OR_VIEW_NOT_FOUND": _TABLES_HINT,
    "SCHEMA_NOT_FOUND": _TABLES_HINT,
    "UNRESOLVED_COLUMN": "check the column names",
    "UNRESOLVED_ROUTINE": "check the function name",
    "PARSE_SYNTAX_ERROR": "check the SQL syntax",
    "UNBOUND_SQL_PARAMETER": "pass one parameter per ? outside quotes",
    "CAST_INVALID_INPUT": "use try_cast(...) to read malformed values as NULL",
}
_conf_lock = threading.Lock()


def spark_master(url: str) -> str | None:
    """The master of a classic session for ``url``, or None for Spark Connect (``sc://``).

    Raises:
        ConfigError: not one of the Spark URL forms.
    """
    if url == LOCAL_URL:
        return "local[*]"
    if url.startswith("spark://") and len(url) > len("spark://"):
        return url
    if url.startswith("sc://") and len(url) > len("sc://"):
        return None
    raise ConfigError(f"invalid Spark warehouse URL {url!r}", hint=_URL_HINT)


def _hint(error: BaseException) -> str:
    condition = _condition(error) or ""
    for prefix, hint in _CONDITION_HINTS.items():
        if condition.startswith(prefix):
            return hint
    return "check the SQL"


def _condition(error: BaseException) -> str | None:
    getter = getattr(error, "getCondition", None)
    try:
        return getter() if callable(getter) else None
    except Exception:  # a PySparkException without a condition
        return None


def _reason(error: BaseException) -> str:
    """Spark's reason in one line: its first line, without the plan or SQL it quotes."""
    java = getattr(error, "java_exception", None)
    if java is not None:
        error = _java_reason(java)
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if _condition(error) and lines:
        return lines[0]
    return whole_message(error)


def _java_reason(java: Any) -> BaseException:
    """A JVM error py4j did not convert, as its first cause that names a Spark condition.

    An error met while a job runs arrives wrapped ("Exception thrown in
    awaitResult"); the reason is further down its causes.
    """
    from pyspark.errors.exceptions.captured import convert_exception

    innermost = java
    while java is not None:
        converted = convert_exception(java)
        if _condition(converted):
            return converted
        innermost, java = java, java.getCause()
    return Exception(innermost.toString())


def _failed(error: BaseException) -> SourceError:
    return SourceError(f"query failed: {_reason(error)}", hint=_hint(error))


def _spark_errors() -> tuple[type[BaseException], ...]:
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException

    return (PySparkException, Py4JError)


def check_spark_query(sql: str) -> str:
    """The one read-only statement of ``sql`` in Spark's SQL, checked by sqlglot.

    Raises:
        SourceError: not one read-only statement, or one that calls Java methods.
    """
    # Imported here, like the other engines reached through SQL text: sqlglot
    # is loaded only when such an engine runs a query.
    import sqlglot
    from sqlglot import exp

    from cohortsync.warehouse.dialect_statements import check_sql_query

    statement = check_sql_query(sql, "spark")
    for node in sqlglot.parse_one(statement, read="spark").find_all(exp.Func):
        name = (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).lower()
        if name in _JAVA_CALLS:
            raise SourceError(
                f"the query calls {name}(), which runs Java methods, and queries only read",
                hint="use Spark's SQL functions",
            )
    return statement


class SparkEngine(LoadsFiles):
    """A Spark warehouse; see the module docstring for the URLs and how results stream."""

    def __init__(self, url: str, home: Path) -> None:
        self.url = url
        self.master = spark_master(url)
        self.spark_dir = home / "spark"
        self._tables = SparkTables(self.spark_dir / "warehouse") if self.master else None

    # -- the session -------------------------------------------------------------

    def _session(self) -> Any:
        if self.master is None:
            return connect_session(self.url)
        spark = classic_session(self.url, self.master, self.spark_dir)
        if self._tables is not None:
            try:
                self._tables.sync(spark)
            except _spark_errors() as error:
                raise SourceError(
                    f"cannot read the tables of {self._tables.root}: {_reason(error)}",
                    hint="check that the directory holds cohortsync's Parquet tables",
                ) from error
        return spark

    def _dataframe(self, sql: str, params: Sequence[Any]) -> tuple[Any, Any]:
        """Check ``sql`` twice (sqlglot, then Spark's parser) and plan it; reads no row."""
        statement = check_spark_query(sql)
        to_named(statement, params)  # the same placeholder count check as every engine
        spark = self._session()
        try:
            self._refuse_commands(spark, statement)
            return spark, spark.sql(statement, args=list(params) or None)
        except _spark_errors() as error:
            raise _failed(error) from error

    def _refuse_commands(self, spark: Any, statement: str) -> None:
        """Spark's parser must see a query: no command, no insert anywhere in its plan."""
        if self.master is None:
            return  # Spark Connect parses on the server; sqlglot's check stands alone
        from py4j.protocol import Py4JJavaError
        from pyspark.errors.exceptions.captured import convert_exception

        jvm = spark._jvm
        try:
            plan = spark._jsparkSession.sessionState().sqlParser().parsePlan(statement)
        except Py4JJavaError as error:
            raise convert_exception(error.java_exception) from None
        command = jvm.java.lang.Class.forName("org.apache.spark.sql.catalyst.plans.logical.Command")
        pending = [plan]
        while pending:
            node = pending.pop()
            kind = node.getClass().getSimpleName()
            if command.isInstance(node) or kind.startswith("InsertInto"):
                raise SourceError(
                    f"the query is a Spark {kind} statement, and queries only read",
                    hint=LOAD_HINT,
                )
            for children in (node.children(), node.innerChildren()):
                pending.extend(children.apply(index) for index in range(children.size()))

    # -- queries -----------------------------------------------------------------

    def stream(
        self, sql: str, params: Sequence[Any] = (), *, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> pa.RecordBatchReader:
        """Run ``sql`` and stream its Arrow batches, one partition at a time.

        Raises:
            SourceError: ``sql`` is not one read-only statement, or it failed.
        """
        spark, frame = self._dataframe(sql, params)
        try:
            schema = _arrow_schema(frame.schema)
            if self.master is None:
                batches = _connect_batches(frame, schema, batch_size)
            else:
                batches = _classic_batches(spark, frame, schema, batch_size)
        except _spark_errors() as error:
            raise _failed(error) from error
        return pa.RecordBatchReader.from_batches(schema, _checked(batches, batch_size))

    def count(self, sql: str, params: Sequence[Any] = ()) -> int:
        """The number of rows of ``sql``, counted by Spark."""
        _, frame = self._dataframe(sql, params)
        try:
            return int(frame.count())
        except _spark_errors() as error:
            raise _failed(error) from error

    def table_schema(self, table: str) -> pa.Schema:
        """The columns of ``table`` as Arrow (no rows are read)."""
        schema_name, name = split_table_name(table)
        spark = self._session()
        full = ".".join(quote_spark_identifier(part) for part in (schema_name, name) if part)
        try:
            return _arrow_schema(spark.table(full).schema)
        except _spark_errors() as error:
            if (_condition(error) or "").startswith(("TABLE_OR_VIEW_NOT_FOUND", "SCHEMA_NOT")):
                raise SourceError(
                    f"no table {table!r} in the warehouse", hint=_TABLES_HINT
                ) from error
            raise SourceError(
                f"cannot read the columns of {table}: {_reason(error)}", hint=_hint(error)
            ) from error

    def tables(self) -> list[str]:
        """Tables and views a query can read, sorted (``schema.name`` outside ``default``).

        A local warehouse's tables are its directories: listing them starts no Spark.
        """
        if self._tables is not None:
            return self._tables.names()
        spark = self._session()
        try:
            names = []
            for database in spark.catalog.listDatabases():
                for found in spark.catalog.listTables(database.name):
                    if found.isTemporary:
                        continue
                    prefix = "" if database.name == "default" else f"{database.name}."
                    names.append(prefix + found.name)
            return sorted(names)
        except _spark_errors() as error:
            raise SourceError(
                f"cannot list the tables of {self.url}: {_reason(error)}", hint=_hint(error)
            ) from error

    # -- loads -------------------------------------------------------------------

    def _load_file(
        self, table: str, schema_name: str | None, name: str, path: Path, options: LoadOptions
    ) -> int:
        """Write a new version of the table's Parquet directory and swap it in.

        DuckDB reads and checks the file (the rules and messages of every
        engine) and pyarrow writes the Parquet; no Spark job runs.
        """
        if self._tables is None:
            raise ConfigError(
                f"cannot load files into the Spark Connect warehouse {self.url}",
                hint="load the table with the cluster's own tools, or use spark+local://",
            )
        store = self._tables
        table_dir = store.table_dir(schema_name, name)
        try:
            with store.locked(table_dir):
                live = store.live_version(table_dir)
                existing = store.existing_schema(live) if live is not None else None
                appending = options.mode == "append" and existing is not None
                version = store.new_version(table_dir)
                try:
                    if appending and live is not None:
                        store.link_files(live, version)
                    rows = _write_checked(path, options, existing if appending else None, version)
                    store.swap(table_dir, version)
                except BaseException:
                    store.discard(version)
                    raise
        except (KeyboardInterrupt, duckdb.InterruptException) as error:
            raise interrupted(table) from error
        except RuntimeError as error:
            if is_interrupt(error):
                raise interrupted(table) from error
            raise
        except duckdb.Error as error:
            raise SourceError(
                f"loading {path} into {table} failed: {whole_message(error)}",
                hint="the table was left as it was; check the file",
            ) from error
        except (pa.ArrowException, OSError) as error:
            raise SourceError(
                f"loading {path} into {table} failed: {whole_message(error)}",
                hint="the table was left as it was; check that the file's columns "
                "match the table's, or load with --mode replace",
            ) from error
        if running_classic() is not None:
            # The next query of this process sees the new version at once. A
            # load alone starts no Spark: pyarrow writes the files.
            self._session()
        return rows

    def close(self) -> None:
        """Nothing to release: the process's Spark session serves every engine until exit."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# -- loading: DuckDB checks the file, pyarrow writes the Parquet ----------------------


def _write_checked(
    path: Path, options: LoadOptions, existing: pa.Schema | None, version: Path
) -> int:
    """Check ``path`` strictly and write its rows as one Parquet file into ``version``.

    On append (``existing`` given) the rows take the table's types and column
    order; a column the file lacks is null.
    """
    reader_connection = duckdb.connect()
    checker = FileChecker(reader_connection.cursor(), path, options)
    try:
        prepared = checker.prepare(duckdb_types(existing) if existing is not None else None)
        rows = reader_connection.sql(prepared.select_sql, params=prepared.params).to_arrow_reader(
            DEFAULT_BATCH_SIZE
        )
        target = existing if existing is not None else _parquet_schema(rows.schema)
        with pq.ParquetWriter(version / f"part-{version.name}.parquet", target) as writer:
            for batch in rows:
                writer.write_batch(_conformed(batch, target))
    finally:
        checker.close()
        reader_connection.close()
    return prepared.rows


def _parquet_schema(schema: pa.Schema) -> pa.Schema:
    """The file's Arrow schema, with every column nullable (as Spark's tables are)."""
    return pa.schema([field.with_nullable(True) for field in schema])


def _conformed(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """``batch`` with ``schema``'s columns, in its order and types; missing ones null."""
    by_name = {name.lower(): index for index, name in enumerate(batch.schema.names)}
    columns = []
    for field in schema:
        index = by_name.get(field.name.lower())
        if index is None:
            columns.append(pa.nulls(batch.num_rows, field.type))
        else:
            columns.append(batch.column(index).cast(field.type))
    return pa.RecordBatch.from_arrays(columns, schema=schema)


# -- streaming ------------------------------------------------------------------------


def _arrow_schema(spark_schema: Any) -> pa.Schema:
    from pyspark.sql.pandas.types import to_arrow_schema

    try:
        return to_arrow_schema(spark_schema, timezone="UTC")
    except (TypeError, pa.ArrowException) as error:
        raise SourceError(
            f"query failed: a column has a Spark type with no Arrow equivalent: {error}",
            hint="cast the column in the SQL, e.g. CAST(x AS STRING)",
        ) from error
    except Exception as error:  # pyspark's own "unsupported type" errors
        raise SourceError(
            f"query failed: a column has a Spark type with no Arrow equivalent: {_reason(error)}",
            hint="cast the column in the SQL, e.g. CAST(x AS STRING)",
        ) from error


def _classic_batches(
    spark: Any, frame: Any, schema: pa.Schema, batch_size: int
) -> Iterator[pa.RecordBatch]:
    """The JVM's Arrow batches, served one partition at a time (see the module docstring)."""
    from pyspark.serializers import NoOpSerializer
    from pyspark.util import _local_iterator_from_socket

    with _conf_lock:
        # The batch size is read when the Arrow RDD is built.
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(batch_size))
        try:
            arrow_rdd = frame._jdf.toArrowBatchRdd()
        finally:
            spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(DEFAULT_BATCH_SIZE))
    served = spark._jvm.org.apache.spark.api.python.PythonRDD.toLocalIteratorAndServe(
        arrow_rdd, True
    )
    return _decoded(_local_iterator_from_socket(served, NoOpSerializer()), schema)


def _decoded(messages: Iterator[bytes], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    for message in messages:
        yield pa.ipc.read_record_batch(pa.py_buffer(message), schema)


def _connect_batches(frame: Any, schema: pa.Schema, batch_size: int) -> Iterator[pa.RecordBatch]:
    """Spark Connect's own Arrow stream (untested here: needs a Spark Connect server)."""
    client = frame._session.client
    plan = frame._plan.to_proto(client)
    for item in client.to_table_as_iterator(plan, frame._plan.observations):
        if isinstance(item, pa.Table):
            yield from item.cast(schema).to_batches(max_chunksize=batch_size)


def _checked(batches: Iterator[pa.RecordBatch], batch_size: int) -> Iterator[pa.RecordBatch]:
    """At most ``batch_size`` rows a batch; Spark's errors while reading become SourceError."""
    errors = _spark_errors()
    try:
        for batch in batches:
            if batch.num_rows > batch_size:
                for start in range(0, batch.num_rows, batch_size):
                    yield batch.slice(start, batch_size)
            else:
                yield batch
    except SourceError:
        raise
    except (*errors, pa.ArrowException, OSError, EOFError) as error:
        raise _failed(error) from error
