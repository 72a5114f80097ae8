"""Segments: filter trees over a workspace's users, compiled to one SQL query.

A filter is a small JSON tree, stored as text on the segment::

    {"type": "cohort", "cohort_id": "vip", "includes": true}
    {"type": "external_id", "present": false}
    {"type": "and" | "or", "filters": [<filter>, ...]}

``cohort`` is the partner filter ("Treasure Data Cohorts includes / excludes
a cohort"); ``external_id`` tells identified users from anonymous ones. The
tree compiles to one query in :mod:`.store.segment_queries`; here it is
built, checked and put in words.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from cohortsync.braze.store import cohort_queries
from cohortsync.errors import ConfigError

FILTER_SHAPE = (
    '{"type": "cohort", "cohort_id": ID, "includes": true|false}, '
    '{"type": "external_id", "present": true|false}, '
    'or {"type": "and"|"or", "filters": [...]}'
)


def cohort_filter(cohort_id: str, *, includes: bool = True) -> dict[str, Any]:
    return {"type": "cohort", "cohort_id": cohort_id, "includes": includes}


def external_id_filter(*, present: bool) -> dict[str, Any]:
    return {"type": "external_id", "present": present}


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
    elif kind in ("and", "or"):
        children = tree.get("filters")
        if not isinstance(children, list) or not children:
            raise bad(f"an {kind} filter needs a non-empty filters array")
        for index, child in enumerate(children):
            validate_filter(conn, workspace_id, child, f"{path}.filters[{index}]")
    else:
        raise bad(f"unknown filter type {kind!r}")


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
    joiner = " AND " if kind == "and" else " OR "
    return "(" + joiner.join(describe_filter(conn, workspace_id, c) for c in tree["filters"]) + ")"
