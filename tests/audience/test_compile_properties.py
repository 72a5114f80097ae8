"""Properties of rule compilation, checked by Hypothesis against a real DuckDB database.

- Any text is a value: whatever a user types (quotes, comments, semicolons),
  ``column = value`` matches exactly the rows holding that text.
- Any rule tree means what SQL's three-valued logic says: the rows DuckDB
  returns for the compiled SQL are the rows a direct evaluation selects.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cohortsync.audience.compile import compile_rules, select_sql
from cohortsync.audience.rules import And, Condition, Not, Or, Rule, parse_rules

ROWS: list[tuple[int, str | None, int | None]] = [
    (1, "a", 1),
    (2, "b", 5),
    (3, None, 3),
    (4, "a'b", None),
    (5, "%_", 10),
    (6, "", 0),
]


@pytest.fixture(scope="module")
def conn() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(":memory:")
    connection.execute("CREATE TABLE t (id INTEGER, name VARCHAR, n INTEGER)")
    connection.executemany("INSERT INTO t VALUES (?, ?, ?)", ROWS)
    yield connection
    connection.close()


SCHEMA = pa.schema([("id", pa.int32()), ("name", pa.string()), ("n", pa.int32())])


def selected(conn: duckdb.DuckDBPyConnection, rule: Rule) -> list[int]:
    query = select_sql("t", compile_rules(rule, SCHEMA, table="t"), ['"id"'])
    cursor = conn.cursor()
    try:
        return sorted(row[0] for row in cursor.execute(query.sql, list(query.params)).fetchall())
    finally:
        cursor.close()


@settings(
    max_examples=150,
    deadline=None,
)
@given(value=st.text(max_size=30))
def test_any_text_is_a_value(conn: duckdb.DuckDBPyConnection, value: str) -> None:
    value = value.replace("\x00", "")
    cursor = conn.cursor()
    try:
        cursor.execute("DELETE FROM t WHERE id = 99")
        cursor.execute("INSERT INTO t VALUES (99, ?, NULL)", [value])
    finally:
        cursor.close()
    expected = sorted({99} | {row[0] for row in ROWS if row[1] == value})
    rule = parse_rules({"column": "name", "op": "=", "value": value})
    assert selected(conn, rule) == expected
    assert selected(conn, parse_rules({"column": "name", "op": "in", "value": [value]})) == expected


# --- a direct evaluator with SQL's three-valued logic (None is UNKNOWN) -----------------


def _compare(op: str, left: Any, right: Any) -> bool | None:
    if left is None:
        return None
    return {
        "=": left == right,
        "!=": left != right,
        "<": left < right,
        "<=": left <= right,
        ">": left > right,
        ">=": left >= right,
    }[op]


def evaluate(rule: Rule, row: dict[str, Any]) -> bool | None:
    if isinstance(rule, Condition):
        value = row[rule.column]
        if rule.op == "is null":
            return value is None
        if rule.op == "is not null":
            return value is not None
        if value is None:
            return None
        if rule.op == "in":
            assert isinstance(rule.value, list)
            return value in rule.value
        if rule.op == "between":
            assert isinstance(rule.value, list)
            return bool(rule.value[0] <= value <= rule.value[1])
        return _compare(rule.op, value, rule.value)
    if isinstance(rule, Not):
        inner = evaluate(rule.rule, row)
        return None if inner is None else not inner
    results = [evaluate(child, row) for child in rule.rules]
    if isinstance(rule, And):
        if False in results:
            return False
        return None if None in results else True
    assert isinstance(rule, Or)
    if True in results:
        return True
    return None if None in results else False


names = st.sampled_from(["a", "b", "a'b", "%_", "", "z"])
numbers = st.integers(min_value=-1, max_value=11)


def conditions() -> st.SearchStrategy[dict[str, Any]]:
    comparison = st.sampled_from(["=", "!=", "<", "<=", ">", ">="])
    return st.one_of(
        st.builds(lambda op, v: {"column": "name", "op": op, "value": v}, comparison, names),
        st.builds(lambda op, v: {"column": "n", "op": op, "value": v}, comparison, numbers),
        st.builds(
            lambda v: {"column": "n", "op": "in", "value": v},
            st.lists(numbers, min_size=1, max_size=3),
        ),
        st.builds(
            lambda v: {"column": "name", "op": "in", "value": v},
            st.lists(names, min_size=1, max_size=3),
        ),
        st.builds(
            lambda lo, hi: {"column": "n", "op": "between", "value": [lo, hi]}, numbers, numbers
        ),
        st.builds(
            lambda column, op: {"column": column, "op": op},
            st.sampled_from(["name", "n"]),
            st.sampled_from(["is null", "is not null"]),
        ),
    )


trees = st.recursive(
    conditions(),
    lambda children: st.one_of(
        st.builds(lambda rules: {"and": rules}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda rules: {"or": rules}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda rule: {"not": rule}, children),
    ),
    max_leaves=8,
)


@settings(
    max_examples=200,
    deadline=None,
)
@given(tree=trees)
def test_any_rule_tree_selects_what_sql_logic_says(
    conn: duckdb.DuckDBPyConnection, tree: dict[str, Any]
) -> None:
    rule = parse_rules(tree)
    expected = sorted(
        row[0] for row in ROWS if evaluate(rule, {"id": row[0], "name": row[1], "n": row[2]})
    )
    cursor = conn.cursor()
    try:
        cursor.execute("DELETE FROM t WHERE id = 99")
    finally:
        cursor.close()
    assert selected(conn, rule) == expected
