"""Catalog revision 0007: the workspaces' shared rate budgets, and activations' ``auto`` threads.

The previous release's catalog (fixtures/databases) is upgraded by today's
real executable. It gains an empty ``rate_budgets`` table, which the next
export fills from its answers' rate-limit headers. Its activation was saved
with 4 threads in an integer column: afterwards the column is text, the
activation still reads as exactly 4 threads (an explicit count keeps its
meaning), and saved again with ``auto``, the catalog keeps ``auto``.
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
from cohortsync.settings import Settings
from support import CliResult

Cli = Callable[..., CliResult]


def columns(catalog: Path, table: str) -> dict[str, str]:
    with sqlite3.connect(catalog) as conn:
        return {row[1]: row[2] for row in conn.execute(f"PRAGMA table_info('{table}')")}


def test_previous_activation_keeps_its_thread_count_and_can_become_auto(
    old_home: Path, cli: Cli, facts: dict[str, Any]
) -> None:
    catalog = old_home / "catalog.db"
    activation = facts["sqlite"]["activation"]
    assert columns(catalog, "audience_activations")["threads"] == "INTEGER"
    assert columns(catalog, "rate_budgets") == {}

    assert json.loads(cli("db", "upgrade", "--json").stdout)["action"] == "upgraded"

    with sqlite3.connect(catalog) as conn:
        (version,) = conn.execute("SELECT version_num FROM cohortsync_catalog_version").fetchone()
        (stored,) = conn.execute(
            "SELECT threads FROM audience_activations WHERE name = ?", (activation,)
        ).fetchone()
        (budgets,) = conn.execute("SELECT count(*) FROM rate_budgets").fetchone()
    assert version >= "0007"
    assert stored == "4"
    assert budgets == 0
    assert columns(catalog, "audience_activations")["threads"] == "VARCHAR"
    assert set(columns(catalog, "rate_budgets")) == {
        "workspace",
        "request_limit",
        "window_s",
        "remaining",
        "reset_at",
        "next_slot",
        "paused_until",
        "updated_at",
    }
    shown = json.loads(cli("activation", "show", activation, "--json").stdout)
    assert shown.get("activation", shown)["threads"] == 4

    settings = Settings()
    engine = open_catalog(settings.catalog_path)
    try:
        saved = audiences.get(engine, SavedActivation, activation)
        assert saved is not None and saved.threads == 4
        audiences.save(engine, SavedActivation, saved.model_copy(update={"threads": "auto"}))
        again = audiences.get(engine, SavedActivation, activation)
    finally:
        engine.dispose()
    assert again is not None and again.threads == "auto"
    with sqlite3.connect(catalog) as conn:
        (stored,) = conn.execute(
            "SELECT threads FROM audience_activations WHERE name = ?", (activation,)
        ).fetchone()
    assert stored == "auto"
    shown = json.loads(cli("activation", "show", activation, "--json").stdout)
    assert shown.get("activation", shown)["threads"] == "auto"
