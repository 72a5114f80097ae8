"""Activations: mapping checks, definitions, schedules, and the SQL and spec a run uses."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from cohortsync.audience.activations import (
    activation_spec,
    activation_sql,
    create_activation,
    delete_activation,
    get_activation,
    list_activations,
    update_activation,
    upsert_activation,
)
from cohortsync.audience.parents import create_parent
from cohortsync.audience.segments import create_segment, delete_segment
from cohortsync.catalog.db import open_catalog
from cohortsync.catalog.schedules import get_schedule
from cohortsync.definitions import Activation, Parent, validated
from cohortsync.errors import ConfigError
from cohortsync.settings import Settings
from cohortsync.warehouse import open_engine

FR = {"column": "country", "op": "=", "value": "FR"}


@pytest.fixture
def segment(warehouse: Path, auth: str) -> str:
    create_parent("customers", "customers", "customer_id")
    create_segment("fr", "customers", FR)
    return "fr"


def definition(name: str = "fr_vip", **overrides: Any) -> Activation:
    """The activation ``fr_vip`` of segment ``fr``, as every way in builds it."""
    fields: dict[str, Any] = {
        "name": name,
        "segment": "fr",
        "auth": "sandbox",
        "cohort_id": "fr_vip",
        "mapping": ["customer_id=user_ids"],
    }
    return validated(Activation, {**fields, **overrides})


def activate(name: str = "fr_vip", **overrides: Any) -> Any:
    return create_activation(definition(name, **overrides))


def rows_of(name: str) -> list[dict[str, Any]]:
    """Run the activation's compiled SQL in the warehouse."""
    compiled = activation_sql(name)
    with open_engine() as engine:
        table = engine.stream(compiled.sql, compiled.params).read_all()
    return sorted(table.to_pylist(), key=lambda row: str(row))


def test_activation_selects_mapped_columns_under_output_names(segment: str) -> None:
    activate(
        mapping=["email=email", "customer_id=user_ids", "device_id=device_ids"],
        alias_column="email",
    )
    compiled = activation_sql("fr_vip")
    assert compiled.sql == (
        'SELECT "email" AS "email", "customer_id" AS "user_ids", "device_id" AS "device_ids" '
        'FROM "customers" WHERE "country" = ?'
    )
    assert compiled.params == ("FR",)
    assert rows_of("fr_vip") == [
        {"email": "ana@x.io", "user_ids": "c1", "device_ids": "d1"},
        {"email": "bob@x.io", "user_ids": "c2", "device_ids": "d2"},
        {"email": "fay@x.io", "user_ids": "c6", "device_ids": "d6"},
    ]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"mapping": ["customer_id=external_id"]},
            "output name 'external_id' of mapping customer_id=external_id is not allowed "
            "(allowed output names: user_ids, device_ids (or set --alias-column",
        ),
        (
            {"mapping": ["email=mail"], "alias_column": "email"},
            "allowed output names: user_ids, device_ids, email)",
        ),
        ({"mapping": []}, "at least one output mapping"),
        ({"mapping": ["customer_id"]}, "invalid output mapping 'customer_id'"),
        ({"mapping": ["=user_ids"]}, "invalid output mapping"),
        ({"mapping": ["customer_id=user_ids", "email=user_ids"]}, "'user_ids' is mapped twice"),
        ({"mapping": ["client_id=user_ids"]}, "unknown attribute 'client_id' in table customers"),
        ({"mapping": ["member_no=user_ids"]}, "'member_no' of table customers is int64, not a"),
        (
            {"mapping": ["customer_id=user_ids"], "alias_column": "email"},
            "alias column 'email' is set but no mapping outputs it",
        ),
        ({"alias_column": "user_ids"}, "clashes with the built-in output"),
        ({"operation": "sync"}, "unknown operation 'sync'"),
        ({"threads": 0}, "thread count 0 is below 1"),
        ({"cohort_id": " "}, "the cohort id is empty"),
        ({"auth": "nobody"}, "no authentication named 'nobody'"),
        ({"segment": "nobody"}, "no segment named 'nobody'"),
        ({"schedule": "every day"}, "cron expression 'every day' must have five fields"),
        ({"schedule": "0 6 * * *", "timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"mirror": {"max_remove_pct": 150.0}}, "not within 0..100"),
    ],
)
def test_invalid_definitions_are_refused_at_creation(
    segment: str, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)) as caught:
        activate(**overrides)
    assert message in str(caught.value)
    assert list_activations() == []


def test_cast_to_string_sends_the_text_form(segment: str) -> None:
    activate(mapping=["member_no=user_ids"], cast_to_string=True)
    assert 'CAST("member_no" AS VARCHAR) AS "user_ids"' in activation_sql("fr_vip").sql
    assert rows_of("fr_vip") == [{"user_ids": "1001"}, {"user_ids": "1002"}, {"user_ids": "1006"}]


def test_schedule_is_kept_in_step_with_the_scheduler(segment: str) -> None:
    row = activate(schedule="0  6 * * *", timezone="Europe/Paris")
    assert (row.schedule, row.timezone) == ("0 6 * * *", "Europe/Paris")
    catalog = open_catalog(Settings().catalog_path)
    try:
        scheduled = get_schedule(catalog, "activation", "fr_vip")
        assert scheduled is not None
        assert (scheduled.cron, scheduled.timezone) == ("0 6 * * *", "Europe/Paris")
        update_activation("fr_vip", schedule=None)
        assert get_schedule(catalog, "activation", "fr_vip") is None
        update_activation("fr_vip", schedule="*/15 * * * *")
        assert get_schedule(catalog, "activation", "fr_vip") is not None
        delete_activation("fr_vip")
        assert get_schedule(catalog, "activation", "fr_vip") is None
    finally:
        catalog.dispose()


