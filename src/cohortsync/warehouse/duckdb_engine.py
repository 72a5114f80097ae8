"""The embedded warehouse: one DuckDB file (or ``:memory:``).

Locking, and why reads open the file read-only: DuckDB lets either one process
open a file read-write, or any number of processes open it read-only. Exports
only read, and the scheduler and a person at the console may export at the same
time, so reads (``stream``, ``count``, ``table_schema``, ``tables``) open the
file read-only and never block one another. Writes (``load``, or a statement
such as ``CREATE VIEW`` passed to ``stream``) reopen it read-write, which needs
the file to themselves; when another process holds it, the error says so
instead of surfacing DuckDB's lock exception. Close engines when done (use them
as context managers): an open engine keeps its lock.

Within one process DuckDB shares one database instance per file, and refuses a
read-only connection while a read-write one is open; reads then simply join
the read-write instance.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Self

import duckdb
import pyarrow as pa

from cohortsync.errors import SourceError, whole_message
from cohortsync.warehouse.base import DEFAULT_BATCH_SIZE, FileFormat, LoadMode
from cohortsync.warehouse.files import check_readable, detect_format
from cohortsync.warehouse.names import quote_table_name

MEMORY = ":memory:"
_TABLES_HINT = "check the table name; 'cohortsync warehouse tables' lists them"
_LOCK_HELD = re.compile(r"Conflicting lock is held in (?P<program>.*?) \(PID (?P<pid>\d+)\)")

# DuckDB's readers, each taking the file path as its one parameter.
_READERS: dict[FileFormat, str] = {
    "csv": "read_csv(?, auto_detect = true)",
    "parquet": "read_parquet(?)",
    "ndjson": "read_json(?, format = 'newline_delimited')",
}

_TABLES_SQL = """
SELECT CASE WHEN schema_name = 'main' THEN table_name
            ELSE schema_name || '.' || table_name END AS name
FROM duckdb_tables() WHERE database_name = current_database()
UNION ALL
SELECT CASE WHEN schema_name = 'main' THEN view_name
            ELSE schema_name || '.' || view_name END
