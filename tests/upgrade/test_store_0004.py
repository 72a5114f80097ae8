"""Store revision 0004: profile fields apart from custom attributes, events and purchases.

The previous release's stores (SQLite, and PostgreSQL restored from its
dump) are upgraded by today's real executable. Before the upgrade, a user's
attributes are set as that release's ``/users/track`` stored them: profile
fields (``first_name``, ``email``) mixed with custom attributes in one JSON
object. After it, every cohort, member, key and segment stays (checked as for
every revision), the profile fields have moved out of the custom attributes
(so ``/users/export/ids`` shows them at the top level and finds the user by
email), the new tables start empty, and events are recorded at once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from tests.upgrade.test_database_upgrades import Cli, check_store_usable, serving

NEW_TABLES = ("braze_user_events", "braze_user_purchases")
OLD_ATTRIBUTES = {"first_name": "Olga", "email": "olga@old.io", "gender": "F", "plan": "gold"}


def engine_of(db_url: str) -> sa.Engine:
    return sa.create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))


def set_old_attributes(db_url: str, external_id: str) -> None:
    """The attributes of one user as the previous release's ``/users/track`` kept them."""
    engine = engine_of(db_url)
    try:
        with engine.begin() as conn:
            updated = conn.execute(
                sa.text("UPDATE braze_users SET attributes = :a WHERE external_id = :e"),
                {"a": json.dumps(OLD_ATTRIBUTES), "e": external_id},
            )
            assert updated.rowcount == 1
    finally:
        engine.dispose()


def new_tables_rows(db_url: str) -> dict[str, int]:
    engine = engine_of(db_url)
    try:
        with engine.connect() as conn:
            present = set(sa.inspect(conn).get_table_names())
            return {
                table: int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())
                for table in NEW_TABLES
                if table in present
            }
    finally:
        engine.dispose()


def check_upgrade_to_0004(cli: Cli, db_url: str, old: dict[str, Any]) -> None:
    set_old_attributes(db_url, "user01")
    assert new_tables_rows(db_url) == {}
    upgraded = json.loads(cli("braze", "db", "upgrade", "--db", db_url, "--json").stdout)
    assert upgraded["after"] >= "0004"
    assert new_tables_rows(db_url) == dict.fromkeys(NEW_TABLES, 0)
    check_store_usable(cli, db_url, old)

    headers = {"Authorization": f"Bearer {old['rest_api_key']}"}
    with serving(db_url) as base, httpx.Client(base_url=base, headers=headers) as http:
        exported = http.post("/users/export/ids", json={"external_ids": ["user01"]})
        assert exported.status_code == 200, exported.text
        [user] = exported.json()["users"]
        assert (user["first_name"], user["email"], user["gender"]) == ("Olga", "olga@old.io", "F")
        assert user["custom_attributes"] == {"plan": "gold"}
        by_email = http.post("/users/export/ids", json={"email_address": "olga@old.io"})
        assert by_email.json()["users"] == [user]
        tracked = http.post(
            "/users/track",
            json={"events": [{"external_id": "user01", "name": "upgraded", "time": "2026-12-01"}]},
        )
        assert tracked.status_code == 200, tracked.text
    assert new_tables_rows(db_url)["braze_user_events"] == 1


def test_previous_sqlite_store_gets_profile_fields_and_events(
    home: Path, old_store: Any, cli: Cli, facts: dict[str, Any]
) -> None:
    path = old_store("braze.db")
    check_upgrade_to_0004(cli, f"sqlite:///{path}", facts["sqlite"])


@pytest.mark.postgres
def test_previous_postgres_store_gets_profile_fields_and_events(
    home: Path, old_postgres_store: str, cli: Cli, facts: dict[str, Any]
) -> None:
    check_upgrade_to_0004(cli, old_postgres_store, facts["postgres"])
