"""Segments: filter trees over a workspace's users, compiled to one SQL query.

A filter is a small JSON tree, stored as text on the segment::

    {"type": "cohort", "cohort_id": "vip", "includes": true}
    {"type": "external_id", "present": false}
    {"type": "custom_attribute", "name": "plan", "operator": "equals", "value": "gold"}
    {"type": "and" | "or", "filters": [<filter>, ...]}

``cohort`` is the partner filter ("Treasure Data Cohorts includes / excludes
a cohort"); ``external_id`` tells identified users from anonymous ones;
``custom_attribute`` tests one attribute of the profile (see
:data:`OPERATORS`), so that campaigns can target what ``/users/track``
recorded. The tree compiles to one query in :mod:`.store.segment_queries`;
here it is built, checked and put in words. Trees stored before custom
attributes existed are valid trees of this grammar, unchanged.

Attribute comparisons keep JSON types apart, as Braze's typed attributes do:
a filter on the string ``"5"`` keeps no user whose attribute is the number
``5``. **[decision]** The negations ("does not equal", "does not include
value") keep exactly the users their positive form leaves out, users
without the attribute included.
"""

from __future__ import annotations

import math
from typing import Any

import orjson
import sqlalchemy as sa

from cohortsync.braze.store import cohort_queries
from cohortsync.errors import ConfigError

FILTER_SHAPE = (
    '{"type": "cohort", "cohort_id": ID, "includes": true|false}, '
    '{"type": "external_id", "present": true|false}, '
    '{"type": "custom_attribute", "name": NAME, "operator": OPERATOR, "value": VALUE}, '
    'or {"type": "and"|"or", "filters": [...]}'
)

OPERATORS = {
    "equals": "equals",
    "does_not_equal": "does not equal",
    "greater_than": "greater than",
    "less_than": "less than",
    "exists": "exists",
    "does_not_exist": "does not exist",
    "is_not_blank": "is not blank",
    "is_blank": "is blank",
    "includes_value": "includes value",
    "does_not_include_value": "does not include value",
}
"""Custom attribute operators, named as Braze's segment filters are, and their words.

``is_blank`` / ``is_not_blank`` are the words Braze shows for booleans; they
mean ``does_not_exist`` / ``exists``. A blank attribute is one that is
absent or JSON ``null``.
"""
VALUE_OPERATORS = ("equals", "does_not_equal", "includes_value", "does_not_include_value")
NUMBER_OPERATORS = ("greater_than", "less_than")
MAX_ATTRIBUTE_NAME = 255
MAX_DEPTH = 10
"""How deeply and / or groups may nest: deeper trees are refused, not recursed into."""


def cohort_filter(cohort_id: str, *, includes: bool = True) -> dict[str, Any]:
    return {"type": "cohort", "cohort_id": cohort_id, "includes": includes}


def external_id_filter(*, present: bool) -> dict[str, Any]:
    return {"type": "external_id", "present": present}


def attribute_filter(name: str, operator: str, value: Any = None) -> dict[str, Any]:
    """A custom attribute filter; ``value`` is left out for the presence operators."""
    tree: dict[str, Any] = {"type": "custom_attribute", "name": name, "operator": operator}
    if value is not None:
        tree["value"] = value
    return tree


def combine(kind: str, filters: list[dict[str, Any]]) -> dict[str, Any]:
    """``and`` / ``or`` of several filters; a single filter stands alone."""
    if len(filters) == 1:
        return filters[0]
    return {"type": kind, "filters": filters}