FROM duckdb_views() WHERE database_name = current_database() AND NOT internal
ORDER BY name
"""


def _hint(error: BaseException) -> str:
    if isinstance(error, duckdb.CatalogException):
        return _TABLES_HINT
    if isinstance(error, duckdb.BinderException):
        return (
            "check the column names; 'cohortsync warehouse query \"DESCRIBE <table>\"' shows them"
        )
    if isinstance(error, duckdb.ParserException):
        return "check the SQL syntax"
    return "check the SQL"


def _is_read_only_refusal(error: duckdb.Error) -> bool:
    return "read-only mode" in str(error)


class DuckDBEngine:
    """A DuckDB database file; see the module docstring for its locking rules."""

    def __init__(self, url: str, path: str) -> None:
        self.url = url
        self.path = path
        self._connection: duckdb.DuckDBPyConnection | None = None
        self._read_only = False

    @property
    def in_memory(self) -> bool:
        return self.path == MEMORY

    # -- connections -------------------------------------------------------------

    def _open(self, *, write: bool) -> duckdb.DuckDBPyConnection:
        """The connection, opened (or reopened read-write) as the operation needs."""
        if self._connection is not None and not (write and self._read_only):
            return self._connection
        self.close()
        if self.in_memory:
            self._connection, self._read_only = duckdb.connect(MEMORY), False
            return self._connection
        path = Path(self.path)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            write = True  # creating the file needs a read-write open
        try:
            self._connection = duckdb.connect(str(path), read_only=not write)
            self._read_only = not write
        except duckdb.ConnectionException as error:
            if write:
                raise SourceError(
                    f"the warehouse file {path} is open read-only elsewhere in this process",
                    hint="close the other engine before writing to the warehouse",
                ) from error
            # This process already has the file open read-write: join that instance.
            self._connection, self._read_only = duckdb.connect(str(path)), False
        except duckdb.IOException as error:
            raise self._open_failed(path, error, write) from error
        except duckdb.Error as error:
            raise SourceError(
                f"cannot open the warehouse file {path}: {whole_message(error)}",
                hint="check that it is a DuckDB database, or point --warehouse elsewhere",
            ) from error
        return self._connection

    def _open_failed(self, path: Path, error: duckdb.Error, write: bool) -> SourceError:
        held = _LOCK_HELD.search(str(error))
        if held is None:
            return SourceError(
                f"cannot open the warehouse file {path}: {whole_message(error)}",
                hint="check that it is a DuckDB database and readable",
            )
        holder = f"another process (PID {held['pid']})"
        if write:
            return SourceError(
                f"the warehouse file {path} is in use by {holder}, and writing needs it alone",
                hint="wait until that process (an export, the scheduler, a query) has finished, "
                "then try again",
            )
        return SourceError(
            f"the warehouse file {path} is in use by {holder}, which has it open for writing",
            hint="wait until the load or write has finished, then try again",
        )

    def _relation(self, sql: str, params: Sequence[Any]) -> tuple[Any, duckdb.DuckDBPyConnection]:
        """Bind ``sql`` on a fresh cursor; a write on a read-only file reopens it read-write."""
        for attempt in (1, 2):
            cursor = self._open(write=False).cursor()
            try:
                return cursor.sql(sql, params=list(params) or None), cursor
            except duckdb.Error as error:
                cursor.close()
                if attempt == 1 and self._read_only and _is_read_only_refusal(error):
                    self._open(write=True)
                    continue
                raise SourceError(
                    f"query failed: {whole_message(error)}", hint=_hint(error)
                ) from error
        raise AssertionError("unreachable")  # pragma: no cover

    # -- queries -----------------------------------------------------------------

    def stream(
        self, sql: str, params: Sequence[Any] = (), *, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> pa.RecordBatchReader:
        """Stream ``sql``'s result straight from DuckDB's Arrow reader."""
        relation, cursor = self._relation(sql, params)
        if relation is None:  # an empty statement
            cursor.close()
            return pa.RecordBatchReader.from_batches(pa.schema([]), iter(()))
        try:
            reader = relation.to_arrow_reader(batch_size)
        except duckdb.Error as error:
            cursor.close()
            raise SourceError(f"query failed: {whole_message(error)}", hint=_hint(error)) from error
        return pa.RecordBatchReader.from_batches(reader.schema, _batches(reader, cursor))

    def count(self, sql: str, params: Sequence[Any] = ()) -> int:
        """The number of rows of ``sql``, counted by DuckDB."""
        inner = sql.strip().rstrip(";")
        relation, cursor = self._relation(f"SELECT count(*) FROM ({inner}) AS counted", params)
        try:
            return int(relation.fetchall()[0][0])
        except duckdb.Error as error:
            raise SourceError(f"query failed: {whole_message(error)}", hint=_hint(error)) from error
        finally:
            cursor.close()

    def table_schema(self, table: str) -> pa.Schema:
        """The Arrow schema of ``table`` (no rows are read)."""
        try:
            relation, cursor = self._relation(
                f"SELECT * FROM {quote_table_name(table)} LIMIT 0", ()
            )
        except SourceError as error:
            if isinstance(error.__cause__, duckdb.CatalogException):
                raise SourceError(
                    f"no table {table!r} in the warehouse", hint=_TABLES_HINT
                ) from error
            raise
        try:
            return relation.to_arrow_table().schema
        finally:
            cursor.close()

    def tables(self) -> list[str]:
        """Tables and views of the warehouse file, sorted."""
        relation, cursor = self._relation(_TABLES_SQL, ())
        try:
            return [row[0] for row in relation.fetchall()]
        finally:
            cursor.close()

    # -- loads -------------------------------------------------------------------

    def load(
        self,
        table: str,
        path: Path,
        *,
        mode: LoadMode = "replace",
        format: FileFormat | None = None,
    ) -> int:
        """Load ``path`` with DuckDB's own reader, in one transaction."""
        file_format = detect_format(check_readable(path), format)
        target = quote_table_name(table)
        source = _READERS[file_format]
        cursor = self._open(write=True).cursor()
        try:
            cursor.execute("BEGIN TRANSACTION")
            if mode == "replace":
                cursor.execute(
                    f"CREATE OR REPLACE TABLE {target} AS SELECT * FROM {source}", [str(path)]
                )
            else:
                cursor.execute(
                    f"CREATE TABLE IF NOT EXISTS {target} AS SELECT * FROM {source} LIMIT 0",
                    [str(path)],
                )
                cursor.execute(f"INSERT INTO {target} BY NAME SELECT * FROM {source}", [str(path)])
            row = cursor.fetchone()
            cursor.execute("COMMIT")
        except duckdb.Error as error:
            with contextlib.suppress(duckdb.Error):
                cursor.execute("ROLLBACK")
            raise SourceError(
                f"loading {path} into {table} failed: {whole_message(error)}",
                hint="the table was left as it was; check the file, or that its columns "
                "match the table's (or load with --mode replace)",
            ) from error
        finally:
            cursor.close()
        return int(row[0]) if row else 0

    def close(self) -> None:
        """Close the connection and release the file lock."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _batches(
    reader: pa.RecordBatchReader, cursor: duckdb.DuckDBPyConnection
) -> Iterator[pa.RecordBatch]:
    """DuckDB's batches unchanged; errors met while reading become :class:`SourceError`."""
    try:
        yield from reader
    except (duckdb.Error, pa.ArrowException, OSError) as error:
        raise SourceError(f"query failed: {whole_message(error)}", hint="check the SQL") from error
    finally:
        reader.close()
        cursor.close()
