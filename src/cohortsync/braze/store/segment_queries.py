"""Queries about segments: their rows, and their filter trees compiled to SQL.

A filter tree (see :mod:`cohortsync.braze.segments`) compiles to a ``SELECT
id FROM users WHERE ...`` so a segment's members are computed by the
database, whatever their number.

Custom attribute filters read the JSON text of ``braze_users.attributes``.
The statement stays one for both dialects: a :class:`AttributeTest` element
compiles to ``json_type`` / ``json_extract`` / ``json_each`` on SQLite and to
``CAST(... AS JSONB)`` with ``->``, ``jsonb_typeof`` and ``@>`` on
PostgreSQL, so that callers such as campaign delivery need not know the
dialect. Comparisons keep JSON types apart: the string ``"5"`` never equals
the number ``5``, and ``true`` is no number.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement

from cohortsync.braze.store.tables import (
    campaign_steps,
    campaigns,
    cohort_members,
    cohorts,
    partners,
    segments,
    users,
)

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


def update_segment(
    conn: sa.Connection, segment_id: str, *, name: str, filter_json: str, now: str
) -> None:
    conn.execute(
        sa.update(segments)
        .where(segments.c.id == segment_id)
        .values(name=name, filter=filter_json, updated_at=now)
    )


def delete_segment(conn: sa.Connection, segment_id: str) -> None:
    conn.execute(sa.delete(segments).where(segments.c.id == segment_id))


def campaigns_targeting(conn: sa.Connection, workspace_id: int, segment_id: str) -> list[str]:
    """``campaign 'name'`` / ``canvas 'name'`` of each one targeting the segment.

    A campaign targets it when its audience includes or excludes it, or a
    step narrows to it.

    The audiences are JSON arrays of segment ids, read here: a workspace has
    few campaigns.
    """
    found = []
    stepped = set(
        conn.execute(
            sa.select(campaign_steps.c.campaign_id).where(campaign_steps.c.segment_id == segment_id)
        ).scalars()
    )
    for row in conn.execute(
        sa.select(
            campaigns.c.id,
            campaigns.c.kind,
            campaigns.c.name,
            campaigns.c.include_segments,
            campaigns.c.exclude_segments,
        )
        .where(campaigns.c.workspace_id == workspace_id)
        .order_by(campaigns.c.kind, campaigns.c.name)
    ):
        audience = orjson.loads(row.include_segments) + orjson.loads(row.exclude_segments)
        if segment_id in audience or row.id in stepped:
            found.append(f"{row.kind} {row.name!r}")
    return found


def cohort_choices(conn: sa.Connection, workspace_id: int) -> list[Any]:
    """The cohorts a cohort filter may name: ``cohort_id``, ``name``, ``partner``,
    ``partner_display_name``, ``filter_name``, by partner then cohort name."""
    return list(
        conn.execute(
            sa.select(
                cohorts.c.cohort_id,
                cohorts.c.name,
                partners.c.name.label("partner"),
                partners.c.display_name.label("partner_display_name"),
                partners.c.filter_name,
            )
            .join(partners, partners.c.id == cohorts.c.partner_id)
            .where(cohorts.c.workspace_id == workspace_id)
            .order_by(partners.c.display_name, cohorts.c.name, cohorts.c.cohort_id)
        ).all()
    )


# ---------------------------------------------------------------- custom attribute tests


class AttributeTest(ColumnElement[bool]):
    """``users.attributes[name] <operator> value``, compiled by each dialect (see below).

    ``operator`` is one of the canonical names of :mod:`cohortsync.braze.segments`
    (``equals``, ``does_not_equal``, ``greater_than``, ``less_than``, ``exists``,
    ``does_not_exist``, ``includes_value``, ``does_not_include_value``); the
    value is a JSON scalar already checked there. A test is never NULL, so
    that negations and OR groups mean what they say for users without the
    attribute.
    """

    type = sa.Boolean()
    # Values are rendered as bound parameters at compile time: no statement cache.
    inherit_cache = False

    def __init__(self, name: str, operator: str, value: Any = None) -> None:
        self.name = name
        self.operator = operator
        self.value = value


NEGATIONS = {"does_not_equal": "equals", "does_not_include_value": "includes_value"}
OPERATOR_SYNONYMS = {"is_blank": "does_not_exist", "is_not_blank": "exists"}
"""Operator names a stored filter may use for another (Braze's words for booleans)."""


def _never_null(condition: ColumnElement[Any]) -> ColumnElement[bool]:
    return sa.func.coalesce(condition, sa.false(), type_=sa.Boolean)


def _attribute_test(test: AttributeTest, positive: Any) -> ColumnElement[bool]:
    """The test, from the dialect's ``positive(operator)`` of a value operator (maybe NULL)."""
    if test.operator in NEGATIONS:
        return sa.not_(_never_null(positive(NEGATIONS[test.operator])))
    return _never_null(positive(test.operator))


def _sqlite_test(test: AttributeTest) -> ColumnElement[bool]:
    """SQLite: ``json_type`` tells the JSON type (``integer``/``real``/``text``/``true``...)."""
    path = '$."' + test.name + '"'
    attributes = users.c.attributes
    json_type = sa.func.json_type(attributes, path)
    value = test.value

    def typed(kind: ColumnElement[Any], held: ColumnElement[Any]) -> ColumnElement[bool]:
        if isinstance(value, bool):
            return kind == ("true" if value else "false")
        if isinstance(value, str):
            return sa.and_(kind == "text", held == value)
        return sa.and_(kind.in_(("integer", "real")), held == value)

    def positive(operator: str) -> ColumnElement[bool]:
        if operator in ("exists", "does_not_exist"):
            kind = sa.func.coalesce(json_type, "null")
            return kind != "null" if operator == "exists" else kind == "null"
        if operator == "equals":
            return typed(json_type, sa.func.json_extract(attributes, path))
        if operator in ("greater_than", "less_than"):
            held = sa.func.json_extract(attributes, path)
            compared = held > value if operator == "greater_than" else held < value
            return sa.and_(json_type.in_(("integer", "real")), compared)
        if operator == "includes_value":
            elements = sa.func.json_each(attributes, path).table_valued("type", "value")
            found = sa.exists(
                sa.select(1).select_from(elements).where(typed(elements.c.type, elements.c.value))
            )
            return sa.and_(json_type == "array", found)
        raise ValueError(f"unknown attribute operator {operator!r}")

    return _attribute_test(test, positive)


def _postgresql_test(test: AttributeTest) -> ColumnElement[bool]:
    """PostgreSQL: ``jsonb`` equality and ordering are type-exact once the type is checked."""
    document = sa.cast(users.c.attributes, JSONB)
    held = document.op("->", return_type=JSONB)(sa.cast(sa.literal(test.name), sa.Text))
    json_type = sa.func.jsonb_typeof(held)
    value = test.value

    def as_jsonb(python: Any) -> ColumnElement[Any]:
        return sa.cast(sa.literal(orjson.dumps(python).decode(), sa.Text), JSONB)

    def positive(operator: str) -> ColumnElement[bool]:
        if operator in ("exists", "does_not_exist"):
            kind = sa.func.coalesce(json_type, "null")
            return kind != "null" if operator == "exists" else kind == "null"
        if operator == "equals":
            return held == as_jsonb(value)
        if operator in ("greater_than", "less_than"):
            wanted = as_jsonb(value)
            compared = held > wanted if operator == "greater_than" else held < wanted
            return sa.and_(json_type == "number", compared)
        if operator == "includes_value":
            contains = held.op("@>", return_type=sa.Boolean)(as_jsonb([value]))
            return sa.and_(json_type == "array", contains)
        raise ValueError(f"unknown attribute operator {operator!r}")

    return _attribute_test(test, positive)


@compiles(AttributeTest, "sqlite")
def _compile_sqlite(test: AttributeTest, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(_sqlite_test(test), **kw)


@compiles(AttributeTest, "postgresql")
def _compile_postgresql(test: AttributeTest, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(_postgresql_test(test), **kw)


# ---------------------------------------------------------------- filter trees


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
    if kind == "custom_attribute":
        operator = OPERATOR_SYNONYMS.get(tree["operator"], tree["operator"])
        return AttributeTest(tree["name"], operator, tree.get("value"))
    parts = [_condition(workspace_id, child) for child in tree["filters"]]
    return sa.and_(*parts) if kind == "and" else sa.or_(*parts)


def members_query(workspace_id: int, tree: dict[str, Any]) -> sa.Select[Any]:
    """``SELECT users.id`` of the workspace's users that a filter tree keeps.

    The tree must have passed :func:`cohortsync.braze.segments.validate_filter`.
    """
    return sa.select(users.c.id).where(
        users.c.workspace_id == workspace_id, _condition(workspace_id, tree)
    )


def members_count(conn: sa.Connection, workspace_id: int, tree: dict[str, Any]) -> int:
    """How many of the workspace's users the tree keeps, counted by the database."""
    query = sa.select(sa.func.count()).select_from(members_query(workspace_id, tree).subquery())
    return int(conn.execute(query).scalar_one())


def member_page(
    conn: sa.Connection, workspace_id: int, tree: dict[str, Any], *, offset: int, limit: int
) -> list[int]:
    """The ids of one page of the tree's members, in user id (creation) order."""
    query = members_query(workspace_id, tree).order_by(users.c.id).offset(offset).limit(limit)
    return [int(user_id) for user_id in conn.execute(query).scalars()]


def segments_of_user(conn: sa.Connection, workspace_id: int, user_id: int) -> list[dict[str, Any]]:
    """``{"id", "name"}`` of the workspace's segments whose filter keeps the user, by name."""
    rows = segment_rows(conn, workspace_id, order="name")
    trees = [(row.id, orjson.loads(row.filter)) for row in rows]
    kept = set(segments_holding(conn, workspace_id, user_id, trees))
    return [{"id": row.id, "name": row.name} for row in rows if row.id in kept]


SEGMENTS_PER_PROBE = 50
"""Segments tested in one statement by :func:`segments_holding`."""


def segments_holding(
    conn: sa.Connection, workspace_id: int, user_id: int, trees: Sequence[tuple[str, Any]]
) -> list[str]:
    """The ids among ``(segment id, valid tree)`` whose filter keeps the user.

    Each segment's condition becomes one column of a ``SELECT ... FROM users
    WHERE id = :user`` (a rowid / primary key probe), so a user's segments
    cost one statement per :data:`SEGMENTS_PER_PROBE` segments, not a count
    of each segment.
    """
    kept: list[str] = []
    for start in range(0, len(trees), SEGMENTS_PER_PROBE):
        part = trees[start : start + SEGMENTS_PER_PROBE]
        columns = [
            sa.case((_condition(workspace_id, tree), 1), else_=0).label(f"s{index}")
            for index, (_, tree) in enumerate(part)
        ]
        row = conn.execute(
            sa.select(*columns).where(users.c.id == user_id, users.c.workspace_id == workspace_id)
        ).first()
        if row is None:
            return []
        kept += [segment_id for (segment_id, _), flag in zip(part, row, strict=True) if flag]
    return kept
