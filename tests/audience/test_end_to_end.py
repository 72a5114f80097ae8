"""Activations run for real: DuckDB warehouse -> export run -> the Braze-compatible service."""

from __future__ import annotations

import datetime as dt
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
from cohortsync.catalog import schedules
from cohortsync.catalog.db import open_catalog
from cohortsync.definitions import Activation, Segment, validated
from cohortsync.settings import Settings

from .conftest import CUSTOMERS, INJECTION, cli, cli_json, fill_warehouse


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


def activation(name: str, **fields: Any) -> Activation:
    return validated(Activation, {"name": name, **fields})


def external_ids(service: Any, cohort_id: str) -> list[str]:
    return sorted(member["external_id"] for member in service.members(cohort_id))


def test_activation_adds_exactly_the_segment(service: Any) -> None:
    create_segment("fr", "customers", {"column": "country", "op": "=", "value": "FR"})
    create_activation(
        activation(
            "fr_vip",
            segment="fr",
            auth="braze",
            cohort_id="fr_vip",
            mapping=["customer_id=user_ids"],
        )
    )
    report = run_activation("fr_vip")
    assert report.status == "succeeded"
    assert report.sent_total == 3
    assert external_ids(service, "fr_vip") == ["c1", "c2", "c6"]
    runs = activation_runs("fr_vip")
    assert [(run.id, run.status) for run in runs] == [(report.run_id, "succeeded")]


def test_injection_segment_exports_only_the_literal_match(service: Any) -> None:
    create_segment("tricky", "customers", {"column": "nickname", "op": "=", "value": INJECTION})
    create_activation(
        activation(
            "tricky",
            segment="tricky",
            auth="braze",
            cohort_id="tricky",
            alias_column="email",
            mapping=["email=email"],
        )
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
    target = Segment(
        name="target", parent="customers", rules={"column": "country", "op": "=", "value": "FR"}
    )
    upsert_segment(target)
    create_activation(
        activation(
            "target",
            segment="target",
            auth="braze",
            cohort_id="target",
            operation="mirror",
            mapping=["customer_id=user_ids"],
        )
    )
    run_activation("target")
    assert external_ids(service, "target") == ["c1", "c2", "c6"]
    # ages 40, 30, 33: c1 leaves, c4 enters
    upsert_segment(target.model_copy(update={"rules": {"column": "age", "op": ">=", "value": 30}}))
    report = run_activation("target")
    assert external_ids(service, "target") == ["c2", "c4", "c6"]
    assert report.sent_total == 2
    update_activation("target", operation="remove")
    run_activation("target")
    assert external_ids(service, "target") == []
    assert [run.status for run in activation_runs("target")] == ["succeeded"] * 3


def test_dry_run_plans_and_sends_nothing(service: Any) -> None:
    create_segment("fr", "customers", {"column": "country", "op": "=", "value": "FR"})
    create_activation(
        activation(
            "fr_vip",
            segment="fr",
            auth="braze",
            cohort_id="fr_vip",
            mapping=["customer_id=user_ids"],
        )
    )
    report = run_activation("fr_vip", dry_run=True)
    assert report.dry_run and report.rows_read == 3
    assert service.cohorts() == []
    assert activation_runs("fr_vip") == []


def test_saved_skip_invalid_skips_bad_identifiers_in_every_run(
    service: Any, warehouse: Path
) -> None:
    """``--skip-invalid`` saved on the activation: ``activation run`` and the scheduler skip."""
    fill_warehouse(warehouse, [*CUSTOMERS, ("c\t7", "tab@x.io", "d7", "FR", 50, 1007, None)])
    create_segment("fr", "customers", {"column": "country", "op": "=", "value": "FR"})
    common = ("--segment", "fr", "--auth", "braze", "--map", "customer_id=user_ids")
    cli("activation", "create", "strict", *common, "--cohort-id", "strict")
    refused = cli("activation", "run", "strict", code=3)
    assert "1 identifier of the result Braze would refuse" in refused.stderr
    assert "strict" not in [cohort["cohort_id"] for cohort in service.cohorts()]

    created = cli_json(
        "activation", "create", "fr_vip", *common, "--cohort-id", "fr_vip",
        "--skip-invalid", "--schedule", "* * * * *",
    )  # fmt: skip
    assert created["skip_invalid"] is True
    report = cli_json("activation", "run", "fr_vip")
    assert (report["status"], report["skipped"]["invalid"]) == ("succeeded", 1)
    assert report["sent_total"] == 3
    assert external_ids(service, "fr_vip") == ["c1", "c2", "c6"]

    # The scheduler's run: the schedule is anchored an hour ago, so a slot is due.
    catalog = open_catalog(Settings().catalog_path)
    try:
        schedules.clear_schedule(catalog, "activation", "fr_vip")
        an_hour_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
        schedules.set_schedule(catalog, "activation", "fr_vip", "* * * * *", now=an_hour_ago)
    finally:
        catalog.dispose()
    cli("scheduler", "--once")
    runs = activation_runs("fr_vip")
    assert [run.status for run in runs] == ["succeeded", "succeeded"]
    assert runs[0].report is not None and runs[0].report["skipped"]["invalid"] == 1

    cli("activation", "update", "fr_vip", "--no-skip-invalid")
    assert cli_json("activation", "show", "fr_vip")["skip_invalid"] is False
    cli("activation", "run", "fr_vip", code=3)
