"""``cohortsync apply`` with a ``type: rest-attribute`` authentication, its key from the env."""

from __future__ import annotations

from pathlib import Path

import pytest

from cohortsync.apply import apply_file
from cohortsync.audience.activations import get_activation
from cohortsync.catalog.auths import get_auth
from cohortsync.catalog.db import open_catalog
from cohortsync.errors import ConfigError
from cohortsync.export.destinations import destination_for_auth
from cohortsync.queries import get_query
from cohortsync.settings import Settings

FILE = """\
authentications:
  - name: braze-rest
    type: rest-attribute
    endpoint: https://rest.iad-01.braze.com
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


def test_a_rest_attribute_authentication_is_applied_and_exports_go_through_it(
    customers: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BRAZE_REST_API_KEY", "rest-key-0001")
    path = write(tmp_path, FILE)
    first = apply_file(path)
    assert {(c.kind, c.action) for c in first.changes} >= {("authentication", "create")}
    destination = destination_for_auth("braze-rest")
    assert destination.type == "rest-attribute" and destination.rest_api_key == "rest-key-0001"
    assert destination.attribute_name("gold") == "cohorts"
    settings = Settings()
    catalog = open_catalog(settings.catalog_path)
    try:
        assert get_auth(catalog, "braze-rest").masked_key == "****0001"
    finally:
        catalog.dispose()

    assert get_query("gold").export.attribute_mode == "boolean"  # type: ignore[union-attr]
    activation = get_activation("gold_daily")
    assert (activation.attribute_mode, activation.attribute) == ("array", "tiers")

    again = apply_file(path)
    assert {c.action for c in again.changes} == {"unchanged"}
    monkeypatch.setenv("BRAZE_REST_API_KEY", "rest-key-0002")
    [auth] = [c for c in apply_file(path).changes if c.kind == "authentication"]
    assert (auth.action, auth.fields) == ("update", ("data_import_key",))
    assert destination_for_auth("braze-rest").rest_api_key == "rest-key-0002"


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
    monkeypatch.setenv("BRAZE_REST_API_KEY", "rest-key-0001")
    path = write(tmp_path, FILE.replace(*edit))
    with pytest.raises(ConfigError) as refused:
        apply_file(path)
    assert message in refused.value.message
    assert "rest-key" not in refused.value.message
