"""Definition -> catalog row -> definition, on a real SQLite catalog."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from cohortsync.catalog import audiences
from cohortsync.catalog.audiences import SavedActivation, SavedParent, SavedSegment
from cohortsync.catalog.auths import auth_fields, upsert_auth
from cohortsync.catalog.db import open_catalog
from cohortsync.definitions import (
    Activation,
    Authentication,
    Parent,
    QueryExport,
    Segment,
    validated,
)
from cohortsync.errors import ConfigError
from cohortsync.settings import Settings

PARENT = validated(
    Parent,
    {"name": "customers", "table": "crm.customers", "key": "id",
     "warehouse": "duckdb:////data/w.duckdb", "description": "every customer"},
)  # fmt: skip
SEGMENT = validated(
    Segment,
    {"name": "fr", "parent": "customers", "rules": {"column": "country", "op": "=", "value": "FR"}},
)
ACTIVATION = validated(
    Activation,
    {
        "name": "fr_vip", "segment": "fr", "auth": "prod", "cohort_id": "fr_vip",
        "cohort_name": "French VIPs", "operation": "mirror", "alias_column": "email",
        "mapping": ["id=user_ids", "email=email"], "threads": 64, "cast_to_string": True,
        "skip_invalid": True, "description": "daily", "schedule": "0 6 * * *",
        "timezone": "Europe/Paris", "mirror": {"allow_empty": True, "max_remove_pct": 12.5},
    },
)  # fmt: skip


@pytest.fixture
def catalog(home: Path) -> Iterator[sa.Engine]:
    engine = open_catalog(Settings().catalog_path)
    try:
        yield engine
    finally:
        engine.dispose()


def stored(catalog: sa.Engine, table: sa.Table, name: str) -> dict[str, Any]:
    with catalog.connect() as conn:
        row = conn.execute(sa.select(table).where(table.c.name == name)).mappings().one()
    return dict(row)


def test_audience_definitions_come_back_as_they_were_saved(catalog: sa.Engine) -> None:
    for kind, definition in (
        (SavedParent, PARENT),
        (SavedSegment, SEGMENT),
        (SavedActivation, ACTIVATION),
    ):
        saved = audiences.save(catalog, kind, definition)
        read = audiences.get(catalog, kind, definition.name)
        assert read is not None and read == saved
        assert read.model_dump() == definition.model_dump()
        assert read.created_at is not None and read.created_at.tzinfo is not None
    assert stored(catalog, audiences.parents, "customers") | {"created_at": 0, "updated_at": 0} == {
        "name": "customers", "table_name": "crm.customers", "key_column": "id",
        "warehouse_url": "duckdb:////data/w.duckdb", "description": "every customer",
        "created_at": 0, "updated_at": 0,
    }  # fmt: skip
    row = stored(catalog, audiences.activations, "fr_vip")
    assert {k: row[k] for k in ("auth_name", "schedule_cron", "schedule_timezone")} == {
        "auth_name": "prod",
        "schedule_cron": "0 6 * * *",
        "schedule_timezone": "Europe/Paris",
    }
    assert (row["skip_invalid"], row["mirror_allow_empty"], row["mirror_max_remove_pct"]) == (
        True,
        True,
        12.5,
    )
    assert row["mapping"] == [
        {"attribute": "id", "output": "user_ids"},
        {"attribute": "email", "output": "email"},
    ]


def test_a_replaced_definition_keeps_its_creation_time(catalog: sa.Engine) -> None:
    audiences.save(catalog, SavedParent, PARENT)
    audiences.save(catalog, SavedSegment, SEGMENT)
    first = audiences.save(catalog, SavedActivation, ACTIVATION)
    changed = ACTIVATION.model_copy(update={"skip_invalid": False, "threads": 2})
    second = audiences.save(catalog, SavedActivation, changed)
    assert second.created_at == first.created_at
    read = audiences.get(catalog, SavedActivation, "fr_vip")
    assert read is not None and (read.skip_invalid, read.threads) == (False, 2)
    assert stored(catalog, audiences.activations, "fr_vip")["skip_invalid"] is False


def test_a_stored_row_that_breaks_a_rule_is_named(catalog: sa.Engine) -> None:
    audiences.save(catalog, SavedParent, PARENT)
    audiences.save(catalog, SavedSegment, SEGMENT)
    audiences.save(catalog, SavedActivation, ACTIVATION)
    with catalog.begin() as conn:
        table = audiences.activations
        conn.execute(table.update().where(table.c.name == "fr_vip").values(threads=100))
    with pytest.raises(
        ConfigError,
        match=r"^the saved activation 'fr_vip' is invalid: thread count 100 is above 64",
    ):
        audiences.get(catalog, SavedActivation, "fr_vip")


def test_an_authentication_and_a_query_export_round_trip(catalog: sa.Engine) -> None:
    settings = Settings()
    auth = validated(
        Authentication,
        {"name": "prod", "endpoint": "https://rest.iad-01.braze.com/", "data_import_key": "k-01"},
    )
    assert upsert_auth(catalog, settings, auth) is True
    fields = auth_fields(catalog, settings, "prod")
    assert fields is not None
    assert validated(Authentication, {"name": "prod", **fields}) == auth
    assert upsert_auth(catalog, settings, auth) is False

    from cohortsync import queries

    export = validated(
        QueryExport, {"auth": "prod", "cohort_id": "gold", "threads": 8, "skip_invalid": True}
    )
    assert queries.save_query("gold", "SELECT 'a' AS user_ids", export=export) == "created"
    saved = queries.get_query("gold")
    assert saved.export == export
    assert saved.to_dict()["export"]["skip_invalid"] is True
