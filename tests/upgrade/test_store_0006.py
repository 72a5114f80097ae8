"""Store revision 0006: source allowlists of data import keys and REST API keys.

The previous release's stores (SQLite, and PostgreSQL restored from its
dump) are brought to revision 0005, where keys had no allowlist, and
upgraded by today's real executable: every key accepts any source as
before, nothing else changes, and an allowlist set afterwards is stored
and shown.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from tests.upgrade.test_database_upgrades import STORE_HEAD, Cli, check_store_usable, post, serving

from cohortsync import dbschema
from cohortsync.braze.store import STORE_SCHEMA

KEY_TABLES = {
    "braze_data_import_keys": "allowed_sources",
    "braze_workspaces": "rest_api_key_sources",
}


def engine_of(db_url: str) -> sa.Engine:
    return sa.create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))


def rows_of(conn: sa.Connection, table: str) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in conn.execute(sa.text(f"SELECT * FROM {table} ORDER BY 1"))]


def store_at_0005(db_url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Bring the old store to 0005; the key tables' rows as they stand there."""
    engine = engine_of(db_url)
    try:
        with engine.begin() as conn:
            state = dbschema.status(conn, STORE_SCHEMA)
            before = state.current if state.versioned else STORE_SCHEMA.recognise(conn)
            dbschema._upgrade(STORE_SCHEMA, conn, before, "0005")
        with engine.connect() as conn:
            for table, column in KEY_TABLES.items():
                names = {found["name"] for found in sa.inspect(conn).get_columns(table)}
                assert column not in names
            version = conn.execute(sa.text("SELECT version_num FROM braze_store_version"))
            assert version.scalar_one() == "0005"
            return {table: rows_of(conn, table) for table in KEY_TABLES}
    finally:
        engine.dispose()


def check_upgrade_to_0006(cli: Cli, db_url: str, old: dict[str, Any]) -> None:
    before = store_at_0005(db_url)
    assert before["braze_data_import_keys"] and before["braze_workspaces"]
    upgraded = json.loads(cli("braze", "db", "upgrade", "--db", db_url, "--json").stdout)
    assert (upgraded["before"], upgraded["after"]) == ("0005", STORE_HEAD)
    assert STORE_HEAD >= "0006"
    engine = engine_of(db_url)
    try:
        with engine.connect() as conn:
            for table, column in KEY_TABLES.items():
                # Every row as it was, plus the new column, NULL: any source.
                assert rows_of(conn, table) == [(*row, None) for row in before[table]]
                names = [found["name"] for found in sa.inspect(conn).get_columns(table)]
                assert names[-1] == column
    finally:
        engine.dispose()
    check_store_usable(cli, db_url, old)

    listed = json.loads(
        cli("braze", "key", "list", "-w", old["workspace"], "--json", "--db", db_url).stdout
    )
    assert listed and all(key["allowed_sources"] is None for key in listed)
    restricted = json.loads(
        cli("braze", "key", "allow", old["key"], "--allow", "10.0.0.0/8", "--db", db_url).stdout
    )
    assert restricted["allowed_sources"] == ["10.0.0.0/8"]
    listed = json.loads(
        cli("braze", "key", "list", "-w", old["workspace"], "--json", "--db", db_url).stdout
    )
    assert [key["allowed_sources"] for key in listed if key["active"]].count(["10.0.0.0/8"]) == 1
    with serving(db_url) as base:
        status, body, _ = post(
            f"{base}/partners/treasuredata/cohorts/users",
            {
                "partner_api_key": "upgrade-partner-key-us",
                "client_secret": old["key"],
                "cohort_id": "germans",
                "cohort_changes": [{"user_ids": ["user01"]}],
            },
        )
        assert (status, body) == (401, {"message": "Invalid client secret"})


def test_previous_sqlite_store_gets_allowlists_that_allow_any_source(
    home: Path, old_store: Any, cli: Cli, facts: dict[str, Any]
) -> None:
    path = old_store("braze.db")
    check_upgrade_to_0006(cli, f"sqlite:///{path}", facts["sqlite"])


@pytest.mark.postgres
def test_previous_postgres_store_gets_allowlists_that_allow_any_source(
    home: Path, old_postgres_store: str, cli: Cli, facts: dict[str, Any]
) -> None:
    check_upgrade_to_0006(cli, old_postgres_store, facts["postgres"])
