"""Catalog revision 0005: the run history's order and its cohorts read through indexes.

The previous release's catalog (fixtures/databases) is upgraded by today's
real executable; every run stays, the history lists them in the same order,
and SQLite reads that order, and one cohort's runs, through the new indexes
instead of sorting or scanning every run.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

from support import CliResult

Cli = Callable[..., CliResult]

LATEST_FIRST = "SELECT * FROM runs ORDER BY started_at DESC, id DESC LIMIT 50"
ONE_COHORT = "SELECT id FROM runs WHERE cohort_id = 'x' ORDER BY started_at DESC, id DESC LIMIT 50"


def plan(conn: sqlite3.Connection, sql: str) -> str:
    return " | ".join(str(row[-1]) for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}"))


def test_a_previous_catalog_lists_its_runs_through_the_new_indexes(
    old_home: Path, cli: Cli
) -> None:
    catalog = old_home / "catalog.db"
    with sqlite3.connect(catalog) as conn:
        before = [row[0] for row in conn.execute(LATEST_FIRST)]
        assert "TEMP B-TREE" in plan(conn, LATEST_FIRST)  # sorted every run
    assert before

    upgraded = json.loads(cli("db", "upgrade", "--json").stdout)
    assert upgraded["action"] == "upgraded"

    with sqlite3.connect(catalog) as conn:
        (version,) = conn.execute("SELECT version_num FROM cohortsync_catalog_version").fetchone()
        indexes = {row[1] for row in conn.execute("PRAGMA index_list('runs')")}
        assert [row[0] for row in conn.execute(LATEST_FIRST)] == before
        history_plan = plan(conn, LATEST_FIRST)
        assert "ix_runs_started_at_id" in history_plan and "TEMP B-TREE" not in history_plan
        assert "ix_runs_cohort_id_started_at" in plan(conn, ONE_COHORT)
    assert version >= "0005"
    assert {"ix_runs_started_at_id", "ix_runs_cohort_id_started_at"} <= indexes
    listed = json.loads(cli("runs", "list", "--json").stdout)
    assert [run["id"] for run in listed] == before[: len(listed)]
