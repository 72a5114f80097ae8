"""A mirror whose source is PostgreSQL diffs inside it: only entries and exits travel."""

from __future__ import annotations

from typing import Any

import orjson

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
