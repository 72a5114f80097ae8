"""Store revision 0003: the dashboard, the cohorts' history and campaigns on an old store.

The previous release's stores (SQLite, and PostgreSQL restored from its
dump) are upgraded by today's real executable. Every cohort, member, key
and segment stays (checked as for every revision), the new tables start
empty, and the old workspace is usable from the dashboard at once: a user
is created for it, logs in and sees its cohorts, an import after the
upgrade starts the cohort's history, and a campaign targets the old segment.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from tests.upgrade.test_database_upgrades import Cli, check_store_usable, serving

from support import run_cli

NEW_TABLES = (
    "braze_dashboard_users",
    "braze_dashboard_memberships",
    "braze_dashboard_login_links",
    "braze_dashboard_secrets",
    "braze_cohort_changes",
    "braze_campaigns",
    "braze_campaign_steps",
    "braze_campaign_launches",
    "braze_campaign_sends",
)
PASSWORD = "upgraded store password"


def row_counts(db_url: str) -> dict[str, int]:
    engine = sa.create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
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


def check_upgrade_to_0003(cli: Cli, db_url: str, old: dict[str, Any]) -> None:
    assert row_counts(db_url) == {}  # the previous release has none of them
    upgraded = json.loads(cli("braze", "db", "upgrade", "--db", db_url, "--json").stdout)
    assert upgraded["after"] >= "0003"
    assert row_counts(db_url) == dict.fromkeys(NEW_TABLES, 0)
    check_store_usable(cli, db_url, old)  # every cohort, member, key and segment stays

    run_cli(
        "braze", "user", "create", "--email", "ops@upgrade.io", "--workspace", old["workspace"],
        "--password-stdin", "--db", db_url, stdin=PASSWORD + "\n",
    )  # fmt: skip
    with serving(db_url) as base, httpx.Client(base_url=f"{base}/dashboard") as http:
        login = http.post(
            "/login", data={"user": "ops@upgrade.io", "password": PASSWORD, "next": "/"}
        )
        assert login.status_code == 303
        home = http.get(base + login.headers["location"], follow_redirects=True)
        assert home.status_code == 200
        assert f"{len(old['cohorts'])} cohorts" in home.text
    # check_store_usable sent one import after the upgrade: it is the history's first entry.
    assert row_counts(db_url)["braze_cohort_changes"] == 1


def test_previous_sqlite_store_gets_the_dashboard_and_keeps_everything(
    home: Path, old_store: Any, cli: Cli, facts: dict[str, Any]
) -> None:
    path = old_store("braze.db")
    check_upgrade_to_0003(cli, f"sqlite:///{path}", facts["sqlite"])


@pytest.mark.postgres
def test_previous_postgres_store_gets_the_dashboard_and_keeps_everything(
    home: Path, old_postgres_store: str, cli: Cli, facts: dict[str, Any]
) -> None:
    check_upgrade_to_0003(cli, old_postgres_store, facts["postgres"])
