"""Catalog revision 0002: the run history's cohort keys recomputed with the one cohort identity.

The previous release keyed a run by its endpoint with the trailing slash
dropped, and nothing else: two spellings of one endpoint had two run
histories. Runs as that release stored them are added to a copy of its frozen
catalog, which is then upgraded by today's executable.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

from cohortsync.catalog import runs as history
from cohortsync.catalog.db import catalog_schema, open_catalog
from cohortsync.dbschema import head
from cohortsync.identity import CohortKey

Cli = Callable[..., subprocess.CompletedProcess[str]]
FINGERPRINT = "0123456789abcdef"
SPELLINGS = {
    "20261130T100000-aaaa": "https://REST.iad-01.braze.com/",
    "20261130T110000-bbbb": "https://rest.iad-01.braze.com:443",
    "20261130T120000-cccc": "https://rest.iad-01.braze.com",
}


def previous_release_key(endpoint: str) -> str:
    """How the previous release computed ``runs.cohort_key`` (catalog/runs.py)."""
    return f"{endpoint.rstrip('/')}|treasuredata|vip|{FINGERPRINT}"


def add_previous_release_runs(catalog: Path) -> None:
    with sqlite3.connect(catalog) as conn:
        for run_id, endpoint in SPELLINGS.items():
            conn.execute(
                "INSERT INTO runs (id, job, cohort_key, endpoint, partner, cohort_id, key_hash,"
                " operation, status, started_at) VALUES (?, '{}', ?, ?, 'treasuredata', 'vip',"
                " ?, 'mirror', 'failed', '2026-11-30 10:00:00.000000')",
                (run_id, previous_release_key(endpoint), endpoint, FINGERPRINT),
            )


def stored_keys(catalog: Path) -> dict[str, str]:
    with sqlite3.connect(catalog) as conn:
        return dict(conn.execute("SELECT id, cohort_key FROM runs").fetchall())


def test_upgrade_recomputes_the_cohort_keys_of_stored_runs(old_home: Path, cli: Cli) -> None:
    catalog = old_home / "catalog.db"
    add_previous_release_runs(catalog)
    before = stored_keys(catalog)
    assert len({before[run_id] for run_id in SPELLINGS}) == 3  # three histories of one cohort

    upgraded = json.loads(cli("db", "upgrade", "--json").stdout)
    assert upgraded["action"] == "upgraded"
    assert upgraded["after"] == head(catalog_schema()) >= "0002"

    after = stored_keys(catalog)
    one = CohortKey.of("https://rest.iad-01.braze.com", FINGERPRINT, "treasuredata", "vip")
    assert {after[run_id] for run_id in SPELLINGS} == {one.history_key}
    # The frozen runs were already spelled canonically: their keys are kept as they were.
    assert {k: v for k, v in after.items() if k not in SPELLINGS} == {
        k: v for k, v in before.items() if k not in SPELLINGS
    }
    # The backup keeps the keys as the previous release wrote them.
    [backup] = old_home.glob("catalog.db.bak-*")
    assert stored_keys(backup) == before

    engine = open_catalog(catalog)
    try:
        found = history.list_runs(engine, cohort_key=one.history_key, limit=10)
    finally:
        engine.dispose()
    assert sorted(run.id for run in found) == sorted(SPELLINGS)
    listed = json.loads(cli("runs", "list", "--cohort", "vip", "--json").stdout)
    assert sorted(run["id"] for run in listed) == sorted(SPELLINGS)

    again = json.loads(cli("db", "upgrade", "--json").stdout)
    assert again["action"] == "none" and stored_keys(catalog) == after
