"""Any SQLAlchemy database as a warehouse; PostgreSQL (psycopg 3) is the tested one.

Queries run on a server-side cursor (``stream_results``) and are fetched
``batch_size`` rows at a time, so the client never holds more than one batch.
Every query is first checked to be one read-only statement (sqlglot, in the
database's dialect: :mod:`cohortsync.warehouse.statements`), and on
PostgreSQL it runs in a transaction set ``READ ONLY``, so even a function with
side effects called by a SELECT cannot write. Other databases have the check
alone. What a query can read is up to the warehouse user's grants.
PostgreSQL loads go through ``COPY ... FROM STDIN`` inside one transaction
(PostgreSQL's DDL is transactional, so a failed ``replace`` keeps the old
table); other databases get batched ``INSERT`` statements in one transaction.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Self

import pyarrow as pa
import pyarrow.csv as pa_csv
import sqlalchemy as sa
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from cohortsync.errors import ConfigError, SourceError, whole_message
from cohortsync.warehouse.arrow_types import (
    ResultColumn,
    arrays_from_rows,
    arrow_type,
    result_columns,
)
from cohortsync.warehouse.base import DEFAULT_BATCH_SIZE
from cohortsync.warehouse.dialect_statements import check_sql_query
from cohortsync.warehouse.loading import LoadOptions, load_sqlalchemy
from cohortsync.warehouse.loading.entry import LoadsFiles
from cohortsync.warehouse.names import split_table_name
from cohortsync.warehouse.placeholders import to_named

_TABLES_HINT = "check the table name; 'cohortsync warehouse tables' lists them"

# SQLSTATE classes of PostgreSQL errors, with what the user should check.
_SQLSTATE_HINTS = {
    "42P01": _TABLES_HINT,
    "42703": "check the column names",
    "42601": "check the SQL syntax",
    "42883": "check the function name and argument types",
    "28P01": "check the user and password in the warehouse URL",
    "3D000": "check the database name in the warehouse URL",
    "25006": "queries run read-only, functions they call too; "
    "write data with 'cohortsync warehouse load'",
}


def driver_url(url: str) -> sa.URL:
    """The SQLAlchemy URL for ``url``: plain ``postgresql://`` means psycopg 3."""
    try:
        parsed = make_url(url)
    except ArgumentError as error:
        raise ConfigError(
            f"invalid warehouse URL {url!r}",
            hint="use duckdb:///path/to/file.duckdb or a SQLAlchemy URL "
            "such as postgresql://user@host/db",
        ) from error
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _hint(error: BaseException) -> str:
    sqlstate = getattr(getattr(error, "orig", None), "sqlstate", None)
    return _SQLSTATE_HINTS.get(sqlstate or "", "check the SQL")


