"""The embedded warehouse: one DuckDB file (or ``:memory:``).

Locking, and why reads open the file read-only: DuckDB lets either one process
open a file read-write, or any number of processes open it read-only. Exports
only read, and the scheduler and a person at the console may export at the same
time, so reads (``stream``, ``count``, ``table_schema``, ``tables``) open the
file read-only and never block one another. Only ``load`` opens it read-write,
which needs the file to itself; when another process holds it, the error says
so instead of surfacing DuckDB's lock exception. Close engines when done (use
them as context managers): an open engine keeps its lock.

Why queries cannot write, nor reach the host: a query is first checked to be
one read-only statement (:mod:`cohortsync.warehouse.statements`), and it then
runs on a connection where writing is impossible anyway: the file opened
read-only, with DuckDB's external access off (no ``read_csv`` of host files,
no ``COPY``, ``ATTACH`` or extensions) except in the directories given by
``--allow-files`` / ``COHORTSYNC_ALLOW_FILES``. External access is switched off
at run time, after ``allowed_directories`` is set, because DuckDB accepts
``allowed_directories`` only on a running database, and once off it cannot be
switched on again by a query.

Within one process DuckDB shares one database instance per file, and refuses
a connection whose configuration differs from the instance's (read-only versus
read-write). So queries and loads take turns: one engine closes its query
connection before a load and its load connection before a query; two engines
of one process, one loading and one querying the same file at the same moment,
cannot coexist, and the error says to close the other. Query connections of one
process join one read-only instance only when they allow the same directories.

An in-memory warehouse has a single connection that loads and queries share:
it cannot be reopened read-only, so the statement check alone keeps its
queries from writing, and external access is switched off at its first query
(for good: later loads of files into it fail).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Self

import duckdb
import pyarrow as pa

from cohortsync.errors import ConfigError, SourceError, whole_message
from cohortsync.warehouse.base import DEFAULT_BATCH_SIZE
from cohortsync.warehouse.loading import LoadOptions, interrupted, load_duckdb
from cohortsync.warehouse.loading.entry import LoadsFiles
from cohortsync.warehouse.names import quote_table_name
from cohortsync.warehouse.statements import check_duckdb_query

MEMORY = ":memory:"
_TABLES_HINT = "check the table name; 'cohortsync warehouse tables' lists them"
_FILES_HINT = (
    "file access is off for queries; open a directory on purpose with --allow-files DIR "
    "or COHORTSYNC_ALLOW_FILES, or load the file with 'cohortsync warehouse load'"
)
# Connecting and switching external access off is one step for the whole
# process, since connections to one file share one database instance.
_CONFIGURE_LOCK = threading.Lock()
_LOCK_HELD = re.compile(r"Conflicting lock is held in (?P<program>.*?) \(PID (?P<pid>\d+)\)")


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
    if isinstance(error, duckdb.PermissionException):
        return _FILES_HINT
    if isinstance(error, duckdb.CatalogException):
        return _TABLES_HINT
    if isinstance(error, duckdb.BinderException):
        return (
            "check the column names; 'cohortsync warehouse query \"DESCRIBE <table>\"' shows them"
        )
    if isinstance(error, duckdb.ParserException):
        return "check the SQL syntax"
    return "check the SQL"


def _directory_setting(path: Path | str) -> str:
    """A directory as DuckDB lists it in ``allowed_directories``: absolute, ending in ``/``."""
    return str(Path(path).expanduser().resolve()).rstrip("/") + "/"


def _allowed_directory(path: Path | str) -> str:
    """An ``--allow-files`` directory, refused unless it exists (a typo would open nothing)."""
    if not Path(path).expanduser().is_dir():
        raise ConfigError(
            f"cannot allow queries to read files in {path}: no such directory",
            hint="give an existing directory to --allow-files or COHORTSYNC_ALLOW_FILES",
        )
    return _directory_setting(path)


class DuckDBEngine(LoadsFiles):
    """A DuckDB database file; see the module docstring for its locking rules."""

    def __init__(self, url: str, path: str, *, allow_files: Iterable[Path | str] = ()) -> None:
        self.url = url
        self.path = path
        self.allow_files = sorted({_allowed_directory(directory) for directory in allow_files})
        self._connection: duckdb.DuckDBPyConnection | None = None
        self._read_only = False
        self._queries_restricted = False

    @property
    def in_memory(self) -> bool:
        return self.path == MEMORY

    # -- connections -------------------------------------------------------------

    def _open(self, *, write: bool) -> duckdb.DuckDBPyConnection:
        """The connection for a load (``write``) or for queries, opened as each needs.

        A load gets the file read-write. Queries get it read-only with external
        access off; a file that does not exist yet is queried as an empty
        database, so checking a query never creates the warehouse. An open
        connection of the other kind is closed first.
        """
        if self.in_memory:
            return self._open_memory(write=write)
        if self._connection is not None and self._read_only != write:
            return self._connection
        self.close()
        path = Path(self.path)
        if not write:
            self._connection, self._read_only = self._open_for_queries(path), True
            return self._connection
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._connection, self._read_only = duckdb.connect(str(path)), False
        except duckdb.ConnectionException as error:
            raise SourceError(
                f"the warehouse file {path} is open read-only elsewhere in this process",
                hint="close the other engine before writing to the warehouse",
            ) from error
        except duckdb.Error as error:
            raise self._open_failed(path, error, write) from error
        return self._connection

    def _open_for_queries(self, path: Path) -> duckdb.DuckDBPyConnection:
        """``path`` read-only with external access off (or an empty database if it is absent)."""
        with _CONFIGURE_LOCK:
            try:
                if path.exists():
                    connection = duckdb.connect(str(path), read_only=True)
                else:
                    connection = duckdb.connect(MEMORY)
            except duckdb.ConnectionException as error:
                raise SourceError(
                    f"the warehouse file {path} is open for writing elsewhere in this process "
                    "(a load), and queries need it read-only",
                    hint="close the loading engine before querying",
                ) from error
            except duckdb.Error as error:
                raise self._open_failed(path, error, False) from error
            try:
                self._restrict(connection)
            except BaseException:
                connection.close()
                raise
        return connection

    def _open_memory(self, *, write: bool) -> duckdb.DuckDBPyConnection:
        """The one connection of an in-memory warehouse; queries switch its file access off."""
        if self._connection is None:
            self._connection, self._read_only = duckdb.connect(MEMORY), False
        if not write and not self._queries_restricted:
            with _CONFIGURE_LOCK:
                self._restrict(self._connection)
            self._queries_restricted = True
        return self._connection

    def _restrict(self, connection: duckdb.DuckDBPyConnection) -> None:
        """Switch external access off, but for :attr:`allow_files`; or check it already is.

        A connection that joined a database instance already restricted by
        another engine of this process inherits its allowed directories, which
        cannot change any more: they must be the ones this engine allows.
        """
        settings = connection.sql(
            "SELECT current_setting('enable_external_access'), "
            "current_setting('allowed_directories'), current_setting('temp_directory')"
        ).fetchall()[0]
        external, allowed, temp = settings
        if external:
            if self.allow_files:
                listed = ", ".join("'" + name.replace("'", "''") + "'" for name in self.allow_files)
                connection.execute(f"SET allowed_directories = [{listed}]")
            connection.execute("SET enable_external_access = false")
            return
        # DuckDB adds its own temporary directory to the allowed ones.
        granted = set(allowed or ()) - ({_directory_setting(temp)} if temp else set())
        if granted != set(self.allow_files):
            raise SourceError(
                f"the warehouse file {self.path} is already open for queries in this process "
                "with other allowed directories",
                hint="close the other engine first, or give both the same --allow-files",
            )

    def _open_failed(self, path: Path, error: duckdb.Error, write: bool) -> SourceError:
        """Why ``path`` could not be opened (for writing when ``write``), in the user's terms.

        A file another process holds is named with that process; an I/O error is
        an unreadable file; anything else is a file that is not a DuckDB database.
        """
        if not isinstance(error, duckdb.IOException):
            return SourceError(
                f"cannot open the warehouse file {path}: {whole_message(error)}",
                hint="check that it is a DuckDB database, or point --warehouse elsewhere",
            )
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
        """Bind ``sql`` on a fresh cursor of the query connection (read-only, no file access).

        A write refused there is not retried read-write: queries never write.
        """
        cursor = self._open(write=False).cursor()
        try:
            return cursor.sql(sql, params=list(params) or None), cursor
        except duckdb.Error as error:
            cursor.close()
            raise SourceError(f"query failed: {whole_message(error)}", hint=_hint(error)) from error

    # -- queries -----------------------------------------------------------------

    def stream(
        self, sql: str, params: Sequence[Any] = (), *, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> pa.RecordBatchReader:
        """Stream ``sql``'s result straight from DuckDB's Arrow reader.

        Raises:
            SourceError: ``sql`` is not one read-only statement, or it failed.
        """
        relation, cursor = self._relation(check_duckdb_query(sql), params)
        try:
            reader = relation.to_arrow_reader(batch_size)
        except duckdb.Error as error:
            cursor.close()
            raise SourceError(f"query failed: {whole_message(error)}", hint=_hint(error)) from error
        return pa.RecordBatchReader.from_batches(reader.schema, _batches(reader, cursor))

    def bind(self, sql: str, params: Sequence[Any] = ()) -> list[str]:
        """Check ``sql`` and bind it where queries run, reading no row; returns its columns.

        The export's pushdown runs the query inside its own staging database,
        which needs file access for its spill and plan files. Binding the
        query here first proves that it is one read-only statement and that
        it reaches no host file outside the allowed directories: DuckDB
        resolves files (``read_csv(...)``, ``FROM 'file.csv'``) when binding.

        Raises:
            SourceError: ``sql`` is refused, reaches a file, or does not bind.
        """
        relation, cursor = self._relation(check_duckdb_query(sql), params)
        try:
            return list(relation.columns)
        finally:
            cursor.close()

    def count(self, sql: str, params: Sequence[Any] = ()) -> int:
        """The number of rows of ``sql``, counted by DuckDB."""
        inner = check_duckdb_query(sql)
        relation, cursor = self._relation(f"SELECT count(*) FROM ({inner}\n) AS counted", params)
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

    def _load_file(
        self, table: str, schema_name: str | None, name: str, path: Path, options: LoadOptions
    ) -> int:
        """Build the table with :func:`~cohortsync.warehouse.loading.load_duckdb`."""
        try:
            connection = self._open(write=True)
        except KeyboardInterrupt as error:
            raise interrupted(table) from error
        return load_duckdb(connection, table, schema_name, name, path, options)

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
        raise SourceError(f"query failed: {whole_message(error)}", hint=_hint(error)) from error
    finally:
        reader.close()
        cursor.close()
