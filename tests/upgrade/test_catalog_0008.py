"""Catalog revision 0008: alerts of saved queries and activations, and their deliveries.

The previous release's catalog (fixtures/databases) is upgraded by today's
real executable. Its queries and activation gain an empty ``alerts`` (they
alert nobody and run as before), the run history gains an empty
``run_alerts`` table, and every earlier run still shows, with no delivery.
Alerts saved afterwards are kept and read back.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cohortsync.catalog import audiences
from cohortsync.catalog.audiences import SavedActivation
from cohortsync.catalog.db import open_catalog
from cohortsync.definitions import Alerts
from cohortsync.settings import Settings
from support import CliResult

Cli = Callable[..., CliResult]


def columns(catalog: Path, table: str) -> set[str]:
    with sqlite3.connect(catalog) as conn:
        return {row[1] for row in conn.execute(f"PRAGMA table_info('{table}')")}


def test_previous_jobs_have_no_alerts_and_can_get_them(
    old_home: Path, cli: Cli, facts: dict[str, Any]
) -> None:
    catalog = old_home / "catalog.db"
    old = facts["sqlite"]
    assert "alerts" not in columns(catalog, "saved_queries")
    assert "alerts" not in columns(catalog, "audience_activations")
    assert columns(catalog, "run_alerts") == set()

    assert json.loads(cli("db", "upgrade", "--json").stdout)["action"] == "upgraded"

    with sqlite3.connect(catalog) as conn:
        (version,) = conn.execute("SELECT version_num FROM cohortsync_catalog_version").fetchone()
        stored = conn.execute("SELECT alerts FROM saved_queries").fetchall()
        (deliveries,) = conn.execute("SELECT count(*) FROM run_alerts").fetchone()
    assert version >= "0008"
    assert stored == [(None,)] * len(old["queries"])
    assert deliveries == 0
    assert {"run_id", "number", "triggers", "attempts", "status", "http_status", "error"} <= (
        columns(catalog, "run_alerts")
    )
    for name in old["queries"]:
        assert json.loads(cli("query", "show", name, "--json").stdout)["alerts"] is None
    shown = json.loads(cli("activation", "show", old["activation"], "--json").stdout)
    assert shown["alerts"] is None
    for run_id in old["runs"]:
        view = json.loads(cli("runs", "show", run_id, "--json").stdout)
        assert view["id"] == run_id and view["alerts"] == []

    engine = open_catalog(Settings().catalog_path)
    try:
        saved = audiences.get(engine, SavedActivation, old["activation"])
        assert saved is not None
        alerts = Alerts(webhook="https://hooks.example.com/x", removals=5, hold=True)
        audiences.save(engine, SavedActivation, saved.model_copy(update={"alerts": alerts}))
        again = audiences.get(engine, SavedActivation, old["activation"])
    finally:
        engine.dispose()
    assert again is not None and again.alerts == alerts
    assert again.model_copy(update={"alerts": None}).model_dump() == saved.model_dump()
