"""A mirror whose source is PostgreSQL diffs inside it: only entries and exits travel."""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from export.partner_server import PartnerServer
from runs.runs_helpers import export_args, membership, received
from support import run_cli
from warehouse_mirror.conftest import PostgresSource


def users(start: int, stop: int) -> set[tuple[str, str]]:
    return {("user_ids", f"u{i:05}") for i in range(start, stop)}


def mirror(pg: PostgresSource, partner: PartnerServer, *args: str, table: str = "t") -> Any:
    """``cohortsync export --operation mirror --json`` of the source schema's ``table``."""
    command = export_args(partner, "--json", *args)
    command[command.index("--table") + 1] = f"{pg.schema}.{table}"
    return run_cli(*command, expect=None)


def test_second_run_transfers_and_sends_only_the_changes(
    pg: PostgresSource, partner: PartnerServer
) -> None:
    pg.users(0, 3_000)
    first = mirror(pg, partner)
    assert first.returncode == 0, first.stderr
    report = orjson.loads(first.stdout)
    assert report["mirror"]["first_run"] is True
    assert report["mirror"]["diff"]["where"] == "warehouse"
    assert report["mirror"]["diff"]["rows_transferred"] == 3_000
    assert membership(partner) == users(0, 3_000)
    [members_table, exits_table] = pg.snapshot_tables()
    assert pg.snapshot_members() == users(0, 3_000)

    pg.users(30, 3_030)  # 1% churn
    before = received(partner)
    second = mirror(pg, partner)
    assert second.returncode == 0, second.stderr
    report = orjson.loads(second.stdout)
    mirror_report = report["mirror"]
    assert (mirror_report["entries"], mirror_report["exits"]) == (30, 30)
    assert mirror_report["previous_members"] == 3_000
    assert mirror_report["diff"]["rows_transferred"] == 60
    assert report["rows_read"] == 3_000
    assert sum((received(partner) - before).values()) == 60
    assert membership(partner) == users(30, 3_030)
    assert pg.snapshot_members() == users(30, 3_030)
    tables = pg.snapshot_tables()
    assert len(tables) == 2 and members_table not in tables and exits_table not in tables


def test_the_guard_refuses_inside_the_warehouse_and_nothing_changes(
    pg: PostgresSource, partner: PartnerServer
) -> None:
    pg.users(0, 1_000)
    assert mirror(pg, partner).returncode == 0
    tables = pg.snapshot_tables()
    requests = len(partner.requests)
    pg.users(600, 1_000)  # 600 of 1,000 tracked members would leave
    refused = mirror(pg, partner)
    assert refused.returncode == 1, refused.stderr
    assert "would remove 600 of its 1,000 tracked members (60.0%)" in refused.stderr
    assert "--max-remove-pct 60" in refused.stderr
    assert len(partner.requests) == requests  # nothing sent
    assert pg.snapshot_tables() == tables
    assert pg.snapshot_members() == users(0, 1_000)
    allowed = mirror(pg, partner, "--max-remove-pct", "60")
    assert allowed.returncode == 0, allowed.stderr
    assert membership(partner) == users(600, 1_000)


