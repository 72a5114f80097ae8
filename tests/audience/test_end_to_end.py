"""Activations run for real: DuckDB warehouse -> export run -> the Braze-compatible service."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from catalog_helpers import save_home_auth
from cohortsync.audience.activations import (
    activation_runs,
    create_activation,
    run_activation,
    update_activation,
)
from cohortsync.audience.parents import create_parent
from cohortsync.audience.segments import create_segment, upsert_segment

from .conftest import CUSTOMERS, INJECTION, cli_json


@pytest.fixture
def service(warehouse: Path, braze_sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The sandbox knows every customer (and a stranger); the auth ``braze`` points at it."""
    monkeypatch.setenv("COHORTSYNC_PARTNER_API_KEY", braze_sandbox.partner_api_key)
    braze_sandbox.load_users(
        [
            {
                "external_id": customer_id,
                "aliases": [{"alias_label": "email", "alias_name": email}] if email else [],
                "device_ids": [],
            }
            for customer_id, email, *_ in CUSTOMERS
        ]
        + [{"external_id": "stranger"}]
    )
    save_home_auth("braze", braze_sandbox.base_url, braze_sandbox.data_import_key)
    create_parent("customers", "customers", "customer_id")
    return braze_sandbox


def external_ids(service: Any, cohort_id: str) -> list[str]:
    return sorted(member["external_id"] for member in service.members(cohort_id))


def test_activation_adds_exactly_the_segment(service: Any) -> None:
    create_segment("fr", "customers", {"column": "country", "op": "=", "value": "FR"})
    create_activation(
        "fr_vip", segment="fr", auth="braze", cohort_id="fr_vip", mapping=["customer_id=user_ids"]
    )
    report = run_activation("fr_vip", progress=False)
    assert report.status == "succeeded"
    assert report.sent_total == 3
    assert external_ids(service, "fr_vip") == ["c1", "c2", "c6"]
    runs = activation_runs("fr_vip")
    assert [(run.id, run.status) for run in runs] == [(report.run_id, "succeeded")]


def test_injection_segment_exports_only_the_literal_match(service: Any) -> None:
    create_segment("tricky", "customers", {"column": "nickname", "op": "=", "value": INJECTION})
    create_activation(
        "tricky",
        segment="tricky",
        auth="braze",
        cohort_id="tricky",
        alias_column="email",
        mapping=["email=email"],
    )
    shown = cli_json("activation", "run", "tricky")
    assert shown["status"] == "succeeded" and shown["sent_total"] == 1
    assert service.members("tricky") == [
        {
            "external_id": "c1",
            "aliases": [{"alias_label": "email", "alias_name": "ana@x.io"}],
            "device_ids": [],
        }
    ]


def test_mirror_follows_the_segment_when_its_rules_change(service: Any) -> None:
    upsert_segment("target", "customers", {"column": "country", "op": "=", "value": "FR"})
    create_activation(
        "target",
        segment="target",
        auth="braze",
        cohort_id="target",
        operation="mirror",
        mapping=["customer_id=user_ids"],
    )
    run_activation("target", progress=False)
    assert external_ids(service, "target") == ["c1", "c2", "c6"]
    # ages 40, 30, 33: c1 leaves, c4 enters
    upsert_segment("target", "customers", {"column": "age", "op": ">=", "value": 30})
    report = run_activation("target", progress=False)
    assert external_ids(service, "target") == ["c2", "c4", "c6"]
    assert report.sent_total == 2
    update_activation("target", operation="remove")
    run_activation("target", progress=False)
    assert external_ids(service, "target") == []
    assert [run.status for run in activation_runs("target")] == ["succeeded"] * 3


def test_dry_run_plans_and_sends_nothing(service: Any) -> None:
    create_segment("fr", "customers", {"column": "country", "op": "=", "value": "FR"})
    create_activation(
        "fr_vip", segment="fr", auth="braze", cohort_id="fr_vip", mapping=["customer_id=user_ids"]
    )
    report = run_activation("fr_vip", dry_run=True, progress=False)
    assert report.dry_run and report.rows_read == 3
    assert service.cohorts() == []
    assert activation_runs("fr_vip") == []
