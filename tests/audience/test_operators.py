"""The operators offered per column type are exactly those the compiler accepts.

The console's segment builder offers :func:`operators_for` of each column's
kind; a mismatch would offer an operator that is then refused, or hide one
that works.
"""

from __future__ import annotations

import pyarrow as pa
import pytest

from cohortsync.audience.compile import RuleError, column_kind, compile_rules, operators_for
from cohortsync.audience.rules import NULL_TESTS, OPERATORS, parse_rules

# One column of each family, and a value of the right type for it.
COLUMNS = {
    "text": (pa.string(), "FR"),
    "number": (pa.int64(), 18),
    "boolean": (pa.bool_(), True),
    "date": (pa.date32(), "2024-05-31"),
    "timestamp": (pa.timestamp("us"), "2024-05-31T08:00:00"),
    "other": (pa.list_(pa.string()), "x"),
}


def condition(op: str, value: object) -> dict[str, object]:
    if op in NULL_TESTS:
        return {"column": "c", "op": op}
    if op in ("in", "between"):
        return {"column": "c", "op": op, "value": [value, value]}
    return {"column": "c", "op": op, "value": value}


@pytest.mark.parametrize("kind", sorted(COLUMNS))
def test_offered_operators_are_the_accepted_ones(kind: str) -> None:
    data_type, value = COLUMNS[kind]
    assert column_kind(data_type) == kind
    schema = pa.schema([pa.field("c", data_type)])
    accepted = []
    for op in OPERATORS:
        try:
            compile_rules(parse_rules(condition(op, value)), schema, table="t")
        except RuleError:
            continue
        accepted.append(op)
    assert tuple(accepted) == operators_for(kind)