def test_a_dry_run_counts_inside_the_warehouse_and_writes_nothing(
    pg: PostgresSource, partner: PartnerServer, home: Path
) -> None:
    pg.users(0, 500)
    first = mirror(pg, partner, "--dry-run")
    assert first.returncode == 0, first.stderr
    assert orjson.loads(first.stdout)["plan"]["adds"] == 500
    assert not pg.rows(
        f"SELECT 1 FROM pg_namespace WHERE nspname = '{pg.snapshot_schema}'"
    )  # not even the schema
    assert partner.requests == []
    assert mirror(pg, partner).returncode == 0
    tables = pg.snapshot_tables()
    snapshots = sorted(path.name for path in home.glob("snapshots/*/*"))
    pg.users(50, 550)
    dry = mirror(pg, partner, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    plan = orjson.loads(dry.stdout)["plan"]
    assert (plan["adds"], plan["removes"]) == (50, 50)
    assert plan["mirror"]["diff"]["rows_transferred"] == 100
    assert pg.snapshot_tables() == tables
    assert sorted(path.name for path in home.glob("snapshots/*/*")) == snapshots
    assert membership(partner) == users(0, 500)


def test_full_resync_sends_every_member_and_every_known_exit(
    pg: PostgresSource, partner: PartnerServer
) -> None:
    pg.users(0, 300)
    assert mirror(pg, partner).returncode == 0
    pg.users(100, 300)
    assert mirror(pg, partner, "--max-remove-pct", "50").returncode == 0
    before = received(partner)
    done = mirror(pg, partner, "--full-resync")
    assert done.returncode == 0, done.stderr
    sent = received(partner) - before
    assert sent == Counter(
        {(kind, value, False): 1 for kind, value in users(100, 300)}
        | {(kind, value, True): 1 for kind, value in users(0, 100)}
    )
    assert membership(partner) == users(100, 300)


def test_every_identifier_kind_is_tracked_and_an_alias_label_is_kept(
    pg: PostgresSource, partner: PartnerServer
) -> None:
    pg.sql(
        f"CREATE TABLE {pg.schema}.people AS SELECT "
        "CASE WHEN i % 3 = 0 THEN 'u' || i END AS user_ids, "
        "CASE WHEN i % 3 = 1 THEN 'd' || i END AS device_ids, "
        "CASE WHEN i % 3 = 2 THEN 'e' || i || '@x.io' END AS email, i AS n "
        "FROM generate_series(0, 299) i"
    )
    done = mirror(pg, partner, "--alias-column", "email", table="people")
    assert done.returncode == 0, done.stderr
    report = orjson.loads(done.stdout)
    assert report["sent"] == {"user_ids": 100, "device_ids": 100, "alias": 100}
    assert report["ignored_columns"] == ["n"]
    assert report["skipped_by_kind"]["user_ids"]["null"] == 200
    kinds = Counter(kind for kind, _ in pg.snapshot_members())
    assert kinds == {"user_ids": 100, "device_ids": 100, "alias": 100}
    pg.sql(f"ALTER TABLE {pg.schema}.people RENAME COLUMN email TO mail")
    refused = mirror(pg, partner, "--alias-column", "mail", table="people")
    assert refused.returncode == 2, refused.stderr
    assert "tracks aliases labelled 'email'" in refused.stderr


def test_invalid_identifiers_are_named_by_row_or_skipped(
    pg: PostgresSource, partner: PartnerServer
) -> None:
    pg.users(0, 3_000)
    pg.sql(f"UPDATE {pg.schema}.t SET user_ids = repeat('x', 600) WHERE user_ids = 'u02000'")
    pg.sql(f"UPDATE {pg.schema}.t SET user_ids = 'a' || chr(9) WHERE user_ids = 'u02001'")
    command = export_args(partner, "--json")
    query = f"SELECT user_ids FROM {pg.schema}.t ORDER BY user_ids"
    at = command.index("--table")
    command[at : at + 2] = ["--query", query]
    refused = run_cli(*command, expect=None)
    assert refused.returncode == 3, refused.stderr
    assert "2 identifiers of the result Braze would refuse" in refused.stderr
    assert "longer than 512" in refused.stderr or "control character" in refused.stderr
    assert partner.requests == []
    skipped = run_cli(*command, "--skip-invalid", expect=None)
    assert skipped.returncode == 0, skipped.stderr
    report = orjson.loads(skipped.stdout)
    assert report["skipped"]["invalid"] == 2
    assert report["sent"] == {"user_ids": 2_998}
    assert len(pg.snapshot_members()) == 2_998


def test_a_parquet_snapshot_moves_into_the_warehouse_on_the_next_run(
    pg: PostgresSource, partner: PartnerServer, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cohort mirrored by the local diff (or an earlier release) keeps its members."""
    pg.users(0, 1_000)
    monkeypatch.setenv("COHORTSYNC_MIRROR_DIFF", "local")
    local = mirror(pg, partner)
    assert local.returncode == 0, local.stderr
    assert "diff" not in orjson.loads(local.stdout)["mirror"]
    [generation] = home.glob("snapshots/*/gen-*")
    assert (generation / "members.parquet").exists()

    monkeypatch.setenv("COHORTSYNC_MIRROR_DIFF", "auto")
    pg.users(100, 1_100)
    moved = mirror(pg, partner)
    assert moved.returncode == 0, moved.stderr
    report = orjson.loads(moved.stdout)["mirror"]
    assert report["diff"]["where"] == "warehouse"
    assert (report["previous_members"], report["entries"], report["exits"]) == (1_000, 100, 100)
    assert membership(partner) == users(100, 1_100)  # the exits were removed
    assert pg.snapshot_members() == users(100, 1_100)
    [generation] = home.glob("snapshots/*/gen-*")
    meta = orjson.loads((generation / "meta.json").read_bytes())
    assert meta["format_version"] == 2
    assert meta["warehouse"]["schema"] == pg.snapshot_schema
    assert not (generation / "members.parquet").exists()

    monkeypatch.setenv("COHORTSYNC_MIRROR_DIFF", "local")
    refused = mirror(pg, partner)
    assert refused.returncode == 2, refused.stderr
    assert "lives in the warehouse" in refused.stderr
    assert "COHORTSYNC_MIRROR_DIFF=auto" in refused.stderr


def test_a_role_without_rights_on_the_schema_is_told_which_right(
    pg: PostgresSource, partner: PartnerServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    role = f"reader_{uuid.uuid4().hex[:8]}"
    database = pg.url.rsplit("/", 1)[1]
    pg.sql(f"CREATE ROLE {role} LOGIN")
    try:
        pg.sql(f"GRANT USAGE ON SCHEMA {pg.schema} TO {role}")
        pg.users(0, 100)
        pg.sql(f"GRANT SELECT ON {pg.schema}.t TO {role}")
        pg.sql(f"REVOKE CREATE ON DATABASE {database} FROM PUBLIC")
        pg.sql(f"CREATE SCHEMA {pg.snapshot_schema}")
        pg.sql(f"GRANT USAGE ON SCHEMA {pg.snapshot_schema} TO {role}")
        monkeypatch.setenv("COHORTSYNC_WAREHOUSE", pg.url.replace("postgres@", f"{role}@"))
        refused = mirror(pg, partner)
        assert refused.returncode == 2, refused.stderr
        assert f"role '{role}' has no CREATE right on the snapshot schema" in refused.stderr
        assert f'GRANT USAGE, CREATE ON SCHEMA "{pg.snapshot_schema}"' in refused.stderr
        assert "Traceback" not in refused.stderr
        assert partner.requests == []
        pg.sql(f"GRANT CREATE ON SCHEMA {pg.snapshot_schema} TO {role}")
        done = mirror(pg, partner)
        assert done.returncode == 0, done.stderr
        assert membership(partner) == users(0, 100)
    finally:
        pg.sql(f"DROP SCHEMA IF EXISTS {pg.snapshot_schema} CASCADE")
        pg.sql(f"DROP OWNED BY {role}")
        pg.sql(f"DROP ROLE {role}")