def test_update_checks_the_result_and_upsert_reports_changes(segment: str) -> None:
    activate()
    updated = update_activation("fr_vip", operation="mirror", threads=2)
    assert (updated.operation, updated.threads) == ("mirror", 2)
    with pytest.raises(ConfigError, match=r"output name 'emails' .* not allowed"):
        update_activation("fr_vip", mapping=["email=emails"])
    with pytest.raises(ConfigError, match="cannot change colour"):
        update_activation("fr_vip", colour="blue")
    assert [m.model_dump() for m in get_activation("fr_vip").mapping] == [
        {"attribute": "customer_id", "output": "user_ids"}
    ]
    changed: dict[str, Any] = {"operation": "mirror", "threads": 2}
    assert upsert_activation(definition(**changed)) is False
    assert upsert_activation(definition(**changed, cohort_name="VIP")) is True
    assert upsert_activation(definition("other", **changed)) is True
    assert [a.name for a in list_activations(segment="fr")] == ["fr_vip", "other"]


def test_segment_in_use_cannot_be_deleted(segment: str) -> None:
    activate()
    with pytest.raises(ConfigError, match="segment 'fr' is used by activations: fr_vip"):
        delete_segment("fr")
    delete_activation("fr_vip")
    with pytest.raises(ConfigError, match="no activation named 'fr_vip'"):
        get_activation("fr_vip")
    delete_segment("fr")


def test_spec_of_a_run(segment: str, monkeypatch: pytest.MonkeyPatch) -> None:
    activate(
        operation="mirror",
        cohort_name="French VIPs",
        threads=3,
        mirror={"allow_empty": True, "max_remove_pct": 10.0},
    )
    with pytest.raises(ConfigError, match="no partner API key"):
        activation_spec("fr_vip")
    monkeypatch.setenv("COHORTSYNC_PARTNER_API_KEY", "partner-key")
    spec = activation_spec("fr_vip", full_resync=True)
    assert spec.job == "activation:fr_vip"
    assert (
        spec.source.sql == 'SELECT "customer_id" AS "user_ids" FROM "customers" WHERE "country" = ?'
    )
    assert spec.source.params == ("FR",)
    assert (spec.cohort_id, spec.name, spec.operation, spec.threads) == (
        "fr_vip",
        "French VIPs",
        "mirror",
        3,
    )
    assert (spec.mirror.allow_empty, spec.mirror.max_remove_pct, spec.mirror.full_resync) == (
        True,
        10.0,
        True,
    )
    assert spec.destination.auth_name == "sandbox"
    assert spec.destination.data_import_key == "data-import-key-0001"


@pytest.mark.postgres
def test_parent_in_postgresql(postgres_url: str, auth: str) -> None:
    """A parent stored with its own warehouse URL: rules, sample and cast run in PostgreSQL."""
    import psycopg

    from cohortsync.audience.segments import describe_segment

    from .conftest import CUSTOMERS, CUSTOMERS_DDL

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS customers")
        conn.execute(CUSTOMERS_DDL)
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO customers VALUES (%s, %s, %s, %s, %s, %s, %s)", CUSTOMERS
            )
    create_parent("pg_customers", "customers", "customer_id", warehouse_url=postgres_url)
    create_segment("fr", "pg_customers", {"or": [FR, {"column": "age", "op": "<", "value": 20}]})
    summary = describe_segment("fr", sample=3)
    assert summary.size == 4
    assert summary.sample.column("customer_id").to_pylist() == ["c1", "c2", "c3"]
    activate(mapping=["member_no=user_ids"], cast_to_string=True)
    compiled = activation_sql("fr_vip")
    with open_engine(postgres_url) as engine:
        values = engine.stream(compiled.sql, compiled.params).read_all().column(0).to_pylist()
    assert sorted(values) == ["1001", "1002", "1003", "1006"]


def test_parent_change_that_would_break_a_mapping_is_refused(segment: str, warehouse: Path) -> None:
    import duckdb

    from cohortsync.audience.parents import get_parent, upsert_parent

    activate(mapping=["email=email"], alias_column="email")
    with duckdb.connect(str(warehouse)) as conn:
        conn.execute("CREATE TABLE slim AS SELECT customer_id, country FROM customers")
    with pytest.raises(ConfigError, match="unknown attribute 'email' in table slim"):
        upsert_parent(Parent(name="customers", table="slim", key="customer_id"))
    assert get_parent("customers").table == "customers"


def test_a_run_waits_for_no_one_and_records_why_it_failed(
    segment: str, warehouse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datetime as dt

    import duckdb

    from cohortsync.audience.activations import activation_runs, run_activation
    from cohortsync.catalog.leases import acquire_lease, release_lease

    monkeypatch.setenv("COHORTSYNC_PARTNER_API_KEY", "partner-key")
    activate()
    catalog = open_catalog(Settings().catalog_path)
    try:
        lease = acquire_lease(
            catalog,
            "activation:fr_vip",
            "scheduler@elsewhere",
            now=dt.datetime.now(dt.UTC),
            ttl=dt.timedelta(minutes=5),
        )
        assert lease is not None
        with pytest.raises(ConfigError, match="job activation:fr_vip is already running"):
            run_activation("fr_vip")
        release_lease(catalog, lease)
    finally:
        catalog.dispose()
    with duckdb.connect(str(warehouse)) as conn:
        conn.execute("ALTER TABLE customers DROP COLUMN country")
    with pytest.raises(ConfigError, match="unknown column 'country'") as caught:
        run_activation("fr_vip")
    runs = activation_runs("fr_vip")
    assert [(run.id, run.status) for run in runs] == [(caught.value.run_id, "failed")]  # type: ignore[attr-defined]
    assert "unknown column 'country'" in (runs[0].error or "")
