"""Keys rotated in a running service: a workspace's REST API key, a partner's API key."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from cohortsync.braze import admin
from cohortsync.braze.sandbox import Sandbox
from support import run_cli


def track(sandbox: Sandbox, key: str) -> httpx.Response:
    return httpx.post(
        f"{sandbox.base_url}/users/track",
        json={"attributes": [{"external_id": "u1", "plan": "gold"}]},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def accepted(answer: httpx.Response) -> bool:
    return answer.status_code in (200, 201) and answer.json()["message"] == "success"


def test_the_old_key_is_refused_at_once_and_the_new_one_keeps_the_allowlist(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    old = sandbox.rest_api_key
    admin.set_key_sources(sandbox.store, old, ["127.0.0.1"])
    assert accepted(track(sandbox, old))

    done = run_cli(
        "braze", "workspace", "rotate-rest-key", sandbox.workspace_name, "--db", sandbox.db_url,
        home=tmp_path,
    )  # fmt: skip
    rotated = json.loads(done.stdout)
    new = rotated["rest_api_key"]
    assert rotated["name"] == sandbox.workspace_name and new != old
    assert track(sandbox, old).status_code == 401  # the running service, at once
    assert accepted(track(sandbox, new))
    [rest_key] = [
        key
        for key in admin.list_workspace_keys(sandbox.store, workspace=sandbox.workspace)
        if key["type"] == "rest_api_key"
    ]
    assert rest_key["allowed_sources"] == ["127.0.0.1/32"]

    unknown = run_cli(
        "braze", "workspace", "rotate-rest-key", "nowhere", "--db", sandbox.db_url,
        home=tmp_path, expect=2,
    )  # fmt: skip
    assert unknown.stderr.startswith("error: no workspace 'nowhere' in this store")


def define(sandbox: Sandbox, partner_api_key: str, cohort_id: str) -> httpx.Response:
    return httpx.post(
        f"{sandbox.base_url}/partners/{sandbox.partner}/cohorts",
        json={
            "partner_api_key": partner_api_key,
            "client_secret": sandbox.data_import_key,
            "cohort_id": cohort_id,
            "name": cohort_id,
            "created_at": "2021-01-21T19:20:30+05:00",
        },
        timeout=30,
    )


def test_a_partner_api_key_rotates_without_a_gap(sandbox: Sandbox, tmp_path: Path) -> None:
    """Add the new key, move to it, remove the old one: both work in between."""
    db = ("--db", sandbox.db_url)
    old, new = sandbox.partner_api_key, f"{sandbox.partner_api_key}-next"
    run_cli("braze", "partner", "create", sandbox.partner, "--api-key", new, *db, home=tmp_path)
    assert define(sandbox, old, "a").status_code == 200
    assert define(sandbox, new, "b").status_code == 200

    removed = run_cli(
        "braze", "partner", "remove-key", sandbox.partner, "--api-key", old, *db, home=tmp_path
    )
    keys = [key["key"] for key in json.loads(removed.stdout)["api_keys"]]
    assert old not in keys and new in keys
    assert define(sandbox, old, "c").status_code == 401  # the running service, at once
    assert define(sandbox, new, "d").status_code == 200

    again = run_cli(
        "braze", "partner", "remove-key", sandbox.partner, "--api-key", old, *db,
        home=tmp_path, expect=2,
    )  # fmt: skip
    assert again.stderr.startswith(
        f"error: partner {sandbox.partner!r} has no such partner API key"
    )
