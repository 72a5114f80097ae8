"""Fixtures of the in-warehouse mirror tests: a PostgreSQL source of their own.

Each test gets two fresh schemas in the session's PostgreSQL database: one for
its source table, one (``COHORTSYNC_SNAPSHOT_SCHEMA``) for the snapshot
tables the mirror keeps, so tests never see each other's snapshots.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from export.conftest import partner

__all__ = ["partner"]


@dataclass
class PostgresSource:
    """The test's source schema and snapshot schema in PostgreSQL."""

    url: str
    schema: str
    snapshot_schema: str

    def sql(self, statement: str) -> None:
        with psycopg.connect(self.url, autocommit=True) as connection:
            connection.execute(statement)

    def rows(self, query: str) -> list[tuple[object, ...]]:
        with psycopg.connect(self.url, autocommit=True) as connection:
            return list(connection.execute(query).fetchall())

    def users(self, start: int, stop: int, table: str = "t") -> None:
        """Table ``table`` holds ``u00000``-style user ids ``range(start, stop)``."""
        self.sql(f"DROP TABLE IF EXISTS {self.schema}.{table}")
        self.sql(
            f"CREATE TABLE {self.schema}.{table} AS SELECT 'u' || lpad(i::text, 5, '0') "
            f"AS user_ids FROM generate_series({start}, {stop - 1}) i"
        )

    def snapshot_tables(self) -> list[str]:
        return sorted(
            str(name)
            for (name,) in self.rows(
                f"SELECT tablename FROM pg_tables WHERE schemaname = '{self.snapshot_schema}'"
            )
        )

    def snapshot_members(self) -> set[tuple[str, str]]:
        """The members table of the one cohort this test mirrors."""
        [table] = [name for name in self.snapshot_tables() if name.startswith("m_")]
        return self.members_of(table)

    def members_of(self, table: str) -> set[tuple[str, str]]:
        return {
            (str(kind), str(value))
            for kind, value in self.rows(f"SELECT kind, value FROM {self.snapshot_schema}.{table}")
        }


@pytest.fixture
def pg(postgres_url: str, home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PostgresSource]:
    """Fresh schemas; the home reads its warehouse from PostgreSQL and mirrors inside it."""
    suffix = uuid.uuid4().hex[:8]
    source = PostgresSource(postgres_url, f"src_{suffix}", f"snap_{suffix}")
    source.sql(f"CREATE SCHEMA {source.schema}")
    monkeypatch.setenv("COHORTSYNC_WAREHOUSE", postgres_url)
    monkeypatch.setenv("COHORTSYNC_SNAPSHOT_SCHEMA", source.snapshot_schema)
    yield source
    source.sql(f"DROP SCHEMA IF EXISTS {source.schema} CASCADE")
    source.sql(f"DROP SCHEMA IF EXISTS {source.snapshot_schema} CASCADE")
