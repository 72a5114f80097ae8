"""Open an export's source as a stream of Arrow record batches.

The warehouse engines (:func:`cohortsync.warehouse.open_engine`) do the real
work; this module turns a :class:`Source` into SQL (a ``--table`` becomes
``SELECT * FROM "table"``) and keeps errors on the source side of the exit
codes (:class:`SourceError`, exit 3).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pyarrow as pa

from cohortsync.errors import CohortsyncError, SourceError
from cohortsync.export.spec import Source
from cohortsync.settings import Settings

STREAM_BATCH_ROWS = 65_536


def quote_table(table: str) -> str:
    """``schema.name`` -> ``"schema"."name"``: quoted, so a name never becomes SQL."""
    parts = table.split(".")
    if not all(parts) or len(parts) > 3:
        raise SourceError(
            f"invalid table name {table!r}",
            hint="give a table as name or schema.name",
        )
    return ".".join('"' + part.replace('"', '""') + '"' for part in parts)


def source_sql(source: Source) -> str:
    """The SQL that reads ``source``."""
    if source.table:
        return f"SELECT * FROM {quote_table(source.table)}"
    if source.sql and source.sql.strip():
        return source.sql
    raise SourceError("the export has no query and no table", hint="give --query or --table")


@contextmanager
def stream_source(source: Source, settings: Settings) -> Iterator[pa.RecordBatchReader]:
    """Run the source's query and stream its result; closes the engine afterwards.

    Raises:
        SourceError: the warehouse cannot be opened or the query fails.
    """
    url = source.warehouse_url or settings.warehouse_url
    sql = source_sql(source)
    engine = _open_engine(url)
    try:
        try:
            reader = engine.stream(sql, source.params, batch_size=STREAM_BATCH_ROWS)
        except CohortsyncError:
            raise
        except Exception as error:  # engines should raise SourceError; be safe
            raise query_failed(source, error) from error
        yield reader
    finally:
        engine.close()


def query_failed(source: Source, error: BaseException) -> SourceError:
    """The one-line error for a query that failed, naming the source."""
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return SourceError(
        f"the {source.describe()} failed: {first_line}",
        hint="check it with 'cohortsync warehouse query'",
    )


def _open_engine(url: str) -> Any:
    """The warehouse engine for ``url``."""
    warehouse = importlib.import_module("cohortsync.warehouse")
    open_engine = getattr(warehouse, "open_engine", None)
    if open_engine is not None:
        return open_engine(url)
    return _DuckDBReader(url)  # until the warehouse package ships its engines


class _DuckDBReader:
    """A minimal read-only DuckDB engine, used only when ``open_engine`` is absent."""

    def __init__(self, url: str) -> None:
        import duckdb

        if not url.startswith("duckdb:///"):
            raise SourceError(f"unsupported warehouse URL {url!r}", hint="use duckdb:///PATH")
        self.url = url
        path = url.removeprefix("duckdb:///")
        try:
            self._connection = duckdb.connect(path, read_only=True)
        except duckdb.Error as error:
            raise SourceError(
                f"cannot open the warehouse {path}: {error}",
                hint="load data first with 'cohortsync warehouse load'",
            ) from error

    def stream(
        self, sql: str, params: Any = (), *, batch_size: int = STREAM_BATCH_ROWS
    ) -> pa.RecordBatchReader:
        import duckdb

        try:
            result = self._connection.execute(sql, list(params) or None)
            return result.to_arrow_reader(batch_size)
        except duckdb.Error as error:
            raise SourceError(f"the query failed: {str(error).splitlines()[0]}") from error

    def close(self) -> None:
        self._connection.close()
