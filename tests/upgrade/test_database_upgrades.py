"""Databases written by earlier releases open, upgraded, with all their data.

The fixtures (see fixtures/databases/README.md) were made by the previous
release's own command line; these tests open them with today's real
executable, on SQLite and on the real PostgreSQL, and check that every saved
object is still there and usable, that a backup was made, that upgrading
twice does nothing, and that a database newer than the code is refused.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from cohortsync import dbschema
from cohortsync.braze.store import STORE_SCHEMA, open_store
from cohortsync.catalog.auths import auth_fields
from cohortsync.catalog.db import catalog_schema, open_catalog
from cohortsync.settings import Settings
from support import served_url_on_stderr

Cli = Callable[..., subprocess.CompletedProcess[str]]
CATALOG_HEAD = dbschema.head(catalog_schema())
STORE_HEAD = dbschema.head(STORE_SCHEMA)


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def stamp(url: str, table: str, revision: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {table} SET version_num = :r"), {"r": revision})
    engine.dispose()


# -- the catalog ---------------------------------------------------------------------------


def test_previous_catalog_keeps_everything(old_home: Path, cli: Cli, facts: dict[str, Any]) -> None:
    old = facts["sqlite"]
    before = json.loads(cli("db", "current", "--json").stdout)
    assert before["versioned"] is False and before["current"] is None
    assert before["head"] == CATALOG_HEAD

    listed = cli("auth", "list")
    assert all(name in listed.stdout for name in old["auths"])
    assert "upgraded the catalog" in listed.stderr and ".bak-unversioned-" in listed.stderr
    backups = list(old_home.glob("catalog.db.bak-unversioned-*"))
    assert len(backups) == 1
    assert sqlite3.connect(backups[0]).execute("SELECT count(*) FROM auths").fetchone() == (2,)

    after = json.loads(cli("db", "current", "--json").stdout)
    assert after["current"] == CATALOG_HEAD and after["up_to_date"] is True
    assert CATALOG_HEAD in cli("db", "current").stdout

    settings = Settings()
    catalog = open_catalog(settings.catalog_path)
    try:
        fields = auth_fields(catalog, settings, "local")
    finally:
        catalog.dispose()
    assert fields is not None and fields["data_import_key"] == old["key"]

    queries = cli("query", "list").stdout
    assert all(name in queries for name in old["queries"])
    assert "0 6 * * *" in cli("query", "show", "germans").stdout
    runs = json.loads(cli("runs", "list", "--json", "--limit", "100").stdout)
    assert sorted(run["id"] for run in runs) == old["runs"]
    assert all(run["status"] == "succeeded" for run in runs)
    assert old["segment"] in cli("segment", "list").stdout
    activation = cli("activation", "show", old["activation"]).stdout
    assert "french_emails" in activation and "0 7 * * 1" in activation
    scheduled = cli("scheduler", "--list", "--json").stdout
    assert "query:germans" in scheduled and "activation:french_emails" in scheduled


def test_catalog_upgrade_twice_is_a_no_op(old_home: Path, cli: Cli) -> None:
    first = json.loads(cli("db", "upgrade", "--json").stdout)
    assert first["action"] == "upgraded" and first["after"] == CATALOG_HEAD
    assert Path(first["backup"]).exists()
    second = json.loads(cli("db", "upgrade", "--json").stdout)
    assert second == {**second, "action": "none", "backup": None}
    assert "nothing to do" in cli("db", "upgrade").stdout
    assert len(list(old_home.glob("catalog.db.bak-*"))) == 1


def test_newer_catalog_is_refused_naming_both_versions(old_home: Path, cli: Cli) -> None:
    cli("db", "upgrade")
    stamp(f"sqlite:///{old_home / 'catalog.db'}", "cohortsync_catalog_version", "0999")
    refused = cli("auth", "list", check=False)
    assert refused.returncode == 2
    assert len(lines(refused.stderr)) == 1
    assert "0999" in refused.stderr and f"its newest is {CATALOG_HEAD}" in refused.stderr
    assert "upgrade cohortsync" in refused.stderr
    assert "0999" in cli("db", "current").stdout


def test_fresh_home_is_created_at_head_without_backup(home: Path, cli: Cli) -> None:
    assert "not created yet" in cli("db", "current").stdout
    assert cli("auth", "list").stderr == ""
    assert json.loads(cli("db", "current", "--json").stdout)["up_to_date"] is True
    assert list(home.glob("*.bak-*")) == []


def test_two_processes_upgrading_at_once_migrate_once(old_home: Path) -> None:
    command = [sys.executable, "-m", "cohortsync", "db", "upgrade", "--json"]
    processes = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outcomes = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        outcomes.append(json.loads(out)["action"])
    assert sorted(outcomes) == ["none", "none", "upgraded"]
    assert len(list(old_home.glob("catalog.db.bak-*"))) == 1


# -- the Braze store -----------------------------------------------------------------------


@contextmanager
def serving(db_url: str) -> Iterator[str]:
    """The real ``cohortsync braze serve`` on ``db_url``, on a port it picks."""
    process = subprocess.Popen(
        [sys.executable, "-m", "cohortsync", "braze", "serve", "--port", "0", "--db", db_url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base, _ = served_url_on_stderr(process)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=15)
        if process.stderr:
            process.stderr.close()


def post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), dict(error.headers)


def cohorts(cli: Cli, db_url: str, workspace: str) -> dict[str, dict[str, Any]]:
    listed = json.loads(
        cli("braze", "cohorts", "list", "--workspace", workspace, "--db", db_url).stdout
    )
    return {cohort["cohort_id"]: cohort for cohort in listed}


def summary(listed: dict[str, dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
    """What must survive of each cohort: name, size, lock, counts by identifier kind."""
    return {
        cohort_id: (c["name"], c["size"], c["locked"], c["identifiers"])
        for cohort_id, c in listed.items()
    }


def check_store_usable(cli: Cli, db_url: str, old: dict[str, Any]) -> None:
    """Cohorts, members, segments and keys of the previous release, through the executable."""
    assert summary(cohorts(cli, db_url, old["workspace"])) == summary(old["cohorts"])
    members = json.loads(
        cli("braze", "cohorts", "members", "germans", "--workspace", old["workspace"],
            "--db", db_url).stdout
    )  # fmt: skip
    assert len(members) == old["cohorts"]["germans"]["size"] == 10
    segments = cli("braze", "segment", "list", "--workspace", old["workspace"], "--db", db_url)
    assert old["braze_segment"] in segments.stdout
    with serving(db_url) as base:
        common = {"partner_api_key": "upgrade-partner-key-us", "cohort_id": "germans"}
        change = {"cohort_changes": [{"user_ids": ["user01"]}]}
        status, body, _ = post(
            f"{base}/partners/treasuredata/cohorts/users",
            {**common, "client_secret": old["key"], **change},
        )
        assert (status, body) == (200, {"message": "success"})
        status, _, _ = post(
            f"{base}/partners/treasuredata/cohorts/users",
            {**common, "client_secret": old["invalidated_key"], **change},
        )
        assert status == 401
    assert cohorts(cli, db_url, old["workspace"])["germans"]["size"] == 11


def test_previous_sqlite_store_keeps_everything(
    home: Path, old_store: Callable[[str], Path], cli: Cli, facts: dict[str, Any]
) -> None:
    path = old_store("braze.db")
    url = f"sqlite:///{path}"
    before = json.loads(cli("braze", "db", "current", "--db", url, "--json").stdout)
    assert before["versioned"] is False
    check_store_usable(cli, url, facts["sqlite"])
    assert len(list(path.parent.glob("braze.db.bak-0002-*"))) == 1
    assert STORE_HEAD in cli("braze", "db", "current", "--db", url).stdout
    again = json.loads(cli("braze", "db", "upgrade", "--db", url, "--json").stdout)
    assert again["action"] == "none"
    assert len(list(path.parent.glob("braze.db.bak-*"))) == 1


def test_two_processes_upgrading_a_sqlite_store_at_once_migrate_once(
    home: Path, old_store: Callable[[str], Path]
) -> None:
    path = old_store("braze-0001.db")
    command = [
        sys.executable, "-m", "cohortsync", "braze", "db", "upgrade", "--db", f"sqlite:///{path}",
        "--json",
    ]  # fmt: skip
    processes = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outcomes = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        outcomes.append(json.loads(out)["action"])
    assert sorted(outcomes) == ["none", "none", "upgraded"]
    assert len(list(path.parent.glob("braze.db.bak-*"))) == 1


def test_first_store_gets_its_counters_back(
    home: Path, old_store: Callable[[str], Path], cli: Cli, facts: dict[str, Any]
) -> None:
    """A store from before the counters moved onto the cohort (it failed with 'no such column')."""
    path = old_store("braze-0001.db")
    url = f"sqlite:///{path}"
    old = facts["first_store"]
    upgraded = json.loads(cli("braze", "db", "upgrade", "--db", url, "--json").stdout)
    assert upgraded["before"] is None and upgraded["after"] == STORE_HEAD
    assert Path(upgraded["backup"]).name.startswith("braze.db.bak-unversioned-")
    listed = cohorts(cli, url, old["workspace"])
    assert listed["early_ids"]["size"] == 10
    assert listed["early_devices"]["size"] == 7
    early = sqlite3.connect(path).execute(
        "SELECT external_id_received, external_id_matched, device_id_received, device_id_matched "
        "FROM braze_cohorts ORDER BY cohort_id"
    )
    assert early.fetchall() == [(0, 0, 7, 7), (11, 10, 0, 0)]
    tables = {row[0] for row in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")}
    assert "braze_cohort_counts" not in tables
    assert "ix_braze_cohort_members_user_id" not in tables
    with serving(url) as base:
        status, body, _ = post(
            f"{base}/partners/treasuredata/cohorts/users",
            {"partner_api_key": "upgrade-partner-key-us", "client_secret": old["key"],
             "cohort_id": "early_ids", "cohort_changes": [{"user_ids": ["user20"]}]},
        )  # fmt: skip
        assert (status, body) == (200, {"message": "success"})


def test_newer_store_stops_the_service_naming_both_versions(
    home: Path, old_store: Callable[[str], Path], cli: Cli
) -> None:
    path = old_store("braze.db")
    url = f"sqlite:///{path}"
    cli("braze", "db", "upgrade", "--db", url)
    stamp(url, "braze_store_version", "0999")
    refused = cli("braze", "serve", "--port", "0", "--db", url, check=False)
    assert refused.returncode == 2
    assert len(lines(refused.stderr)) == 1
    assert refused.stderr.startswith("error: the Braze store")
    assert "0999" in refused.stderr and f"its newest is {STORE_HEAD}" in refused.stderr


def test_schema_error_at_request_time_is_500_not_503(
    home: Path, old_store: Callable[[str], Path], facts: dict[str, Any]
) -> None:
    from cohortsync.braze import messages
    from cohortsync.braze.server import serve_in_background

    path = old_store("braze.db")
    url = f"sqlite:///{path}"
    open_store(url).close()
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE braze_cohorts DROP COLUMN device_id_matched")
    old = facts["sqlite"]
    with serve_in_background(url) as base:
        status, body, headers = post(
            f"{base}/partners/treasuredata/cohorts/users",
            {"partner_api_key": "upgrade-partner-key-us", "client_secret": old["key"],
             "cohort_id": "germans", "cohort_changes": [{"device_ids": ["device01"]}]},
        )  # fmt: skip
    assert status == 500
    assert body["message"] == messages.STORE_SCHEMA_MISMATCH
    assert "Retry-After" not in headers


@pytest.mark.postgres
def test_previous_postgres_store_keeps_everything(
    home: Path, old_postgres_store: str, cli: Cli, facts: dict[str, Any]
) -> None:
    url = old_postgres_store
    before = json.loads(cli("braze", "db", "current", "--db", url, "--json").stdout)
    assert before["versioned"] is False and before["head"] == STORE_HEAD
    check_store_usable(cli, url, facts["postgres"])
    assert json.loads(cli("braze", "db", "current", "--db", url, "--json").stdout)["up_to_date"]
    again = json.loads(cli("braze", "db", "upgrade", "--db", url, "--json").stdout)
    assert again == {**again, "action": "none", "backup": None}
    stamp(url.replace("postgresql://", "postgresql+psycopg://"), "braze_store_version", "0999")
    refused = cli("braze", "cohorts", "list", "--workspace", "upgrade", "--db", url, check=False)
    assert refused.returncode == 2
    assert "0999" in refused.stderr and f"its newest is {STORE_HEAD}" in refused.stderr


@pytest.mark.postgres
def test_postgres_openers_at_once_migrate_once(home: Path, old_postgres_store: str) -> None:
    command = [
        sys.executable, "-m", "cohortsync", "braze", "db", "upgrade", "--db",
        old_postgres_store, "--json",
    ]  # fmt: skip
    processes = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outcomes = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        outcomes.append(json.loads(out)["action"])
    assert sorted(outcomes) == ["none", "none", "upgraded"]


# -- the revisions themselves --------------------------------------------------------------


@pytest.mark.parametrize("schema", [catalog_schema(), STORE_SCHEMA], ids=["catalog", "store"])
def test_revisions_are_numbered_in_a_line(schema: dbschema.Schema) -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(schema.scripts))
    chain = [str(r.revision) for r in reversed(list(script.walk_revisions()))]
    assert chain == dbschema.known_revisions(schema)
    assert chain == [f"{n:04d}" for n in range(1, len(chain) + 1)]
    assert script.get_heads() == [chain[-1]]


@pytest.mark.parametrize("schema", [catalog_schema(), STORE_SCHEMA], ids=["catalog", "store"])
def test_replaying_every_revision_gives_the_schema_of_the_code(
    tmp_path: Path, schema: dbschema.Schema
) -> None:
    """From an empty database, the revisions reach what create_all makes at head."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'replayed.db'}")
    with engine.begin() as conn:
        dbschema._upgrade(schema, conn, None, dbschema.head(schema))
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": schema.version_table})
        differences = compare_metadata(context, schema.metadata)
    engine.dispose()
    assert differences == []
