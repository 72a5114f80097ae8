"""``cohortsync apply`` with a ``type: rest-attribute`` authentication, its key from the env.

The key is checked against a real sandbox (``braze_sandbox``) before
anything of the file is saved, as ``cohortsync auth create`` checks it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cohortsync.apply import apply_file
from cohortsync.audience.activations import get_activation, list_activations
from cohortsync.braze import admin
from cohortsync.catalog.auths import get_auth, list_auths
from cohortsync.catalog.db import open_catalog
from cohortsync.errors import ConfigError
from cohortsync.export.destinations import destination_for_auth
from cohortsync.queries import get_query, list_queries
from cohortsync.settings import Settings
from support import run_cli, unused_port

FILE = """\
authentications:
  - name: braze-rest
    type: rest-attribute
    endpoint: ${BRAZE_ENDPOINT}
    rest_api_key: ${BRAZE_REST_API_KEY}
queries:
  - name: gold
    sql: SELECT external_id AS user_ids FROM customers WHERE tier = 'gold'
    export: {auth: braze-rest, cohort_id: gold, operation: mirror, attribute_mode: boolean}
parents:
  - {name: customers, table: customers, key: external_id}
segments:
  - {name: gold, parent: customers, rules: {column: tier, op: "=", value: gold}}
activations:
  - name: gold_daily
    segment: gold
    auth: braze-rest
    cohort_id: gold
    mapping: [external_id=user_ids]
    attribute: tiers
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cohortsync.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def sandbox(braze_sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The file's endpoint is the sandbox; its REST API key is in the environment."""
    monkeypatch.setenv("BRAZE_ENDPOINT", braze_sandbox.base_url)
    monkeypatch.setenv("BRAZE_REST_API_KEY", braze_sandbox.rest_api_key)
    return braze_sandbox


def saved() -> dict[str, list[str]]:
    """The names of what the catalog holds, per kind the file declares."""
    catalog = open_catalog(Settings().catalog_path)
    try:
        auths = [record.name for record in list_auths(catalog)]
    finally:
        catalog.dispose()
    return {
        "auths": auths,
        "queries": [query.name for query in list_queries()],
        "activations": [activation.name for activation in list_activations()],
    }


def test_a_rest_attribute_authentication_is_applied_and_exports_go_through_it(
    customers: Path, tmp_path: Path, sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, FILE)
    first = apply_file(path)
    assert {(c.kind, c.action) for c in first.changes} >= {("authentication", "create")}
    destination = destination_for_auth("braze-rest")
    assert destination.type == "rest-attribute"
    assert destination.rest_api_key == sandbox.rest_api_key
    assert destination.attribute_name("gold") == "cohorts"
    settings = Settings()
    catalog = open_catalog(settings.catalog_path)
    try:
        assert get_auth(catalog, "braze-rest").masked_key == "****" + sandbox.rest_api_key[-4:]
    finally:
        catalog.dispose()

    assert get_query("gold").export.attribute_mode == "boolean"  # type: ignore[union-attr]
    activation = get_activation("gold_daily")
    assert (activation.attribute_mode, activation.attribute) == ("array", "tiers")

    again = apply_file(path)
    assert {c.action for c in again.changes} == {"unchanged"}
    other = admin.create_workspace(sandbox.store, "other")["rest_api_key"]
    monkeypatch.setenv("BRAZE_REST_API_KEY", other)
    [auth] = [c for c in apply_file(path).changes if c.kind == "authentication"]
    assert (auth.action, auth.fields) == ("update", ("data_import_key",))
    assert destination_for_auth("braze-rest").rest_api_key == other


def test_an_unchanged_authentication_is_not_checked_again(
    customers: Path, tmp_path: Path, sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Re-applying a file needs no network for what it already saved."""
    path = write(tmp_path, FILE)
    apply_file(path)
    with unused_port() as port:
        closed = f"http://127.0.0.1:{port}"
        monkeypatch.setenv("BRAZE_ENDPOINT", closed)
        with pytest.raises(ConfigError, match="could not be checked"):
            apply_file(path)  # a changed endpoint is checked, and this one refuses
        monkeypatch.setenv("BRAZE_ENDPOINT", sandbox.base_url)
        assert {c.action for c in apply_file(path).changes} == {"unchanged"}


def test_a_refused_key_applies_nothing_of_the_file(
    customers: Path, tmp_path: Path, sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BRAZE_REST_API_KEY", "not-a-key-of-this-workspace")
    path = write(tmp_path, FILE)
    for dry_run in ([], ["--dry-run"]):
        done = run_cli("apply", str(path), *dry_run, expect=None)
        assert done.returncode == 4, done.stderr
        [line] = done.stderr.strip().splitlines()
        assert f"{path}: authentications[0] (braze-rest): " in line
        assert "its rest_api_key was refused: " in line and "users.track" in line
        assert "not-a-key" not in line and "Traceback" not in done.stderr
        assert done.stdout == ""
    assert saved() == {"auths": [], "queries": [], "activations": []}


def test_a_refused_new_key_keeps_the_saved_one_and_everything_else(
    customers: Path, tmp_path: Path, sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, FILE)
    apply_file(path)
    monkeypatch.setenv("BRAZE_REST_API_KEY", "not-a-key-of-this-workspace")
    changed = write(tmp_path, FILE.replace("attribute: tiers", "attribute: levels"))
    done = run_cli("apply", str(changed), expect=None)
    assert done.returncode == 4, done.stderr
    assert "authentications[0] (braze-rest)" in done.stderr
    assert destination_for_auth("braze-rest").rest_api_key == sandbox.rest_api_key
    assert get_activation("gold_daily").attribute == "tiers"


def test_an_unreachable_endpoint_applies_nothing_and_says_which_entry(
    customers: Path, tmp_path: Path, sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, FILE)
    with unused_port() as port:
        monkeypatch.setenv("BRAZE_ENDPOINT", f"http://127.0.0.1:{port}")
        done = run_cli("apply", str(path), expect=None)
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert f"{path}: authentications[0] (braze-rest): its rest_api_key could not be checked" in line
    assert "unreachable" in line and "Traceback" not in done.stderr
    assert saved() == {"auths": [], "queries": [], "activations": []}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("rest_api_key: ${BRAZE_REST_API_KEY}", "rest_api_key: rest-key-literal"),
         "authentications[0].rest_api_key is written in the file"),
        (("    type: rest-attribute\n", ""),
         "rest_api_key belongs to an authentication of type rest-attribute"),
        (("rest_api_key:", "data_import_key:"),
         "a rest-attribute authentication holds a REST API key"),
        (("    rest_api_key: ${BRAZE_REST_API_KEY}\n", ""),
         "a rest-attribute authentication needs rest_api_key"),
        (("type: rest-attribute", "type: rest"), "authentications[0].type: Input should be"),
    ],
)  # fmt: skip
def test_a_wrong_rest_attribute_authentication_is_refused(
    customers: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    edit: tuple[str, str],
    message: str,
) -> None:
    monkeypatch.setenv("BRAZE_ENDPOINT", "https://rest.iad-01.braze.com")  # refused before sent
    monkeypatch.setenv("BRAZE_REST_API_KEY", "rest-key-0001")
    path = write(tmp_path, FILE.replace(*edit))
    with pytest.raises(ConfigError) as refused:
        apply_file(path)
    assert message in refused.value.message
    assert "rest-key" not in refused.value.message
