"""Building the new table beside the old one and swapping it in, in one transaction.

Both engines have transactional DDL, so a failure or a Ctrl-C at any point
leaves the old table and no staging table behind.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from cohortsync.errors import RunInterrupted, SourceError, whole_message
from cohortsync.warehouse.base import DEFAULT_BATCH_SIZE
from cohortsync.warehouse.loading.checker import FileChecker
from cohortsync.warehouse.loading.options import LoadOptions
from cohortsync.warehouse.names import quote_identifier

if TYPE_CHECKING:
    import sqlalchemy as sa


# Where a replace builds the new table: a name no user table starts with.
STAGING_PREFIX = "_cohortsync_load_"


def staging_name() -> str:
    """A table name no one else uses: where the new table is built before the swap."""
    return f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}"


def is_interrupt(error: BaseException) -> bool:
    """Ctrl-C as DuckDB reports it: its InterruptException, or a bare "Query interrupted"."""
    return isinstance(error, KeyboardInterrupt | duckdb.InterruptException) or (
        type(error) is RuntimeError and str(error).strip() == "Query interrupted"
    )


def interrupted(table: str) -> RunInterrupted:
    """The one line for a load stopped by Ctrl-C or SIGTERM."""
    return RunInterrupted(
        f"load interrupted; table {table} was left as it was",
        hint="run the load again",
    )


# -- DuckDB: check, build beside, swap --------------------------------------------------


def duckdb_columns(
    cursor: duckdb.DuckDBPyConnection, schema_name: str | None, name: str
) -> dict[str, str] | None:
    """The columns of the table (name -> type), or None when there is no such table.

    Read from the catalog rather than with DESCRIBE, whose error on a missing
    table would abort the load's transaction.
    """
    described = cursor.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_catalog = current_database() AND lower(table_schema) = lower(?) "
        "AND lower(table_name) = lower(?) ORDER BY ordinal_position",
        [schema_name or "main", name],
    ).fetchall()
    return {str(row[0]): str(row[1]) for row in described} or None


def load_duckdb(
    connection: duckdb.DuckDBPyConnection,
    table: str,
    schema_name: str | None,
    name: str,
    path: Path,
    options: LoadOptions,
) -> int:
    """Load ``path`` into ``table`` of a DuckDB warehouse in one transaction.

    The file is checked before anything is written; a replace builds a staging
    table and renames it over the old one, an append inserts by column name.
    Any error, or Ctrl-C, rolls the whole transaction back.
    """
    target = (
        f"{quote_identifier(schema_name)}.{quote_identifier(name)}"
        if schema_name
        else quote_identifier(name)
    )
    cursor = connection.cursor()
    checker = FileChecker(cursor, path, options)
    try:
        cursor.execute("BEGIN TRANSACTION")
        existing = duckdb_columns(cursor, schema_name, name)
        prepared = checker.prepare(existing if options.mode == "append" else None)
        if options.mode == "append" and existing is not None:
            names = ", ".join(quote_identifier(column) for column, _ in prepared.columns)
            cursor.execute(f"INSERT INTO {target} ({names}) {prepared.select_sql}", prepared.params)
        else:
            stage = staging_name()
            staged = (
                f"{quote_identifier(schema_name)}.{quote_identifier(stage)}"
                if schema_name
                else quote_identifier(stage)
            )
            cursor.execute(f"CREATE TABLE {staged} AS {prepared.select_sql}", prepared.params)
            if existing is not None:
                cursor.execute(f"DROP TABLE {target}")
            cursor.execute(f"ALTER TABLE {staged} RENAME TO {quote_identifier(name)}")
        cursor.execute("COMMIT")
    except (KeyboardInterrupt, duckdb.InterruptException) as error:
        _rollback(cursor)
        raise interrupted(table) from error
    except RuntimeError as error:
        _rollback(cursor)
        if is_interrupt(error):
            raise interrupted(table) from error
        raise
    except duckdb.Error as error:
        _rollback(cursor)
        raise SourceError(
            f"loading {path} into {table} failed: {whole_message(error)}",
            hint="the table was left as it was; check the file, or that its columns "
            "match the table's (or load with --mode replace)",
        ) from error
    except BaseException:
        _rollback(cursor)
        raise
    finally:
        checker.close()
        cursor.close()
    return prepared.rows


def _rollback(cursor: duckdb.DuckDBPyConnection) -> None:
    with contextlib.suppress(duckdb.Error):
        cursor.execute("ROLLBACK")


# -- other engines: DuckDB checks the file, the rows travel as Arrow batches --------------


def duckdb_types(schema: pa.Schema) -> dict[str, str]:
    """The DuckDB type of each column of an Arrow schema (a table on another engine)."""
    with duckdb.connect() as connection:
        relation = connection.from_arrow(schema.empty_table())
        return {
            name: str(kind) for name, kind in zip(relation.columns, relation.types, strict=True)
        }


def load_sqlalchemy(
    connect: Callable[[], Any],
    table: str,
    schema_name: str | None,
    name: str,
    path: Path,
    options: LoadOptions,
    *,
    existing: pa.Schema | None,
    copy: Callable[[Any, sa.Table, pa.RecordBatchReader], int],
    errors: tuple[type[BaseException], ...],
) -> int:
    """Load ``path`` into a SQLAlchemy warehouse with the same rules as DuckDB's.

    An in-memory DuckDB reads and checks the file (so the rules, line numbers
    and messages are the same on every engine) and then streams the typed
    rows; ``copy`` writes them (COPY on PostgreSQL). A replace creates a
    staging table, fills it, drops the old table and renames the staging one,
    all in one transaction: PostgreSQL's DDL is transactional.

    Args:
        connect: opens a SQLAlchemy connection to the warehouse.
        existing: the table's Arrow schema, or None when it does not exist.
        copy: writes a reader's batches into a table; returns rows written.
        errors: the driver's exceptions, turned into :class:`SourceError`.
    """
    # Imported here: the embedded DuckDB warehouse never needs SQLAlchemy.
    import sqlalchemy as sa
    from sqlalchemy.exc import SQLAlchemyError

    # Imported here, with SQLAlchemy: only loads into a SQLAlchemy warehouse need them.
    from cohortsync.warehouse.arrow_types import sql_type

    reader_connection = duckdb.connect()
    checker = FileChecker(reader_connection.cursor(), path, options)
    try:
        appending = options.mode == "append" and existing is not None
        prepared = checker.prepare(
            duckdb_types(existing) if appending and existing is not None else None
        )
        rows = reader_connection.sql(prepared.select_sql, params=prepared.params).to_arrow_reader(
            DEFAULT_BATCH_SIZE
        )
        metadata = sa.MetaData(schema=schema_name)
        with connect() as connection, connection.begin():
            preparer = connection.dialect.identifier_preparer
            if appending:
                target = sa.Table(name, metadata, *(sa.Column(n) for n, _ in prepared.columns))
                copy(connection, target, rows)
            else:
                stage = sa.Table(
                    staging_name(),
                    metadata,
                    *(sa.Column(field.name, sql_type(field)) for field in rows.schema),
                )
                stage.create(connection)
                copy(connection, stage, rows)
                if existing is not None:
                    old = sa.Table(name, sa.MetaData(schema=schema_name))
                    connection.execute(sa.text(f"DROP TABLE {preparer.format_table(old)}"))
                connection.execute(
                    sa.text(
                        f"ALTER TABLE {preparer.format_table(stage)} "
                        f"RENAME TO {preparer.quote(name)}"
                    )
                )
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
    except (SQLAlchemyError, pa.ArrowException, *errors) as error:
        raise SourceError(
            f"loading {path} into {table} failed: {whole_message(error)}",
            hint="the table was left as it was; check that the file's columns "
            "match the table's, or load with --mode replace",
        ) from error
    finally:
        checker.close()
        reader_connection.close()
    return prepared.rows
