"""End to end against the real receiving service: membership equals the query result.

The seed example of spec section 1, ``example_cohort_table``: external ids,
email aliases and device ids of four users, exported through the CLI into
the Braze-compatible sandbox, whose cohort then holds exactly those users.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from export.conftest import CliRunner

Warehouse = Callable[[str], None]

EXAMPLE = [
    ("TDCohort1", "TDCohort1@gmail.com", "1a2b3c"),
    ("TDCohort2", "TDCohort2@gmail.com", "4d5f6g"),
    ("TDCohort3", "TDCohort3@gmail.com", "7h8j9k"),
    ("TDCohort4", "TDCohort4@gmail.com", "1ab2cd"),
]


@pytest.fixture
def sandbox(braze_sandbox: Any, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The sandbox knows the example's users; the warehouse holds example_cohort_table.

    Identified users carry the external id and the email alias; the devices
    belong to anonymous users (a device id of an identified user matches
    nobody, spec section 1). A stranger exists that no query selects.
    """
    monkeypatch.setenv("COHORTSYNC_PARTNER_API_KEY", braze_sandbox.partner_api_key)
    braze_sandbox.load_users(
        [
            {"external_id": uid, "aliases": [{"alias_label": "email", "alias_name": email}]}
            for uid, email, _ in EXAMPLE
        ]
        + [{"device_ids": [device]} for _, _, device in EXAMPLE]
        + [{"external_id": "stranger", "device_ids": ["dead00"]}]
    )
    rows = ", ".join(f"('{uid}', '{email}', '{device}')" for uid, email, device in EXAMPLE)
    warehouse(
        f"CREATE TABLE example_cohort_table AS SELECT * FROM (VALUES {rows}) "
        "t(external_id, email, device_ids)"
    )
    return braze_sandbox


def export(cli: CliRunner, sandbox: Any, *args: str) -> Any:
    return cli(
        "export", "--endpoint", sandbox.base_url, "--data-import-key", sandbox.data_import_key,
        *args,
    )  # fmt: skip


def test_external_ids_aliases_and_devices_become_the_cohort(sandbox: Any, cli: CliRunner) -> None:
    by_id = export(
        cli, sandbox, "--query", "SELECT external_id AS user_ids FROM example_cohort_table",
        "--cohort-id", "by_id", "--cohort-name", "By external id", "--json",
    )  # fmt: skip
    assert by_id.returncode == 0, by_id.stderr
    assert json.loads(by_id.stdout)["sent"] == {"user_ids": 4}
    members = sandbox.members("by_id")
    assert [m["external_id"] for m in members] == [uid for uid, _, _ in EXAMPLE]

    by_email = export(
        cli, sandbox, "--query", "SELECT email FROM example_cohort_table",
        "--alias-column", "email", "--cohort-id", "by_email",
    )  # fmt: skip
    assert by_email.returncode == 0, by_email.stderr
    assert [m["external_id"] for m in sandbox.members("by_email")] == [u for u, _, _ in EXAMPLE]

    by_device = export(
        cli, sandbox, "--query", "SELECT device_ids FROM example_cohort_table",
        "--cohort-id", "by_device",
    )  # fmt: skip
    assert by_device.returncode == 0, by_device.stderr
    devices = sorted(d for m in sandbox.members("by_device") for d in m["device_ids"])
    assert devices == sorted(device for _, _, device in EXAMPLE)

    names = {c["cohort_id"]: c["name"] for c in sandbox.cohorts()}
    assert names["by_id"] == "By external id" and names["by_email"] == "by_email"


def test_remove_takes_users_out(sandbox: Any, cli: CliRunner) -> None:
    added = export(
        cli, sandbox, "--query", "SELECT external_id AS user_ids FROM example_cohort_table",
        "--cohort-id", "vip",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    removed = export(
        cli, sandbox, "--query",
        "SELECT external_id AS user_ids FROM example_cohort_table WHERE external_id < 'TDCohort3'",
        "--cohort-id", "vip", "--operation", "remove",
    )  # fmt: skip
    assert removed.returncode == 0, removed.stderr
    assert [m["external_id"] for m in sandbox.members("vip")] == ["TDCohort3", "TDCohort4"]


def test_a_locked_cohort_is_retried_then_gives_up(
    sandbox: Any, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    sql = "SELECT external_id AS user_ids FROM example_cohort_table"
    assert export(cli, sandbox, "--query", sql, "--cohort-id", "vip").returncode == 0
    sandbox.lock("vip")
    monkeypatch.setenv("COHORTSYNC_HTTP_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("COHORTSYNC_HTTP_BACKOFF_BASE", "0.01")
    locked = export(cli, sandbox, "--query", sql, "--cohort-id", "vip", "--operation", "remove")
    assert locked.returncode == 5
    assert "HTTP 423" in locked.stderr
    sandbox.unlock("vip")
    assert len(sandbox.members("vip")) == 4


def test_auth_create_against_the_service(sandbox: Any, cli: CliRunner) -> None:
    created = cli(
        "auth", "create", "sandbox", "--endpoint", sandbox.base_url,
        "--data-import-key", sandbox.data_import_key,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    refused = cli(
        "auth", "create", "wrong", "--endpoint", sandbox.base_url,
        "--data-import-key", "not-a-key-of-this-workspace",
    )  # fmt: skip
    assert refused.returncode == 4 and "HTTP 401" in refused.stderr
    result = cli(
        "export", "--auth", "sandbox", "--cohort-id", "vip",
        "--query", "SELECT device_ids, external_id AS user_ids FROM example_cohort_table",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(sandbox.members("vip")) == 8  # four identified users and four devices
