"""A scheduled saved query of a rest-attribute authentication, run by ``cohortsync scheduler``.

Everything is real: the DuckDB warehouse, the catalog, ``cohortsync auth
create --type rest-attribute`` (its key checked against the sandbox),
``cohortsync scheduler --once`` in its own process, and the sandbox's
``/users/track``. The query mirrors its result into the ``cohorts`` array
attribute twice, the result changing in between: after each run the
profiles holding ``gold`` in that attribute are exactly the result, and
``runs show --json`` reports the run with its match report.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
import sqlalchemy as sa

from cohortsync.braze.store.tables import users
from cohortsync.catalog.db import open_catalog
from cohortsync.catalog.schedules import restore_slot
from cohortsync.queries import QueryExport, save_query
from cohortsync.settings import Settings
from support import run_cli

AUTH = "braze-rest"
JOB = "query:gold"
GOLD = "SELECT external_id AS user_ids FROM customers WHERE tier = 'gold'"


def customers(home: Path, gold: range) -> None:
    """c1..c30, gold when in ``gold``; the sandbox knows c1..c25 only (5 match nobody)."""
    with duckdb.connect(str(home / "warehouse.duckdb")) as connection:
        connection.execute(
            "CREATE OR REPLACE TABLE customers AS SELECT 'c' || i AS external_id, "
            f"CASE WHEN i BETWEEN {gold.start} AND {gold.stop - 1} THEN 'gold' ELSE 'silver' END "
            "AS tier FROM range(1, 31) t(i)"
        )


def in_attribute(sandbox: Any) -> list[str]:
    """External ids of the sandbox profiles whose ``cohorts`` attribute holds ``gold``."""
    with sandbox.store.read() as conn:
        rows = conn.execute(
            sa.select(users.c.external_id, users.c.attributes).where(
                users.c.workspace_id == sandbox.workspace
            )
        ).all()
    holding = []
    for external_id, attributes in rows:
        if "gold" in (json.loads(attributes) if attributes else {}).get("cohorts", []):
            holding.append(external_id)
    return sorted(holding)


def known(gold: range) -> list[str]:
    return sorted(f"c{i}" for i in gold if i <= 25)


@pytest.fixture
def sandbox(home: Path, braze_sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The sandbox with c1..c25, and the rest-attribute authentication saved through the CLI."""
    braze_sandbox.load_users({"external_id": f"c{i}"} for i in range(1, 26))
    monkeypatch.setenv("COHORTSYNC_REST_API_KEY", braze_sandbox.rest_api_key)
    run_cli(
        "auth", "create", AUTH, "--type", "rest-attribute", "--endpoint", braze_sandbox.base_url
    )
    monkeypatch.delenv("COHORTSYNC_REST_API_KEY")  # the scheduled run reads the saved key
    return braze_sandbox


def run_due_jobs() -> dict[str, Any]:
    """``cohortsync scheduler --once --json``: the one outcome line of the gold query."""
    done = run_cli("scheduler", "--once", "--json", expect=None)
    assert done.returncode == 0, done.stderr
    [line] = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert (line["job"], line["status"]) == (JOB, "succeeded"), line
    return dict(line)


def make_due_again() -> None:
    """Hand the consumed slot back, as after an interrupted run: the job is due at once."""
    catalog = open_catalog(Settings().catalog_path)
    try:
        restore_slot(catalog, JOB, None)
    finally:
        catalog.dispose()


def test_a_scheduled_mirror_keeps_the_attribute_equal_to_the_result(
    home: Path, sandbox: Any
) -> None:
    first, second = range(1, 16), range(6, 31)  # 5 leave, 15 enter (5 of them unknown)
    customers(home, first)
    save_query(
        "gold",
        GOLD,
        export=QueryExport(auth=AUTH, cohort_id="gold", operation="mirror", threads=2),
        schedule="0 * * * *",
        now=datetime.now(UTC) - timedelta(days=1),
    )

    ran = run_due_jobs()
    assert in_attribute(sandbox) == known(first)
    shown = run_cli("runs", "show", ran["run_id"], "--json").json()
    assert shown["status"] == "succeeded"
    assert shown["report"]["destination"] == "rest-attribute"
    assert shown["report"]["sent"] == {"user_ids": 15}
    match = shown["report"]["match"]
    assert (match["objects"], match["errors"], match["processed"]) == (15, 0, 15)

    assert run_cli("scheduler", "--once", "--json").stdout == ""  # nothing due until next slot
    customers(home, second)
    make_due_again()
    ran_again = run_due_jobs()
    assert ran_again["run_id"] != ran["run_id"]
    assert in_attribute(sandbox) == known(second)
    shown = run_cli("runs", "show", ran_again["run_id"], "--json").json()
    assert shown["status"] == "succeeded"
    assert shown["report"]["mirror"]["adds"] == 15
    assert shown["report"]["mirror"]["removes"] == 5
    match = shown["report"]["match"]
    assert (match["objects"], match["errors"], match["processed"]) == (20, 5, 15)
    assert {item["identifier"] for item in match["first_errors"]} == {
        f"c{i}" for i in range(26, 31)
    }
