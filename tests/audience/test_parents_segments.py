"""Parents and segments against a real DuckDB warehouse and a real catalog in a temp home."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from cohortsync.audience.compile import RuleError
from cohortsync.audience.parents import (
    create_parent,
    delete_parent,
    get_parent,
    list_parents,
    upsert_parent,
)
from cohortsync.audience.segments import (
    create_segment,
    delete_segment,
    describe_segment,
    get_segment,
    list_segments,
    update_segment,
    upsert_segment,
)
from cohortsync.definitions import Parent, Segment
from cohortsync.errors import ConfigError, SourceError

from .conftest import INJECTION

FR = {"column": "country", "op": "=", "value": "FR"}


@pytest.fixture
def parent(warehouse: Path) -> str:
    create_parent("customers", "customers", "customer_id", description="all customers")
    return "customers"


def test_parent_is_checked_and_saved(parent: str) -> None:
    row = get_parent(parent)
    assert (row.table, row.key, row.description) == (
        "customers",
        "customer_id",
        "all customers",
    )
    assert [p.name for p in list_parents()] == ["customers"]


def test_parent_refuses_missing_table_key_and_taken_name(parent: str) -> None:
    with pytest.raises(SourceError, match="no table 'clients'"):
        create_parent("clients", "clients", "id")
    with pytest.raises(ConfigError, match=r"unknown key column 'customerid'.*customer_id"):
        create_parent("other", "customers", "customerid")
    with pytest.raises(ConfigError, match="a parent named 'customers' exists already"):
        create_parent("customers", "customers", "customer_id")
    with pytest.raises(ConfigError, match="invalid parent name"):
        create_parent("my parent; drop", "customers", "customer_id")
    assert [p.name for p in list_parents()] == ["customers"]


def test_upsert_parent_reports_changes_and_guards_its_segments(
    parent: str, warehouse: Path
) -> None:
    same = Parent(
        name="customers", table="customers", key="customer_id", description="all customers"
    )
    assert upsert_parent(same) is False
    assert upsert_parent(same.model_copy(update={"key": "email"})) is True
    assert get_parent("customers").key == "email"
    create_segment("adults", parent, {"column": "age", "op": ">=", "value": 18})
    with duckdb.connect(str(warehouse)) as conn:
        conn.execute("CREATE TABLE people AS SELECT customer_id, email FROM customers")
    with pytest.raises(RuleError, match="unknown column 'age' in table people"):
        upsert_parent(Parent(name="customers", table="people", key="customer_id"))
    assert get_parent("customers").table == "customers"


def test_segment_is_validated_saved_and_normalised(parent: str) -> None:
    row = create_segment(
        "fr", parent, '{"and": [{"column": "country", "op": "IN", "value": ["FR"]}]}'
    )
    assert row.rules == {"and": [{"column": "country", "op": "in", "value": ["FR"]}]}
    assert get_segment("fr").rules == row.rules
    with pytest.raises(RuleError, match="unknown column 'contry'"):
        create_segment("typo", parent, {"column": "contry", "op": "=", "value": "FR"})
    with pytest.raises(RuleError, match="value '18' does not fit column 'age'"):
        create_segment("wrong", parent, {"column": "age", "op": ">", "value": "18"})
    with pytest.raises(ConfigError, match="no parent named 'nobody'"):
        create_segment("orphan", "nobody", FR)
    with pytest.raises(ConfigError, match="a segment named 'fr' exists already"):
        create_segment("fr", parent, FR)
    assert [s.name for s in list_segments()] == ["fr"]
    assert list_segments(parent="other") == []


def test_rules_file_path(parent: str, tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text('{"column": "age", "op": "between", "value": [18, 30]}')
    create_segment("young", parent, str(rules))
    assert describe_segment("young").size == 3  # ages 18, 25, 30: both ends included
    with pytest.raises(ConfigError, match="rules file not found"):
        create_segment("nofile", parent, str(tmp_path / "missing.json"))
    rules.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        create_segment("badjson", parent, str(rules))


def test_describe_counts_in_the_warehouse_and_samples_by_key(parent: str) -> None:
    create_segment("fr", parent, FR)
    summary = describe_segment("fr")
    assert summary.size == 3
    assert summary.sql.sql == 'SELECT * FROM "customers" WHERE "country" = ?'
    assert summary.sql.params == ("FR",)
    assert summary.sample.column("customer_id").to_pylist() == ["c1", "c2", "c6"]
    assert describe_segment("fr", sample=2).sample.num_rows == 2
    data = summary.to_dict()
    assert data["size"] == 3 and data["sample"][0]["email"] == "ana@x.io"


def test_injection_value_matches_only_its_literal_row(parent: str) -> None:
    create_segment("tricky", parent, {"column": "nickname", "op": "=", "value": INJECTION})
    assert get_segment("tricky").rules["value"] == INJECTION
    summary = describe_segment("tricky")
    assert INJECTION not in summary.sql.sql
    assert summary.size == 1
    assert summary.sample.column("customer_id").to_pylist() == ["c1"]


def test_rules_are_checked_again_against_the_table_as_it_is(parent: str, warehouse: Path) -> None:
    create_segment("fr", parent, FR)
    with duckdb.connect(str(warehouse)) as conn:
        conn.execute("ALTER TABLE customers RENAME COLUMN country TO country_code")
    with pytest.raises(RuleError, match=r"unknown column 'country'.*did you mean 'country_code'"):
        describe_segment("fr")


def test_upsert_segment_and_delete_order(parent: str) -> None:
    fr = Segment(name="fr", parent=parent, rules=FR)
    assert upsert_segment(fr) is True
    assert upsert_segment(fr) is False
    assert upsert_segment(fr.model_copy(update={"description": "French customers"})) is True
    with pytest.raises(ConfigError, match="parent 'customers' is used by segments: fr"):
        delete_parent(parent)
    delete_segment("fr")
    with pytest.raises(ConfigError, match="no segment named 'fr'"):
        delete_segment("fr")
    delete_parent(parent)
    with pytest.raises(ConfigError, match="no parent named 'customers'"):
        get_parent(parent)


def test_update_segment_keeps_what_is_not_given(parent: str) -> None:
    create_segment("fr", parent, FR, description="French")
    updated = update_segment("fr", rules={"column": "country", "op": "in", "value": ["FR", "BE"]})
    assert updated.description == "French"
    assert describe_segment("fr").size == 4
    with pytest.raises(RuleError, match="unknown column 'land'"):
        update_segment("fr", rules={"column": "land", "op": "=", "value": "FR"})
    assert get_segment("fr").rules == updated.rules
    assert update_segment("fr", description="Benelux and France").rules == updated.rules