class SQLAlchemyEngine(LoadsFiles):
    """A warehouse reached through SQLAlchemy (one connection pool per engine)."""

    def __init__(self, url: str) -> None:
        self.url = url
        target = driver_url(url)
        try:
            self._engine = sa.create_engine(target, pool_pre_ping=True)
        except (NoSuchModuleError, ImportError) as error:
            raise ConfigError(
                f"no database driver for warehouse URL scheme {target.drivername!r}",
                hint="use duckdb:///path or postgresql://..., or install the SQLAlchemy "
                "dialect for that database",
            ) from error
        self._driver = self._engine.dialect.driver
        # Errors raised by the driver itself (COPY runs on the raw psycopg cursor).
        self._driver_error: type[Exception] = self._engine.dialect.loaded_dbapi.Error
        self._is_postgres = self._engine.dialect.name == "postgresql"

    def _connect(self) -> Connection:
        try:
            return self._engine.connect()
        except DBAPIError as error:
            raise SourceError(
                f"cannot connect to the warehouse {self._engine.url.render_as_string()}: "
                f"{whole_message(error)}",
                hint=_SQLSTATE_HINTS.get(
                    getattr(error.orig, "sqlstate", None) or "",
                    "check that the server runs and the URL is right (--warehouse or "
                    "COHORTSYNC_WAREHOUSE)",
                ),
            ) from error

    # -- queries -----------------------------------------------------------------

    def stream(
        self, sql: str, params: Sequence[Any] = (), *, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> pa.RecordBatchReader:
        """Run ``sql`` on a server-side cursor and stream ``batch_size``-row batches.

        Raises:
            SourceError: ``sql`` is not one read-only statement, or it failed.
        """
        text, bound = to_named(check_sql_query(sql, self._engine.dialect.name), params)
        connection = self._connect()
        try:
            if self._is_postgres:
                # The first statement of the transaction: nothing after it can write.
                connection.exec_driver_sql("SET TRANSACTION READ ONLY")
            query = sa.text(text).execution_options(stream_results=True, max_row_buffer=batch_size)
            result = connection.execute(query, bound)
            cursor = result.cursor
            description = cursor.description if cursor is not None else None
            columns = result_columns(description or (), self._driver)
        except SQLAlchemyError as error:
            connection.close()
            raise SourceError(f"query failed: {whole_message(error)}", hint=_hint(error)) from error
        except BaseException:
            connection.close()
            raise
        schema = pa.schema([column.field for column in columns])
        return pa.RecordBatchReader.from_batches(
            schema, self._batches(connection, result, columns, schema, batch_size)
        )

    def _batches(
        self,
        connection: Connection,
        result: sa.CursorResult[Any],
        columns: list[ResultColumn],
        schema: pa.Schema,
        batch_size: int,
    ) -> Iterator[pa.RecordBatch]:
        try:
            while rows := result.fetchmany(batch_size):
                yield pa.RecordBatch.from_arrays(arrays_from_rows(columns, rows), schema=schema)
            result.close()
            connection.rollback()  # a read-only transaction has nothing to commit
        except SQLAlchemyError as error:
            raise SourceError(f"query failed: {whole_message(error)}", hint=_hint(error)) from error
        except (pa.ArrowException, TypeError, ValueError) as error:
            raise SourceError(
                f"query failed: a value does not fit its column type: {error}",
                hint="cast the column in the SQL, e.g. CAST(x AS text)",
            ) from error
        finally:
            connection.close()

    def count(self, sql: str, params: Sequence[Any] = ()) -> int:
        """The number of rows of ``sql``, counted by the database."""
        inner = check_sql_query(sql, self._engine.dialect.name)
        reader = self.stream(f"SELECT count(*) FROM ({inner}) AS counted", params)
        return int(reader.read_all().column(0)[0].as_py())

    def table_schema(self, table: str) -> pa.Schema:
        """The columns of ``table`` found by SQLAlchemy inspection, as Arrow."""
        schema, name = split_table_name(table)
        with self._connect() as connection:
            try:
                columns = sa.inspect(connection).get_columns(name, schema=schema)
            except sa.exc.NoSuchTableError:
                raise SourceError(
                    f"no table {table!r} in the warehouse", hint=_TABLES_HINT
                ) from None
            except SQLAlchemyError as error:
                raise SourceError(
                    f"cannot read the columns of {table}: {whole_message(error)}",
                    hint=_hint(error),
                ) from error
        return pa.schema(
            [pa.field(column["name"], arrow_type(column["type"])) for column in columns]
        )

    def tables(self) -> list[str]:
        """Tables and views of the default schema."""
        with self._connect() as connection:
            inspector = sa.inspect(connection)
            return sorted(inspector.get_table_names() + inspector.get_view_names())

    # -- loads -------------------------------------------------------------------

    def _load_file(
        self, table: str, schema_name: str | None, name: str, path: Path, options: LoadOptions
    ) -> int:
        """Build the table with :func:`~cohortsync.warehouse.loading.load_sqlalchemy`."""
        with self._connect() as connection:
            exists = sa.inspect(connection).has_table(name, schema=schema_name)
        return load_sqlalchemy(
            self._connect,
            table,
            schema_name,
            name,
            path,
            options,
            existing=self.table_schema(table) if exists else None,
            copy=self._copy_batches,
            errors=(self._driver_error,),
        )

    def _copy_batches(
        self, connection: Connection, target: sa.Table, reader: pa.RecordBatchReader
    ) -> int:
        """Write every batch of ``reader`` into ``target``; Arrow errors reach the caller."""
        rows = 0
        for batch in reader:
            if batch.num_rows == 0:
                continue
            if self._is_postgres:
                self._copy_postgres(connection, target, batch)
            else:
                connection.execute(sa.insert(target), batch.to_pylist())
            rows += batch.num_rows
        return rows

    def _copy_postgres(
        self, connection: Connection, target: sa.Table, batch: pa.RecordBatch
    ) -> None:
        """``COPY table (columns) FROM STDIN`` with the batch written as CSV by Arrow."""
        preparer = connection.dialect.identifier_preparer
        columns = ", ".join(preparer.quote(name) for name in batch.schema.names)
        buffer = io.BytesIO()
        pa_csv.write_csv(batch, buffer, pa_csv.WriteOptions(include_header=False))
        # The psycopg connection under SQLAlchemy's, in the same transaction.
        raw: Any = connection.connection.driver_connection
        with (
            raw.cursor() as cursor,
            cursor.copy(
                f"COPY {preparer.format_table(target)} ({columns}) FROM STDIN (FORMAT csv)"
            ) as copy,
        ):
            copy.write(buffer.getbuffer())

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
