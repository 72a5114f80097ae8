"""Catalog revision 0006: each saved authentication has a destination type.

The previous release's catalog (fixtures/databases) is upgraded by today's
real executable. Its two authentications held data import keys, so both are
``partner-cohort`` afterwards, keep their keys, and still build the partner
destination they built before; a ``rest-attribute`` authentication saved
beside them keeps its own type. The activation gets the default attribute
settings (array mode, no attribute named), which partner cohorts ignore, and
a saved query re-saved with the settings it had is unchanged.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cohortsync.catalog.auths import auth_fields, upsert_auth
from cohortsync.catalog.db import open_catalog
from cohortsync.definitions import Authentication
from cohortsync.export.destinations import destination_for_auth
from cohortsync.settings import Settings
from support import CliResult

Cli = Callable[..., CliResult]


def test_previous_authentications_become_partner_cohort_ones(
    old_home: Path, cli: Cli, facts: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog_file = old_home / "catalog.db"
    with sqlite3.connect(catalog_file) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info('auths')")}
    assert "type" not in columns

    assert json.loads(cli("db", "upgrade", "--json").stdout)["action"] == "upgraded"

    with sqlite3.connect(catalog_file) as conn:
        (version,) = conn.execute("SELECT version_num FROM cohortsync_catalog_version").fetchone()
        types = dict(conn.execute("SELECT name, type FROM auths").fetchall())
        attribute = conn.execute(
            "SELECT attribute_mode, attribute FROM audience_activations WHERE name = ?",
            (facts["sqlite"]["activation"],),
        ).fetchone()
    assert version >= "0006"
    assert attribute == ("array", None)
    assert types == {name: "partner-cohort" for name in facts["sqlite"]["auths"]}
    listed = json.loads(cli("auth", "list", "--json").stdout)
    assert {entry["name"]: entry["type"] for entry in listed} == types
    assert all(entry["data_import_key"].startswith("****") for entry in listed)
    assert "partner-cohort" in cli("auth", "show", "local").stdout

    monkeypatch.setenv("COHORTSYNC_PARTNER_API_KEY", "pk-upgrade")
    settings = Settings()
    destination = destination_for_auth("local", settings)
    assert destination.type == "partner-cohort"
    assert destination.data_import_key == facts["sqlite"]["key"]
    assert destination.partner == "treasuredata" and destination.partner_api_key == "pk-upgrade"

    catalog = open_catalog(settings.catalog_path)
    try:
        rest = Authentication(
            name="rest",
            endpoint="https://rest.iad-01.braze.com",
            data_import_key="rest-key-0000",
            type="rest-attribute",
        )
        assert upsert_auth(catalog, settings, rest) is True
        fields = auth_fields(catalog, settings, "rest")
        local = auth_fields(catalog, settings, "local")
    finally:
        catalog.dispose()
    assert fields is not None and fields["type"] == "rest-attribute"
    assert local is not None and local["type"] == "partner-cohort"


def test_a_previous_query_saved_again_as_it_was_is_unchanged(old_home: Path, cli: Cli) -> None:
    from cohortsync import queries

    assert json.loads(cli("db", "upgrade", "--json").stdout)["action"] == "upgraded"
    query = queries.get_query("germans")
    assert query.export is not None and query.export.attribute_mode == "array"
    assert queries.save(query) == "unchanged"
