"""Store revision 0005: one alias per label per user, kept by the store.

The previous release's stores (SQLite, and PostgreSQL restored from its
dump) are brought to revision 0004, where nothing stopped a user holding two
aliases of one label, and given such a user. Today's real executable then
upgrades them: the user keeps the alias of the label with the lowest name
(the revision's rule) and loses the other, every user, cohort, member, key
and segment stays, and the store refuses a new second alias of the label.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from tests.upgrade.test_database_upgrades import STORE_HEAD, Cli, check_store_usable

from cohortsync import dbschema
from cohortsync.braze.store import STORE_SCHEMA

SECOND_NAME = "zz-second@old.io"  # sorts after every alias name of the fixtures


def engine_of(db_url: str) -> sa.Engine:
    return sa.create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))


def aliases_of(conn: sa.Connection, external_id: str) -> list[tuple[str, str]]:
    rows = conn.execute(
        sa.text(
            "SELECT a.alias_label, a.alias_name FROM braze_user_aliases a "
            "JOIN braze_users u ON u.id = a.user_id WHERE u.external_id = :e "
            "ORDER BY a.alias_label, a.alias_name"
        ),
        {"e": external_id},
    )
    return [(label, name) for label, name in rows]


def counts(conn: sa.Connection) -> dict[str, int]:
    tables = ("braze_users", "braze_user_devices", "braze_cohort_members", "braze_user_aliases")
    return {t: int(conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()) for t in tables}


def store_at_0004_with_two_emails(db_url: str, external_id: str) -> dict[str, Any]:
    """Bring the old store to 0004 and give one user a second ``email`` alias."""
    engine = engine_of(db_url)
    try:
        with engine.begin() as conn:
            state = dbschema.status(conn, STORE_SCHEMA)
            before = state.current if state.versioned else STORE_SCHEMA.recognise(conn)
            dbschema._upgrade(STORE_SCHEMA, conn, before, "0004")
        with engine.begin() as conn:
            [(label, first_name)] = aliases_of(conn, external_id)
            assert label == "email" and first_name < SECOND_NAME
            conn.execute(
                sa.text(
                    "INSERT INTO braze_user_aliases (workspace_id, alias_name, alias_label, "
                    "user_id) SELECT workspace_id, :n, 'email', id FROM braze_users "
                    "WHERE external_id = :e"
                ),
                {"n": SECOND_NAME, "e": external_id},
            )
            assert aliases_of(conn, external_id) == [("email", first_name), ("email", SECOND_NAME)]
            version = conn.execute(sa.text("SELECT version_num FROM braze_store_version"))
            assert version.scalar_one() == "0004"
            return {"first": first_name, "counts": counts(conn)}
    finally:
        engine.dispose()


def check_upgrade_to_0005(cli: Cli, db_url: str, old: dict[str, Any]) -> None:
    before = store_at_0004_with_two_emails(db_url, "user01")
    upgraded = json.loads(cli("braze", "db", "upgrade", "--db", db_url, "--json").stdout)
    assert (upgraded["before"], upgraded["after"]) == ("0004", STORE_HEAD)
    assert STORE_HEAD >= "0005"
    engine = engine_of(db_url)
    try:
        with engine.connect() as conn:
            assert aliases_of(conn, "user01") == [("email", before["first"])]
            expected = {**before["counts"]}
            expected["braze_user_aliases"] -= 1
            assert counts(conn) == expected
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO braze_user_aliases (workspace_id, alias_name, alias_label, "
                    "user_id) SELECT workspace_id, 'again@old.io', 'email', id "
                    "FROM braze_users WHERE external_id = 'user01'"
                )
            )
        with engine.connect() as conn:
            assert aliases_of(conn, "user01") == [("email", before["first"])]
    finally:
        engine.dispose()
    check_store_usable(cli, db_url, old)


def test_previous_sqlite_store_keeps_one_alias_per_label(
    home: Path, old_store: Any, cli: Cli, facts: dict[str, Any]
) -> None:
    path = old_store("braze.db")
    check_upgrade_to_0005(cli, f"sqlite:///{path}", facts["sqlite"])


@pytest.mark.postgres
def test_previous_postgres_store_keeps_one_alias_per_label(
    home: Path, old_postgres_store: str, cli: Cli, facts: dict[str, Any]
) -> None:
    check_upgrade_to_0005(cli, old_postgres_store, facts["postgres"])
