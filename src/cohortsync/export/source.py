"""Open an export's source as a stream of Arrow record batches.

The warehouse engines (:func:`cohortsync.warehouse.open_engine`) do the real
work; this module turns a :class:`Source` into SQL (a ``--table`` becomes
``SELECT * FROM "table"``, the name quoted) and keeps every failure on the
source side of the exit codes (:class:`SourceError`, exit 3), naming the
query or table that failed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pyarrow as pa

from cohortsync.errors import ConfigError, SourceError, whole_message
from cohortsync.export.spec import Source
from cohortsync.settings import Settings
from cohortsync.warehouse import open_engine, quote_table_name
from cohortsync.warehouse.capabilities import capabilities_of
from cohortsync.warehouse.duckdb_engine import DuckDBEngine

STREAM_BATCH_ROWS = 65_536


def source_sql(source: Source, warehouse_url: str | None = None) -> str:
    """The SQL that reads ``source`` on the warehouse ``warehouse_url`` (its own when given).

    Raises:
        SourceError: neither a query nor a table, or an invalid table name.
    """
    if source.table:
        url = source.warehouse_url or warehouse_url or ""
        quote = "`" if capabilities_of(url).name == "spark" else '"'
        try:
            return f"SELECT * FROM {quote_table_name(source.table, quote=quote)}"
        except ConfigError as error:
            raise SourceError(error.message, hint=error.hint) from error
    if source.sql and source.sql.strip():
        return source.sql
    raise SourceError("the export has no query and no table", hint="give --query or --table")


@contextmanager
def stream_source(source: Source, settings: Settings) -> Iterator[pa.RecordBatchReader]:
    """Run the source's query and stream its result; closes the engine afterwards.

    Raises:
        SourceError: the warehouse cannot be opened or the query fails.
    """
    sql = source_sql(source, settings.warehouse_url)
    engine = open_engine(source.warehouse_url or settings.warehouse_url)
    try:
        try:
            reader = engine.stream(sql, source.params, batch_size=STREAM_BATCH_ROWS)
        except SourceError as error:
            raise query_failed(source, error) from error
        yield reader
    finally:
        engine.close()


def check_pushdown(source: Source, settings: Settings) -> None:
    """Check and bind the source on the DuckDB engine before the staging database runs it.

    The staging database reads the warehouse itself (the pushdown) and has
    file access for its own files, so the query must first pass where queries
    run: one read-only statement, bound read-only with no host file reachable.

    Raises:
        SourceError: the query is refused or fails to bind, naming the source.
    """
    engine = open_engine(source.warehouse_url or settings.warehouse_url)
    try:
        if isinstance(engine, DuckDBEngine):
            engine.bind(source_sql(source), source.params)
    except SourceError as error:
        raise query_failed(source, error) from error
    finally:
        engine.close()


def query_failed(source: Source, error: BaseException) -> SourceError:
    """The one-line error for a source that failed while being read."""
    if isinstance(error, SourceError):
        # The engine's "query failed: " would repeat what the source's name says.
        reason = error.message.removeprefix("query failed: ")
        return SourceError(f"the {source.describe()} failed: {reason}", hint=error.hint)
    return SourceError(
        f"the {source.describe()} failed: {whole_message(error)}",
        hint="check it with 'cohortsync warehouse query'",
    )
