"""Queries about segments: their rows, and their filter trees compiled to SQL.

A filter tree (see :mod:`cohortsync.braze.segments`) compiles to a ``SELECT
id FROM users WHERE ...`` so a segment's members are computed by the
database, whatever their number.
"""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from cohortsync.braze.store.tables import cohort_members, cohorts, segments, users

SegmentOrder = Literal["name", "created"]


def segment_rows(
    conn: sa.Connection,
    workspace_id: int,
    *,
    order: SegmentOrder = "name",
    descending: bool = False,
    offset: int = 0,
    limit: int | None = None,
) -> list[Any]:
    """The workspace's segment rows, by name or by creation (then name), a page at a time.

    The one listing behind both ``/segments/list`` and ``braze segment list``.
    """
    keys = [segments.c.name] if order == "name" else [segments.c.created_at, segments.c.name]
    return list(
        conn.execute(
            sa.select(segments)
            .where(segments.c.workspace_id == workspace_id)
            .order_by(*(key.desc() if descending else key for key in keys))
            .offset(offset)
            .limit(limit)
        ).all()
    )


def segment_row(
    conn: sa.Connection, workspace_id: int, segment_id: str, *, or_name: bool = False
) -> Any:
    """The segment with that id (or, with ``or_name``, that name), or None."""
    wanted = segments.c.id == segment_id
    if or_name:
        wanted = sa.or_(segments.c.name == segment_id, wanted)
    return conn.execute(
        sa.select(segments).where(segments.c.workspace_id == workspace_id, wanted)
    ).first()


def segment_named(conn: sa.Connection, workspace_id: int, name: str) -> str | None:
    """The id of the workspace's segment of that name, or None."""
    found = conn.execute(
        sa.select(segments.c.id).where(
            segments.c.workspace_id == workspace_id, segments.c.name == name
        )
    ).scalar()
    return None if found is None else str(found)


def insert_segment(
    conn: sa.Connection,
    *,
    segment_id: str,
    workspace_id: int,
    name: str,
    filter_json: str,
    now: str,
) -> None:
    conn.execute(
        sa.insert(segments).values(
            id=segment_id,
            workspace_id=workspace_id,
            name=name,
            filter=filter_json,
            created_at=now,
            updated_at=now,
        )
    )


def _condition(workspace_id: int, tree: dict[str, Any]) -> ColumnElement[bool]:
    kind = tree["type"]
    if kind == "cohort":
        cohort_pk = (
            sa.select(cohorts.c.id)
            .where(cohorts.c.workspace_id == workspace_id, cohorts.c.cohort_id == tree["cohort_id"])
            .scalar_subquery()
        )
        members = sa.select(cohort_members.c.user_id).where(cohort_members.c.cohort_pk == cohort_pk)
        return users.c.id.in_(members) if tree["includes"] else users.c.id.not_in(members)
    if kind == "external_id":
        return (
            users.c.external_id.is_not(None) if tree["present"] else users.c.external_id.is_(None)
        )
    parts = [_condition(workspace_id, child) for child in tree["filters"]]
    return sa.and_(*parts) if kind == "and" else sa.or_(*parts)


def members_query(workspace_id: int, tree: dict[str, Any]) -> sa.Select[Any]:
    """``SELECT users.id`` of the workspace's users that a (valid) filter tree keeps."""
    return sa.select(users.c.id).where(
        users.c.workspace_id == workspace_id, _condition(workspace_id, tree)
    )
