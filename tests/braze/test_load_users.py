"""Loading user profiles: extend, never duplicate, refuse bad lines by number."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cohortsync.braze import admin
from cohortsync.braze.profiles import bulk_load
from cohortsync.braze.profiles.listings import describe_users
from cohortsync.braze.sandbox import Sandbox
from cohortsync.errors import ConfigError
from support import run_cli

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


def test_a_line_giving_a_user_two_aliases_of_one_label_is_refused(sandbox: Sandbox) -> None:
    rows = [
        {"external_id": "ok", "aliases": [email("ok@x.io")]},
        {"external_id": "u1", "aliases": [email("a@x.io"), email("b@x.io")]},
    ]
    with pytest.raises(
        ConfigError,
        match=r"line 2: gives the user 'u1' two aliases labelled 'email' "
        r"\('a@x.io' and 'b@x.io'\).*nothing was loaded",
    ):
        bulk_load.load_users(sandbox.store, sandbox.workspace, rows)
    assert everyone(sandbox) == []


@pytest.mark.parametrize("chunk_size", [1, 10], ids=["across chunks", "in one chunk"])
def test_a_line_giving_a_second_alias_of_a_label_the_user_got_earlier_is_refused(
    sandbox: Sandbox, chunk_size: int
) -> None:
    rows = [
        {"external_id": "u1", "aliases": [email("a@x.io")]},
        {"external_id": "u2", "aliases": [email("u2@x.io")]},
        {
            "external_id": "u1",
            "aliases": [email("a@x.io"), {"alias_label": "crm", "alias_name": "7"}],
        },
        {"external_id": "u1", "aliases": [email("b@x.io")]},
    ]
    with pytest.raises(
        ConfigError,
        match=r"line 4: gives the user 'u1' a second alias labelled 'email' \('b@x.io'\) "
        r"beside 'a@x.io'.*nothing was loaded",
    ):
        bulk_load.load_users(sandbox.store, sandbox.workspace, rows, chunk_size=chunk_size)
    assert everyone(sandbox) == []


def test_a_label_the_user_holds_in_the_store_under_another_name_is_refused(
    sandbox: Sandbox,
) -> None:
    bulk_load.load_users(
        sandbox.store, sandbox.workspace, [{"aliases": [email("anon@x.io")], "device_ids": ["t"]}]
    )
    before = everyone(sandbox)
    rows = [
        {"external_id": "new", "aliases": [email("new@x.io")]},
        {"device_ids": ["t"], "aliases": [email("other@x.io")]},  # the anonymous user, by device
    ]
    with pytest.raises(
        ConfigError, match=r"line 2: .*alias 'email'='other@x.io'.*beside 'anon@x.io'"
    ):
        bulk_load.load_users(sandbox.store, sandbox.workspace, rows)
    assert everyone(sandbox) == before


def test_an_alias_held_by_another_user_is_no_second_alias(sandbox: Sandbox) -> None:
    """The alias stays with its holder, so it gives the line's user nothing to refuse."""
    rows = [
        {"external_id": "u1", "aliases": [email("a@x.io")]},
        {"external_id": "u2", "aliases": [email("b@x.io")]},
        {"external_id": "u2", "aliases": [email("a@x.io")]},
    ]
    report = bulk_load.load_users(sandbox.store, sandbox.workspace, rows)
    assert (report.lines, report.failed) == (3, 0)
    assert [u["aliases"] for u in everyone(sandbox)] == [[email("a@x.io")], [email("b@x.io")]]


def test_continue_on_error_leaves_out_the_second_alias_lines_only(sandbox: Sandbox) -> None:
    rows = [
        {"external_id": "u1", "aliases": [email("a@x.io")]},
        {"external_id": "u1", "aliases": [email("b@x.io")], "device_ids": ["d-b"]},
        {"aliases": [email("c@x.io"), email("d@x.io")]},
        {"external_id": "u2", "aliases": [email("b@x.io")]},
    ]
    report = bulk_load.load_numbered(
        sandbox.store, sandbox.workspace, enumerate(rows, start=1), continue_on_error=True
    )
    assert (report.lines, report.failed, sorted(f.line for f in report.failures)) == (2, 2, [2, 3])
    assert everyone(sandbox) == [
        {"external_id": "u1", "aliases": [email("a@x.io")], "device_ids": []},
        {"external_id": "u2", "aliases": [email("b@x.io")], "device_ids": []},
    ]


def test_users_load_command_refuses_a_second_alias_in_one_line_with_exit_2(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """The real command: one line naming the file, the line and the user; nothing loaded."""
    path = tmp_path / "users.ndjson"
    path.write_text(
        json.dumps({"external_id": "fine"})
        + "\n"
        + json.dumps({"external_id": "u9", "aliases": [email("a@x.io"), email("b@x.io")]})
        + "\n"
    )
    done = run_cli(
        "braze", "users", "load", str(path), "--workspace", str(sandbox.workspace),
        "--db", sandbox.db_url, expect=2,
    )  # fmt: skip
    [first, *_] = done.stderr.splitlines()
    assert first.startswith(f"error: {path} line 2: gives the user 'u9' two aliases labelled")
    assert "nothing was loaded" in first and "Traceback" not in done.stderr
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
