"""Loading user profiles: extend, never duplicate, refuse bad lines by number."""

from __future__ import annotations

from typing import Any

import pytest

from cohortsync.braze import admin
from cohortsync.braze.profiles import bulk_load
from cohortsync.braze.profiles.listings import describe_users
from cohortsync.braze.sandbox import Sandbox
from cohortsync.errors import ConfigError

from .support import email


def everyone(sandbox: Sandbox) -> list[dict[str, Any]]:
    import sqlalchemy as sa

    from cohortsync.braze.store import users

    with sandbox.store.read() as conn:
        query = sa.select(users.c.id).where(users.c.workspace_id == sandbox.workspace)
        return describe_users(conn, query)


def test_lines_extend_existing_users_across_chunks(sandbox: Sandbox) -> None:
    rows = [
        {"external_id": "u1", "aliases": [email("a@x.io")]},
        {"external_id": "u1", "device_ids": ["d-u1"]},  # same user, later line
        {"aliases": [email("anon@x.io")]},
        {"aliases": [email("anon@x.io")], "device_ids": ["tablet"]},  # found by alias
        {"device_ids": ["tablet", "phone"]},  # found by device
        {"external_id": "u2", "aliases": [email("a@x.io")]},  # alias taken: stays with u1
    ]
    report = bulk_load.load_users(sandbox.store, sandbox.workspace, rows, chunk_size=2)
    assert report.as_dict() == {
        "lines": 6,
        "users_created": 3,
        "users_updated": 3,
        "lines_without_identifiers": 0,
    }
    assert everyone(sandbox) == [
        {"external_id": "u1", "aliases": [email("a@x.io")], "device_ids": ["d-u1"]},
        {"external_id": "u2", "aliases": [], "device_ids": []},
        {"external_id": None, "aliases": [email("anon@x.io")], "device_ids": ["phone", "tablet"]},
    ]
    again = bulk_load.load_users(sandbox.store, sandbox.workspace, rows, chunk_size=4)
    assert again.users_created == 0
    assert len(everyone(sandbox)) == 3


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("[1]", "not a JSON object"),
        ({"external_id": ""}, "external_id"),
        ({"external_id": 7}, "external_id"),
        ({"aliases": {"alias_label": "email"}}, "aliases is not an array"),
        ({"aliases": [{"alias_label": "email"}]}, "alias"),
        ({"device_ids": "d1"}, "device_ids"),
        ({"device_ids": [""]}, "device_ids"),
    ],
    ids=repr,
)
def test_bad_lines_are_refused_by_number(sandbox: Sandbox, line: Any, fragment: str) -> None:
    with pytest.raises(ConfigError, match=f"line 2: .*{fragment}"):
        admin.load_users(
            sandbox.store, workspace=sandbox.workspace, rows=[{"external_id": "ok"}, line]
        )


def test_ndjson_load_names_the_broken_line(sandbox: Sandbox) -> None:
    """Lines are numbered as in the file (blank ones counted); the good line is not loaded."""
    lines = [b'{"external_id": "u1"}\n', b"\n", b"{oops\n"]
    with pytest.raises(ConfigError, match=r"users\.ndjson line 3: not valid JSON"):
        admin.load_users_file(
            sandbox.store, workspace=sandbox.workspace, lines=lines, source="users.ndjson"
        )
    assert everyone(sandbox) == []


def test_unknown_workspace_is_a_config_error(sandbox: Sandbox) -> None:
    with pytest.raises(ConfigError, match="no workspace"):
        admin.load_users(sandbox.store, workspace="nope", rows=[])


def test_the_shared_braze_sandbox_fixture(braze_sandbox: Sandbox) -> None:
    """The fixture other suites use: served, provisioned, with the admin helpers."""
    import requests

    braze_sandbox.load_users([{"external_id": "TDCohort1"}])
    response = requests.post(
        f"{braze_sandbox.base_url}/partners/treasuredata/cohorts/users",
        json={
            "partner_api_key": braze_sandbox.partner_api_key,
            "client_secret": braze_sandbox.data_import_key,
            "cohort_id": "demo",
            "cohort_changes": [{"user_ids": ["TDCohort1"]}],
        },
        timeout=10,
    )
    assert response.status_code == 200
    assert braze_sandbox.members("demo") == [
        {"external_id": "TDCohort1", "aliases": [], "device_ids": []}
    ]
    assert braze_sandbox.db_url.startswith("sqlite:///")
    assert isinstance(braze_sandbox.workspace, int)
