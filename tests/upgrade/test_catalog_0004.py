"""Catalog revision 0004: the console's accounts, on a home of the previous release.

The previous release's catalog (fixtures/databases) is upgraded by today's
real executable; the console then starts on that home, creates its account,
lets its user log in and shows the authentications the old release saved.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from cohortsync.console.serving import serve_in_background
from cohortsync.settings import Settings
from support import CliResult

Cli = Callable[..., CliResult]


def test_a_previous_home_gets_the_console_and_keeps_its_authentications(
    old_home: Path, cli: Cli, facts: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    upgraded = json.loads(cli("db", "upgrade", "--json").stdout)
    assert upgraded["action"] == "upgraded"
    with sqlite3.connect(old_home / "catalog.db") as conn:
        assert conn.execute("SELECT count(*) FROM console_accounts").fetchone() == (0,)
        (version,) = conn.execute("SELECT version_num FROM cohortsync_catalog_version").fetchone()
    assert version >= "0004"

    monkeypatch.setenv("COHORTSYNC_CONSOLE_PASSWORD", "an upgraded password")
    with serve_in_background(Settings()) as url, httpx.Client(base_url=url) as client:
        login = client.post("/login", data={"user": "admin", "password": "an upgraded password"})
        assert login.status_code == 303 and login.headers["location"] == "/"
        page = client.get("/hub/braze")
    assert page.status_code == 200
    assert all(name in page.text for name in facts["sqlite"]["auths"])
    assert facts["sqlite"]["key"] not in page.text
    with sqlite3.connect(old_home / "catalog.db") as conn:
        rows = conn.execute("SELECT name, password_hash FROM console_accounts").fetchall()
    assert [name for name, _ in rows] == ["admin"]
    assert rows[0][1].startswith("$argon2id$")
