"""A saved ``rest-attribute`` authentication: ``export --auth``, saved queries, activations.

Against the real receiving service (the ``braze_sandbox`` fixture) with its
REST API key: the authentication is created (its key checked by an
update-only ``/users/track``), then each way of exporting through it sets the
``cohorts`` attribute of the matched profiles, read back with
``POST /users/export/ids``
(https://www.braze.com/docs/api/endpoints/export/user_data/post_users_identifier/).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from cohortsync.errors import ConfigError
from export.conftest import CliRunner

Warehouse = Callable[[str], None]
USERS = [f"u{i}" for i in range(6)]


@pytest.fixture
def sandbox(braze_sandbox: Any, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Six known users, a customers table, and the REST API key in the environment."""
    monkeypatch.setenv("COHORTSYNC_REST_API_KEY", braze_sandbox.rest_api_key)
    braze_sandbox.load_users([{"external_id": uid} for uid in USERS])
    rows = ", ".join(f"('{uid}', '{'FR' if i % 2 else 'DE'}')" for i, uid in enumerate(USERS))
    warehouse(f"CREATE TABLE customers AS SELECT * FROM (VALUES {rows}) t(external_id, country)")
    return braze_sandbox


@pytest.fixture
def rest_auth(sandbox: Any, cli: CliRunner) -> str:
    created = cli(
        "auth", "create", "rest", "--type", "rest-attribute", "--endpoint", sandbox.base_url
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    return "rest"


def attributes(sandbox: Any, attribute: str = "cohorts") -> dict[str, Any]:
    """Each known user's ``attribute``, as ``/users/export/ids`` exports it."""
    body = json.dumps(
        {"external_ids": USERS, "fields_to_export": ["external_id", "custom_attributes"]}
    )
    request = urllib.request.Request(
        f"{sandbox.base_url}/users/export/ids",
        data=body.encode(),
        headers={
            "Authorization": f"Bearer {sandbox.rest_api_key}",
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        users = json.load(answer)["users"]
    return {
        user["external_id"]: user.get("custom_attributes", {}).get(attribute)
        for user in users
        if attribute in user.get("custom_attributes", {})
    }


def test_export_with_the_saved_auth_needs_no_type_and_refuses_another(
    sandbox: Any, rest_auth: str, cli: CliRunner
) -> None:
    base = ["export", "--auth", rest_auth, "--cohort-id", "germans"]
    query = ["--query", "SELECT external_id AS user_ids FROM customers WHERE country = 'DE'"]
    done = cli(*base, *query, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["sent"] == {"user_ids": 3}
    assert attributes(sandbox) == {"u0": ["germans"], "u2": ["germans"], "u4": ["germans"]}

    flagged = cli(*base, *query, "--attribute-mode", "boolean", "--type", "rest-attribute")
    assert flagged.returncode == 0, flagged.stderr
    assert attributes(sandbox, "cohort_germans") == {"u0": True, "u2": True, "u4": True}

    wrong = cli(*base, *query, "--type", "partner-cohort")
    assert wrong.returncode == 2
    assert (
        "--type partner-cohort does not match the authentication 'rest', which is "
        "rest-attribute" in wrong.stderr
    )
    both = cli(*base, *query, "--endpoint", sandbox.base_url)
    assert both.returncode == 2 and "not both" in both.stderr


def test_a_saved_query_runs_through_the_saved_auth(
    sandbox: Any, rest_auth: str, cli: CliRunner
) -> None:
    saved = cli(
        "query", "save", "french", "--sql",
        "SELECT external_id AS user_ids FROM customers WHERE country = 'FR'",
        "--export", rest_auth, "--cohort-id", "french", "--operation", "mirror",
    )  # fmt: skip
    assert saved.returncode == 0, saved.stderr
    ran = cli("query", "run", "french")
    assert ran.returncode == 0, ran.stderr
    assert attributes(sandbox) == {"u1": ["french"], "u3": ["french"], "u5": ["french"]}
    flagged = cli(
        "query", "save", "french_flag", "--sql",
        "SELECT external_id AS user_ids FROM customers WHERE country = 'FR'",
        "--export", rest_auth, "--cohort-id", "french", "--attribute-mode", "boolean",
        "--attribute", "is_french",
    )  # fmt: skip
    assert flagged.returncode == 0, flagged.stderr
    assert cli("query", "run", "french_flag").returncode == 0
    assert attributes(sandbox, "is_french") == {"u1": True, "u3": True, "u5": True}
    runs = json.loads(cli("runs", "list", "--json").stdout)
    assert {run["job"]["job"] for run in runs} == {"query:french", "query:french_flag"}
    assert {run["status"] for run in runs} == {"succeeded"}
    assert {run["job"]["destination"]["attribute"] for run in runs} == {None, "is_french"}


def test_an_activation_runs_through_the_saved_auth(
    sandbox: Any, rest_auth: str, cli: CliRunner
) -> None:
    steps = [
        ("audience", "parent", "create", "customers", "--table", "customers",
         "--key", "external_id"),
        ("segment", "create", "germans", "--parent", "customers", "--rules",
         '{"column": "country", "op": "=", "value": "DE"}'),
        ("activation", "create", "germans_rest", "--segment", "germans", "--auth", rest_auth,
         "--cohort-id", "germans", "--map", "external_id=user_ids"),
        ("activation", "run", "germans_rest"),
        ("activation", "create", "germans_flag", "--segment", "germans", "--auth", rest_auth,
         "--cohort-id", "germans", "--map", "external_id=user_ids",
         "--attribute-mode", "boolean"),
        ("activation", "run", "germans_flag"),
        ("activation", "update", "germans_flag", "--attribute", "is_german"),
        ("activation", "run", "germans_flag"),
    ]  # fmt: skip
    for step in steps:
        done = cli(*step)
        assert done.returncode == 0, (step, done.stderr)
    assert attributes(sandbox) == {"u0": ["germans"], "u2": ["germans"], "u4": ["germans"]}
    assert attributes(sandbox, "cohort_germans") == {"u0": True, "u2": True, "u4": True}
    assert attributes(sandbox, "is_german") == {"u0": True, "u2": True, "u4": True}


def test_a_run_of_the_saved_auth_resumes_with_its_recorded_attribute(
    sandbox: Any, rest_auth: str, cli: CliRunner
) -> None:
    """``runs resume`` rebuilds the run's own attribute, not the authentication's default."""
    from cohortsync.catalog import runs as history
    from cohortsync.catalog.db import open_catalog
    from cohortsync.jobs.run_history import spec_of
    from cohortsync.settings import Settings

    done = cli(
        "export", "--auth", rest_auth, "--cohort-id", "vip", "--attribute-mode", "boolean",
        "--attribute", "is_vip", "--query", "SELECT external_id AS user_ids FROM customers",
        "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    settings = Settings()
    catalog = open_catalog(settings.catalog_path)
    try:
        record = history.get_run(catalog, json.loads(done.stdout)["run_id"])
    finally:
        catalog.dispose()
    spec = spec_of(record, settings, None, None)
    assert spec.destination.auth_name == rest_auth
    assert (spec.destination.attribute_mode, spec.destination.attribute) == ("boolean", "is_vip")
    assert spec.destination.rest_api_key == sandbox.rest_api_key


def test_a_partner_authentication_refuses_rest_attribute_settings(
    sandbox: Any, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COHORTSYNC_PARTNER_API_KEY", sandbox.partner_api_key)
    monkeypatch.setenv("COHORTSYNC_DATA_IMPORT_KEY", sandbox.data_import_key)
    created = cli("auth", "create", "partner", "--endpoint", sandbox.base_url)
    assert created.returncode == 0, created.stderr
    query = ["--query", "SELECT external_id AS user_ids FROM customers"]
    typed = cli(
        "export", "--auth", "partner", "--type", "rest-attribute", "--cohort-id", "c", *query
    )
    assert typed.returncode == 2
    assert (
        "--type rest-attribute does not match the authentication 'partner', which is "
        "partner-cohort" in typed.stderr
    )
    saved = cli(
        "query", "save", "flagged", "--sql", "SELECT external_id AS user_ids FROM customers",
        "--export", "partner", "--cohort-id", "c", "--attribute-mode", "boolean",
    )  # fmt: skip
    assert saved.returncode == 0, saved.stderr
    ran = cli("query", "run", "flagged")
    assert ran.returncode == 2 and "delivers partner cohorts" in ran.stderr
    with pytest.raises(ConfigError, match="no cohort 'c'"):
        sandbox.members("c")  # nothing was sent: the cohort was never created


def test_an_attribute_braze_reads_as_a_profile_field_is_refused_when_saved(
    sandbox: Any, rest_auth: str, cli: CliRunner
) -> None:
    """The attribute rule is the definitions' own: saving refuses it, not only running."""
    sql = "SELECT external_id AS user_ids FROM customers"
    base = ["--export", rest_auth, "--cohort-id", "vip"]
    query = cli("query", "save", "vip", "--sql", sql, *base, "--attribute", "email")
    assert query.returncode == 2
    assert query.stderr.strip() == (
        "error: 'email' is not a custom attribute name: Braze reads it as a profile field "
        "or an identifier (give a custom attribute name, e.g. cohorts or cohort_vip)"
    ), query.stderr
    assert "Traceback" not in query.stderr
    dollar = cli("query", "save", "vip", "--sql", sql, *base, "--attribute", "$email")
    assert dollar.returncode == 2 and "'$email' is not a custom attribute" in dollar.stderr
    assert json.loads(cli("query", "list", "--json").stdout) == {"queries": []}

    steps = [
        ("audience", "parent", "create", "customers", "--table", "customers",
         "--key", "external_id"),
        ("segment", "create", "all", "--parent", "customers", "--rules",
         '{"column": "country", "op": "!=", "value": "XX"}'),
        ("activation", "create", "vip", "--segment", "all", "--auth", rest_auth,
         "--cohort-id", "vip", "--map", "external_id=user_ids"),
    ]  # fmt: skip
    for step in steps:
        done = cli(*step)
        assert done.returncode == 0, (step, done.stderr)
    updated = cli("activation", "update", "vip", "--attribute", "first_name")
    assert updated.returncode == 2
    assert "'first_name' is not a custom attribute name" in updated.stderr
    assert json.loads(cli("activation", "show", "vip", "--json").stdout)["attribute"] is None
