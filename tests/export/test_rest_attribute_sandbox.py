"""End to end against the real receiving service: the seed's use cases through ``/users/track``.

``example_cohort_table`` of spec section 1, exported with ``--type
rest-attribute`` into the Braze-compatible sandbox with its REST API key: a
segment on the attribute (``cohortsync braze segment create --attribute-includes``
or ``--attribute-is-true``) then holds exactly the matched users. Device ids
are refused before anything is sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from export.conftest import CliRunner
from support import run_cli

Warehouse = Callable[[str], None]

EXAMPLE = [
    ("TDCohort1", "TDCohort1@gmail.com", "1a2b3c"),
    ("TDCohort2", "TDCohort2@gmail.com", "4d5f6g"),
    ("TDCohort3", "TDCohort3@gmail.com", "7h8j9k"),
    ("TDCohort4", "TDCohort4@gmail.com", "1ab2cd"),
]


@pytest.fixture
def sandbox(braze_sandbox: Any, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The sandbox knows the example's users (and a stranger); the key is in the environment."""
    monkeypatch.setenv("COHORTSYNC_REST_API_KEY", braze_sandbox.rest_api_key)
    braze_sandbox.load_users(
        [
            {"external_id": uid, "aliases": [{"alias_label": "email", "alias_name": email}]}
            for uid, email, _ in EXAMPLE
        ]
        + [{"device_ids": [device]} for _, _, device in EXAMPLE]
        + [{"external_id": "stranger"}]
    )
    rows = ", ".join(f"('{uid}', '{email}', '{device}')" for uid, email, device in EXAMPLE)
    warehouse(
        f"CREATE TABLE example_cohort_table AS SELECT * FROM (VALUES {rows}) "
        "t(external_id, email, device_ids)"
    )
    return braze_sandbox


def export(cli: CliRunner, sandbox: Any, *args: str) -> Any:
    return cli(
        "export", "--type", "rest-attribute", "--endpoint", sandbox.base_url, "--json", *args
    )  # fmt: skip


def segment(sandbox: Any, name: str, *filters: str) -> list[str]:
    run_cli(
        "braze", "segment", "create", name, "-w", str(sandbox.workspace), "--db", sandbox.db_url,
        *filters,
    )  # fmt: skip
    return sorted(m["external_id"] for m in sandbox.segment_members(name))


def test_external_ids_become_an_array_attribute_a_segment_targets(
    sandbox: Any, cli: CliRunner
) -> None:
    done = export(
        cli, sandbox, "--query", "SELECT external_id AS user_ids FROM example_cohort_table",
        "--cohort-id", "by_id", "--operation", "mirror",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["sent"] == {"user_ids": 4}
    assert report["match"]["errors"] == 0
    members = segment(sandbox, "in by_id", "--attribute-includes", "cohorts=by_id")
    assert members == [uid for uid, _, _ in EXAMPLE]


def test_email_aliases_become_a_boolean_attribute_and_unknown_ones_create_nobody(
    sandbox: Any, cli: CliRunner, warehouse: Warehouse
) -> None:
    warehouse(
        "CREATE TABLE emails AS SELECT email FROM example_cohort_table "
        "UNION ALL SELECT 'nobody@example.com'"
    )
    done = export(
        cli, sandbox, "--table", "emails", "--alias-column", "email", "--cohort-id", "by_email",
        "--attribute-mode", "boolean",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["sent"] == {"alias": 5}
    assert report["match"]["errors"] == 1  # nobody@example.com: not created
    members = segment(sandbox, "by email", "--attribute-is-true", "cohort_by_email")
    assert members == [uid for uid, _, _ in EXAMPLE]


def test_device_ids_are_refused_with_what_to_do(sandbox: Any, cli: CliRunner) -> None:
    done = export(
        cli, sandbox, "--query", "SELECT device_ids FROM example_cohort_table",
        "--cohort-id", "by_device",
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    [line] = [line for line in done.stderr.splitlines() if "device" in line]
    assert "cannot address a user by device id" in line
    assert "--type partner-cohort" in line