def validate_filter(
    conn: sa.Connection, workspace_id: int, tree: Any, path: str = "filter"
) -> None:
    """Check a filter tree's shape and that every cohort it names exists."""

    def bad(detail: str) -> ConfigError:
        return ConfigError(f"segment {path}: {detail}", hint=f"a filter is {FILTER_SHAPE}")

    if not isinstance(tree, dict):
        raise bad("not an object")
    kind = tree.get("type")
    if kind == "cohort":
        cohort_id = tree.get("cohort_id")
        if not isinstance(cohort_id, str) or not isinstance(tree.get("includes"), bool):
            raise bad("a cohort filter needs a string cohort_id and a boolean includes")
        if cohort_queries.cohort_with_filter_name(conn, workspace_id, cohort_id) is None:
            raise ConfigError(
                f"segment {path}: no cohort {cohort_id!r} in workspace {workspace_id}",
                hint="see 'cohortsync braze cohorts list'; a cohort exists once a partner sent it",
            )
    elif kind == "external_id":
        if not isinstance(tree.get("present"), bool):
            raise bad("an external_id filter needs a boolean present")
    elif kind == "custom_attribute":
        _validate_attribute_filter(tree, path)
    elif kind in ("and", "or"):
        children = tree.get("filters")
        if not isinstance(children, list) or not children:
            raise bad(f"an {kind} filter needs a non-empty filters array")
        if path.count(".filters[") >= MAX_DEPTH:
            raise bad(f"and / or groups nest more than {MAX_DEPTH} deep")
        for index, child in enumerate(children):
            validate_filter(conn, workspace_id, child, f"{path}.filters[{index}]")
    else:
        raise bad(f"unknown filter type {kind!r}")


def _validate_attribute_filter(tree: dict[str, Any], path: str) -> None:
    def bad(detail: str) -> ConfigError:
        return ConfigError(
            f"segment {path}: {detail}",
            hint=(
                '{"type": "custom_attribute", "name": NAME, "operator": OPERATOR, "value": VALUE} '
                f"with an OPERATOR among {', '.join(OPERATORS)}"
            ),
        )

    name = tree.get("name")
    if not isinstance(name, str) or not name.strip():
        raise bad("a custom_attribute filter needs a non-empty string name")
    if len(name) > MAX_ATTRIBUTE_NAME:
        raise bad(f"the attribute name is longer than {MAX_ATTRIBUTE_NAME} characters")
    if any(char in name for char in '"\\') or any(ord(char) < 32 for char in name):
        raise bad(
            f"the attribute name {name!r} holds a double quote, a backslash or a control "
            "character, which no filter can name"
        )
    operator = tree.get("operator")
    if operator not in OPERATORS:
        raise bad(f"unknown operator {operator!r} for the attribute {name!r}")
    value = tree.get("value")
    if operator in NUMBER_OPERATORS:
        if not _is_number(value):
            raise bad(
                f"{operator} compares numbers: the value for {name!r} must be a number, "
                f"not {_shown(value)}"
            )
    elif operator in VALUE_OPERATORS:
        if not (isinstance(value, str | bool) or _is_number(value)):
            raise bad(
                f"{operator} needs a string, number or boolean value for {name!r}, "
                f"not {_shown(value)}"
            )
    elif value is not None:
        raise bad(f"{operator} takes no value (the attribute {name!r} is tested for presence)")


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and abs(value) < 2**63
    )


def _shown(value: Any) -> str:
    if value is None:
        return "no value"
    kind = {str: "the string", bool: "the boolean", list: "the array", dict: "the object"}
    return f"{kind.get(type(value), 'the value')} {value!r}"


def describe_filter(conn: sa.Connection, workspace_id: int, tree: dict[str, Any]) -> str:
    """The filter in words, as Braze's segment details show it."""
    kind = tree["type"]
    if kind == "cohort":
        row = cohort_queries.cohort_with_filter_name(conn, workspace_id, tree["cohort_id"])
        filter_name = row.filter_name if row else "Partner Cohorts"
        name = row.name if row else tree["cohort_id"]
        verb = "includes" if tree["includes"] else "excludes"
        return f"{filter_name} {verb} {name!r} ({tree['cohort_id']})"
    if kind == "external_id":
        return "External User ID " + ("is not blank" if tree["present"] else "is blank")
    if kind == "custom_attribute":
        return describe_attribute_filter(tree)
    joiner = " AND " if kind == "and" else " OR "
    return "(" + joiner.join(describe_filter(conn, workspace_id, c) for c in tree["filters"]) + ")"


def describe_attribute_filter(tree: dict[str, Any]) -> str:
    """``Custom Attribute 'plan' equals "gold"``: the value in JSON, so its type shows."""
    words = f"Custom Attribute {tree['name']!r} {OPERATORS[tree['operator']]}"
    if tree["operator"] in VALUE_OPERATORS + NUMBER_OPERATORS:
        words += " " + orjson.dumps(tree["value"]).decode()
    return words
