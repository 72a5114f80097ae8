"""A mirror's diff and snapshot tables inside PostgreSQL (a :class:`SnapshotWarehouse`).

Session relations are temporary tables of one connection
(:class:`~cohortsync.warehouse.postgres_session.PostgresSession`): they need
no right on any schema and vanish with the connection. PostgreSQL refuses
every ``CREATE`` in a read-only transaction, so the relations are created
(:meth:`PostgresSnapshots.declare`) before the user's query is read and
filled by ``INSERT`` inside it. The snapshot tables of a generation are
created in one transaction: a crash before it commits leaves neither, after
it both.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from cohortsync.errors import ConfigError
from cohortsync.warehouse.connect import open_engine
from cohortsync.warehouse.dialect_statements import check_sql_query
from cohortsync.warehouse.placeholders import to_named
from cohortsync.warehouse.postgres_session import (
    PostgresSession,
    quote_identifier,
    quote_literal,
)

_TYPES = {pa.string(): "text", pa.bool_(): "boolean"}


class PostgresSnapshots:
    """One PostgreSQL connection running a mirror's diff; close it when done.

    Args:
        url: the warehouse (``postgresql://...``).
        schema: the schema of the snapshot tables.
    """

    engine = "postgresql"

    def __init__(self, url: str, schema: str) -> None:
        self.url = url
        self.schema = schema
        self.session = PostgresSession(url)

    # -- SQL pieces ----------------------------------------------------------------

    def check_query(self, sql: str) -> str:
        return check_sql_query(sql, "postgresql")

    def result_schema(self, sql: str, params: Sequence[Any]) -> pa.Schema:
        """Through the query engine, as any export reads its source."""
        engine = open_engine(self.url)
        try:
            reader = engine.stream(f"SELECT * FROM ({sql}) AS q LIMIT 0", params)
            schema = reader.schema
            reader.read_all()
        finally:
            engine.close()
        return schema

    def bind(self, sql: str, params: Sequence[Any]) -> tuple[str, Any]:
        return to_named(sql, params)

    def identifier(self, name: str) -> str:
        return quote_identifier(name)

    def literal(self, text: str) -> str:
        return quote_literal(text)

    def invalid(self, value: str, *, max_chars: int, max_bytes: int) -> str:
        """A NUL cannot be stored in PostgreSQL text: the control characters tested are
        U+0001 to U+001F and U+007F to U+009F."""
        return (
            f"(char_length({value}) > {max_chars} "
            f"OR octet_length({value}) > {max_bytes} "
            f"OR {value} ~ '[\\x01-\\x1f\\x7f-\\u009f]')"
        )

    def ordered(self, *columns: str) -> str:
        return ", ".join(f'{column} COLLATE "C"' for column in columns)

    def unpivot(self, pairs: Sequence[tuple[str, str]]) -> str:
        values = ", ".join(f"({kind}, {column})" for kind, column in pairs)
        return f"CROSS JOIN LATERAL (VALUES {values}) AS v(kind, value)"

    def row_number(self) -> str:
        return "row_number() OVER ()"

    # -- the session -------------------------------------------------------------

    def prepare_schema(self) -> None:
        session = self.session
        schema = quote_literal(self.schema)
        exists = session.scalar(f"SELECT count(*) FROM pg_namespace WHERE nspname = {schema}")
        if not exists:
            session.execute(
                f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(self.schema)}",
                doing=f"creating the snapshot schema {self.schema}",
            )
            session.commit()
        for right in ("USAGE", "CREATE"):
            if not session.scalar(f"SELECT has_schema_privilege({schema}, '{right}')"):
                raise ConfigError(
                    f"the warehouse role {session.user!r} has no {right} right on the snapshot "
                    f"schema {self.schema!r}",
                    hint=f"GRANT USAGE, CREATE ON SCHEMA {quote_identifier(self.schema)} TO "
                    f"{quote_identifier(session.user)}, or set COHORTSYNC_SNAPSHOT_SCHEMA to a "
                    "schema it owns",
                )

    def declare(self, name: str, schema: pa.Schema) -> None:
        self.session.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {name} ({_columns(schema)})",
            doing="creating session tables",
        )

    def fill(self, name: str, sql: str, params: Any = None, *, doing: str) -> None:
        self.session.execute(f"INSERT INTO {name} {sql}", params, doing=doing)
        self.session.execute(f"ANALYZE {name}", doing=doing)

    def load(self, name: str, paths: Sequence[Path], schema: pa.Schema, *, doing: str) -> None:
        self.declare(name, schema)
        self.session.execute(f"TRUNCATE {name}", doing=doing)
        present = [path for path in paths if path.exists()]
        for path in present:
            self.session.copy_in(name, schema.names, parquet_batches(path, schema))
        if present:
            self.session.execute(f"ANALYZE {name}", doing=doing)

    @contextmanager
    def reading(self) -> Iterator[None]:
        self.session.commit()  # the session tables created so far outlive the transaction
        with self.session.read_only():
            yield

    def rows(self, sql: str, params: Any = None, *, doing: str) -> list[tuple[Any, ...]]:
        return self.session.rows(sql, params, doing=doing)

    def scalar(self, sql: str, *, doing: str) -> Any:
        with self.session.errors(doing):
            return self.session.scalar(sql)

    def stream(self, sql: str, schema: pa.Schema, *, doing: str) -> pa.RecordBatchReader:
        return self.session.copy_out(sql, schema, doing=doing)

    # -- snapshot tables -----------------------------------------------------------

    def table(self, name: str) -> str:
        return f"{quote_identifier(self.schema)}.{quote_identifier(name)}"

    def has_table(self, name: str) -> bool:
        regclass = quote_literal(self.table(name))
        return bool(self.session.scalar(f"SELECT to_regclass({regclass}) IS NOT NULL"))

    def write_tables(self, tables: Mapping[str, str], *, doing: str) -> None:
        """Every table in one transaction: all of them appear at its commit, or none."""
        for name, sql in tables.items():
            if not self.has_table(name):
                self.session.execute(
                    f"CREATE TABLE {self.table(name)} AS {sql}",
                    doing=f"{doing}: the snapshot table {self.table(name)}",
                )
        self.session.commit()

    def drop_tables(self, prefixes: Sequence[str], *, keep: Collection[str]) -> None:
        session = self.session
        patterns = " OR ".join(
            f"tablename LIKE {quote_literal(prefix + '%')}" for prefix in prefixes
        )
        try:
            names = session.rows(
                f"SELECT tablename FROM pg_tables WHERE schemaname = {quote_literal(self.schema)} "
                f"AND ({patterns})",
                doing="listing older snapshot tables",
            )
            for (name,) in names:
                if name not in keep:
                    session.execute(
                        f"DROP TABLE IF EXISTS {self.table(name)}",
                        doing="dropping an older snapshot table",
                    )
            session.commit()
        except Exception:
            session.rollback()

    def cancel(self) -> None:
        self.session.cancel()

    def close(self) -> None:
        self.session.close()


def _columns(schema: pa.Schema) -> str:
    return ", ".join(f"{field.name} {_TYPES[field.type]} NOT NULL" for field in schema)


def parquet_batches(path: Path, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """The ``schema`` columns of a Parquet file, a batch at a time."""
    parquet = pq.ParquetFile(path)
    try:
        yield from parquet.iter_batches(batch_size=65_536, columns=schema.names)
    finally:
        parquet.close()
