"""One PostgreSQL connection for the statements a mirror runs inside the warehouse.

The query engine (:mod:`cohortsync.warehouse.sqlalchemy_engine`) only reads,
one query per connection. A mirror that diffs inside PostgreSQL needs more of
one connection: session tables that live across statements, a read-only
transaction that sees one snapshot of the data for several statements, bulk
copies both ways (``COPY ... FROM STDIN`` in, ``COPY (...) TO STDOUT`` out)
and a cancel that a stop request can send from another thread. That is this
session. The user's query only ever runs in a transaction set ``READ ONLY``
(:meth:`PostgresSession.read_only`), as on the query engine; cohortsync's own
tables are written in other transactions, by statements cohortsync builds.

Failures become one-line errors: a right the warehouse role lacks names the
right and the schema (SQLSTATE 42501), everything else says which statement
failed.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager, suppress
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from cohortsync.errors import CohortsyncError, ConfigError, SourceError, whole_message
from cohortsync.warehouse.sqlalchemy_engine import driver_url

INSUFFICIENT_PRIVILEGE = "42501"
QUERY_CANCELED = "57014"
COPY_CHUNK = 1 << 20


def quote_identifier(name: str) -> str:
    """``name`` as a PostgreSQL quoted identifier."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """``text`` as a PostgreSQL string literal (standard conforming strings)."""
    return "'" + text.replace("'", "''") + "'"


class PostgresSession:
    """A connection of its own to a PostgreSQL warehouse; close it when done.

    Args:
        url: the warehouse URL (``postgresql://...``).
    """

    def __init__(self, url: str) -> None:
        self._engine = sa.create_engine(driver_url(url), poolclass=NullPool)
        try:
            self.connection = self._engine.connect()
        except DBAPIError as error:
            self._engine.dispose()
            raise SourceError(
                f"cannot connect to the warehouse {self._engine.url.render_as_string()}: "
                f"{whole_message(error)}",
                hint="check that the server runs and the URL is right (--warehouse or "
                "COHORTSYNC_WAREHOUSE)",
            ) from error
        self._raw: Any = self.connection.connection.driver_connection

    def close(self) -> None:
        self.connection.close()
        self._engine.dispose()

    def __enter__(self) -> PostgresSession:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def cancel(self) -> None:
        """Cancel the statement running (safe from another thread or a signal handler)."""
        with suppress(Exception):  # the connection is gone: nothing runs any more
            self._raw.cancel_safe()

    @property
    def user(self) -> str:
        return str(self.scalar("SELECT current_user"))

    # -- statements ----------------------------------------------------------------

    def execute(self, sql: str, params: Mapping[str, Any] | None = None, *, doing: str) -> None:
        """Run one statement built by cohortsync (``:name`` parameters)."""
        with self.errors(doing):
            self.connection.execute(sa.text(sql), dict(params or {}))

    def rows(
        self, sql: str, params: Mapping[str, Any] | None = None, *, doing: str
    ) -> list[tuple[Any, ...]]:
        """The rows of one query built by cohortsync."""
        with self.errors(doing):
            return [tuple(row) for row in self.connection.execute(sa.text(sql), dict(params or {}))]

    def scalar(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        with self.errors("reading the warehouse"):
            return self.connection.execute(sa.text(sql), dict(params or {})).scalar()

    def commit(self) -> None:
        with self.errors("committing"):
            self.connection.commit()

    def rollback(self) -> None:
        self.connection.rollback()

    @contextmanager
    def read_only(self) -> Iterator[None]:
        """One transaction, ``REPEATABLE READ READ ONLY``: one view of the data, no writes.

        Session (temporary) tables may still be filled in it; nothing else can
        be written, so the user's query, run inside, writes nothing either.
        """
        self.rollback()
        self.execute(
            "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY",
            doing="starting a read-only transaction",
        )
        try:
            yield
        finally:
            self.rollback()

    # -- bulk copies -------------------------------------------------------------------

    def copy_in(self, table: str, columns: Iterable[str], batches: Iterable[pa.RecordBatch]) -> int:
        """``COPY table (columns) FROM STDIN`` each batch, written as CSV by Arrow; rows copied."""
        names = ", ".join(quote_identifier(name) for name in columns)
        rows = 0
        with (
            self.errors(f"copying rows into {table}"),
            self._raw.cursor() as cursor,
            cursor.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT csv)") as copy,
        ):
            for batch in batches:
                if batch.num_rows == 0:
                    continue
                buffer = io.BytesIO()
                pa_csv.write_csv(batch, buffer, pa_csv.WriteOptions(include_header=False))
                copy.write(buffer.getbuffer())
                rows += batch.num_rows
        return rows

    def copy_out(self, sql: str, schema: pa.Schema, *, doing: str) -> pa.RecordBatchReader:
        """``COPY (sql) TO STDOUT`` as CSV, parsed by Arrow into batches of ``schema``.

        The rows stream: Arrow reads the copy a block at a time, and no more
        than one block and one batch are held at once. Read the batches before
        the next statement on this session.
        """
        opened = ExitStack()
        try:
            cursor = opened.enter_context(self._raw.cursor())
            copy = opened.enter_context(cursor.copy(f"COPY ({sql}) TO STDOUT (FORMAT csv)"))
        except Exception as error:
            opened.close()
            raise self._error(error, doing) from error
        stream = _CopyStream(copy, opened)
        if stream.empty():  # Arrow's CSV reader refuses an empty file: no rows, no batches
            stream.finish()
            return pa.RecordBatchReader.from_batches(schema, iter(()))
        options = pa_csv.ConvertOptions(
            column_types={field.name: field.type for field in schema},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
            true_values=["t"],  # PostgreSQL's text form of a boolean
            false_values=["f"],
        )
        try:
            reader = pa_csv.open_csv(
                stream,
                read_options=pa_csv.ReadOptions(
                    column_names=schema.names, use_threads=False, block_size=COPY_CHUNK
                ),
                convert_options=options,
            )
        except Exception as error:
            stream.finish(cancel=self.cancel)
            raise self._error(error, doing) from error

        def batches() -> Iterator[pa.RecordBatch]:
            ended = False
            try:
                with self.errors(doing):
                    yield from reader
                ended = True
            finally:
                stream.finish(cancel=None if ended else self.cancel)

        return pa.RecordBatchReader.from_batches(schema, batches())

    # -- errors ------------------------------------------------------------------------

    @contextmanager
    def errors(self, doing: str) -> Iterator[None]:
        """Turn a database error of the block into one line saying what was being done."""
        try:
            yield
        except (SQLAlchemyError, self._driver_error()) as error:
            raise self._error(error, doing) from error

    def _driver_error(self) -> type[Exception]:
        error: type[Exception] = self._engine.dialect.loaded_dbapi.Error
        return error

    def _error(self, error: BaseException, doing: str) -> CohortsyncError:
        original = getattr(error, "orig", error)
        sqlstate = getattr(original, "sqlstate", None)
        reason = whole_message(original if isinstance(original, BaseException) else error)
        if sqlstate == INSUFFICIENT_PRIVILEGE:
            return ConfigError(
                f"the warehouse role lacks a right for {doing}: {reason}",
                hint="grant the role USAGE and CREATE on the snapshot schema "
                "(COHORTSYNC_SNAPSHOT_SCHEMA, default cohortsync), or set "
                "COHORTSYNC_MIRROR_DIFF=local to diff in cohortsync instead",
            )
        return SourceError(f"{doing} in the warehouse failed: {reason}", hint="check the warehouse")


class _CopyStream(io.RawIOBase):
    """The data of a ``COPY ... TO STDOUT`` as a readable file, for Arrow's CSV reader."""

    def __init__(self, copy: Any, opened: ExitStack) -> None:
        self._opened = opened
        self._chunks = iter(copy)
        self._left = memoryview(b"")
        self._done = False

    def readable(self) -> bool:
        return True

    def empty(self) -> bool:
        """Whether the copy has no data at all (reads its first chunk to know)."""
        while not self._left and not self._done:
            try:
                self._left = memoryview(next(self._chunks))
            except StopIteration:
                self._done = True
        return not self._left

    def readinto(self, buffer: Any) -> int:
        """Fill ``buffer`` as far as the copy goes: the server sends a message per row,
        and Arrow makes a block (a batch) of whatever one read returns."""
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view):
            if not self._left:
                if self._done:
                    break
                try:
                    self._left = memoryview(next(self._chunks)).cast("B")
                except StopIteration:
                    self._done = True
                    break
            size = min(len(view) - filled, len(self._left))
            view[filled : filled + size] = self._left[:size]
            self._left = self._left[size:]
            filled += size
        return filled

    def finish(self, cancel: Callable[[], None] | None = None) -> None:
        """End the copy, so the connection can run the next statement.

        What is left is read to the end; ``cancel`` (given when the reader
        stopped early) first asks the server to stop sending.
        """
        if cancel is not None:
            cancel()
        with suppress(Exception):  # the connection failed: the session reports it next
            for _ in self._chunks:
                pass
        with suppress(Exception):
            self._opened.close()
