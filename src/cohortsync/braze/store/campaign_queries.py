"""Queries about campaigns and Canvases: their rows, audiences, launches and outbox.

A campaign's audience is a condition on the users table built from its
segments' filter trees (each compiled by :func:`segment_queries.members_query`),
so counting it or launching to it is one statement the database runs over
however many users. A launch renders every message inside that statement
too (:func:`message_expression`): ``INSERT INTO braze_campaign_sends ...
SELECT`` over the audience, one ``SELECT`` per step joined by ``UNION ALL``
so that every step reads the same snapshot of the users, on SQLite and on
PostgreSQL alike.

Who may launch a campaign is decided by a conditional ``UPDATE`` of its
status (:func:`claim`): of two service processes that find the same
campaign due, one changes the row and the other changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.elements import ColumnElement

from cohortsync.braze.store import segment_queries
from cohortsync.braze.store.tables import (
    campaign_launches,
    campaign_sends,
    campaign_steps,
    campaigns,
    segments,
    users,
)

Tree = dict[str, Any]


# ---------------------------------------------------------------- definitions


def insert_campaign(conn: sa.Connection, values: Mapping[str, Any]) -> None:
    conn.execute(sa.insert(campaigns).values(**values))


def update_campaign(conn: sa.Connection, campaign_id: str, values: Mapping[str, Any]) -> None:
    conn.execute(sa.update(campaigns).where(campaigns.c.id == campaign_id).values(**values))


def replace_steps(
    conn: sa.Connection, campaign_id: str, steps: Sequence[Mapping[str, Any]]
) -> None:
    """The campaign's steps become ``steps`` (``position``, ``name``, ``channel``,
    ``message``, ``segment_id``)."""
    conn.execute(sa.delete(campaign_steps).where(campaign_steps.c.campaign_id == campaign_id))
    if steps:
        conn.execute(
            sa.insert(campaign_steps), [{**step, "campaign_id": campaign_id} for step in steps]
        )


def campaign_row(conn: sa.Connection, workspace_id: int, kind: str, ref: str) -> Any:
    """The workspace's campaign (or Canvas) with that id, else that name, or None."""
    base = sa.select(campaigns).where(
        campaigns.c.workspace_id == workspace_id, campaigns.c.kind == kind
    )
    return (
        conn.execute(base.where(campaigns.c.id == ref)).first()
        or conn.execute(base.where(campaigns.c.name == ref)).first()
    )


def campaign_named(conn: sa.Connection, workspace_id: int, kind: str, name: str) -> str | None:
    found = conn.execute(
        sa.select(campaigns.c.id).where(
            campaigns.c.workspace_id == workspace_id,
            campaigns.c.kind == kind,
            campaigns.c.name == name,
        )
    ).scalar()
    return None if found is None else str(found)


def campaign_rows(
    conn: sa.Connection,
    workspace_id: int,
    kind: str,
    *,
    descending: bool = False,
    edited_after: str | None = None,
    offset: int = 0,
    limit: int | None = None,
) -> list[Any]:
    """The workspace's campaigns (or Canvases), by creation then id, a page at a time."""
    query = sa.select(campaigns).where(
        campaigns.c.workspace_id == workspace_id, campaigns.c.kind == kind
    )
    if edited_after is not None:
        query = query.where(campaigns.c.updated_at > edited_after)
    keys = [campaigns.c.created_at, campaigns.c.id]
    query = query.order_by(*(key.desc() if descending else key for key in keys))
    return list(conn.execute(query.offset(offset).limit(limit)).all())


def steps_of(conn: sa.Connection, campaign_id: str) -> list[Any]:
    return list(
        conn.execute(
            sa.select(campaign_steps)
            .where(campaign_steps.c.campaign_id == campaign_id)
            .order_by(campaign_steps.c.position)
        ).all()
    )


def launches_of(conn: sa.Connection, campaign_id: str) -> list[Any]:
    return list(
        conn.execute(
            sa.select(campaign_launches)
            .where(campaign_launches.c.campaign_id == campaign_id)
            .order_by(campaign_launches.c.id)
        ).all()
    )


def segment_names(conn: sa.Connection, workspace_id: int, ids: Iterable[str]) -> dict[str, str]:
    """``id -> name`` of those of the workspace's segments that exist."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = conn.execute(
        sa.select(segments.c.id, segments.c.name).where(
            segments.c.workspace_id == workspace_id, segments.c.id.in_(wanted)
        )
    ).all()
    return {row.id: row.name for row in rows}


def segment_trees(conn: sa.Connection, workspace_id: int, ids: Iterable[str]) -> dict[str, Tree]:
    """``id -> filter tree`` of those of the workspace's segments that exist."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = conn.execute(
        sa.select(segments.c.id, segments.c.filter).where(
            segments.c.workspace_id == workspace_id, segments.c.id.in_(wanted)
        )
    ).all()
    return {row.id: orjson.loads(row.filter) for row in rows}


# ---------------------------------------------------------------- audiences


def members_condition(workspace_id: int, tree: Tree) -> ColumnElement[bool]:
    """The WHERE of :func:`segment_queries.members_query`: a condition on ``users``."""
    condition = segment_queries.members_query(workspace_id, tree).whereclause
    assert condition is not None
    return condition


def audience_condition(
    workspace_id: int,
    include: Sequence[Tree],
    exclude: Sequence[Tree] = (),
    narrow: Sequence[Tree] = (),
) -> ColumnElement[bool]:
    """Users of the workspace in any ``include`` segment, in no ``exclude`` segment,
    and in every ``narrow`` segment (a Canvas step's narrowing, cumulated)."""
    parts: list[ColumnElement[bool]] = [users.c.workspace_id == workspace_id]
    parts.append(sa.or_(*(members_condition(workspace_id, tree) for tree in include)))
    if exclude:
        parts.append(sa.not_(sa.or_(*(members_condition(workspace_id, t) for t in exclude))))
    parts.extend(members_condition(workspace_id, tree) for tree in narrow)
    return sa.and_(*parts)


def count_users(conn: sa.Connection, condition: ColumnElement[bool]) -> int:
    return int(
        conn.execute(sa.select(sa.func.count()).select_from(users).where(condition)).scalar_one()
    )


# ---------------------------------------------------------------- rendering in SQL


def attribute_expression(dialect: str, name: str, source: str = "custom") -> ColumnElement[Any]:
    """The text an attribute prints as (see :func:`rendering.attribute_text`), NULL when absent.

    ``source`` says where it lives: ``custom`` (``users.attributes``),
    ``profile`` (Braze's profile fields, ``users.standard``) or ``column``
    (``users.email``, ``users.phone``). SQLite reads the JSON with
    ``json_extract``/``json_type``, PostgreSQL with ``->``/``->>`` on the text
    cast to ``json`` (not ``jsonb``, which would rewrite objects' spacing).
    """
    text = sa.String()
    if source == "column":
        return sa.cast(users.c[name], sa.String)
    document_text = users.c.standard if source == "profile" else users.c.attributes
    if dialect == "sqlite":
        path = sa.literal('$."' + name + '"', sa.String)
        kind = sa.func.json_type(document_text, path)
        value = sa.func.json_extract(document_text, path, type_=text)
        return sa.case(
            (kind == "true", sa.literal("true", sa.String)),
            (kind == "false", sa.literal("", sa.String)),
            else_=sa.cast(value, sa.String),
        )
    document = sa.cast(document_text, postgresql.JSON())
    key = sa.literal(name, sa.String)
    node = document.op("->")(key)
    printed = sa.type_coerce(document.op("->>")(key), sa.String)
    is_false = sa.and_(sa.func.json_typeof(node) == "boolean", printed == "false")
    return sa.case((is_false, sa.literal("", sa.String)), else_=printed)


def message_expression(dialect: str, parts: Sequence[Any]) -> ColumnElement[str]:
    """One SQL text expression rendering a compiled message for each row of ``users``.

    ``parts`` are those of :class:`cohortsync.braze.campaigns.rendering.Template`:
    literal strings, and slots with an ``attribute``, a ``default`` and a ``source``.
    """
    pieces: list[ColumnElement[Any]] = []
    for part in parts:
        if isinstance(part, str):
            pieces.append(sa.literal(part, sa.String))
            continue
        if part.attribute == "user_id":
            value: ColumnElement[Any] = users.c.external_id
        else:
            value = attribute_expression(dialect, part.attribute, part.source)
        if part.default is None:
            pieces.append(sa.func.coalesce(value, sa.literal("", sa.String), type_=sa.String))
        else:
            pieces.append(
                sa.func.coalesce(
                    sa.func.nullif(value, sa.literal("", sa.String), type_=sa.String),
                    sa.literal(part.default, sa.String),
                    type_=sa.String,
                )
            )
    if not pieces:
        return sa.literal("", sa.String)
    expression = pieces[0]
    for piece in pieces[1:]:
        expression = expression.concat(piece)
    return expression


# ---------------------------------------------------------------- launches


def claim(
    conn: sa.Connection,
    campaign_id: str,
    *,
    from_statuses: Sequence[str],
    now: str,
    due_by: str | None = None,
) -> bool:
    """Mark the campaign sent if its status is one of ``from_statuses`` (and, with
    ``due_by``, its send time has come); whether this call did it."""
    query = (
        sa.update(campaigns)
        .where(campaigns.c.id == campaign_id, campaigns.c.status.in_(list(from_statuses)))
        .values(status="sent", updated_at=now)
    )
    if due_by is not None:
        query = query.where(campaigns.c.send_at.is_not(None), campaigns.c.send_at <= due_by)
    return conn.execute(query).rowcount == 1


def due_campaign_ids(conn: sa.Connection, now: str) -> list[str]:
    """Ids of the scheduled campaigns and Canvases whose send time has come, oldest first."""
    return [
        str(row.id)
        for row in conn.execute(
            sa.select(campaigns.c.id)
            .where(campaigns.c.status == "scheduled", campaigns.c.send_at <= now)
            .order_by(campaigns.c.send_at, campaigns.c.id)
        )
    ]


def insert_launch(conn: sa.Connection, campaign_id: str, trigger: str, started_at: str) -> int:
    return int(
        conn.execute(
            sa.insert(campaign_launches)
            .values(campaign_id=campaign_id, trigger=trigger, started_at=started_at, messages=0)
            .returning(campaign_launches.c.id)
        ).scalar_one()
    )


def write_sends(
    conn: sa.Connection,
    launch_id: int,
    steps: Sequence[tuple[int, ColumnElement[str], ColumnElement[bool]]],
) -> int:
    """Write one message per user and step: ``(position, message expression, audience)``
    each. One statement, so every step sees the same users; returns the rows written."""
    selects = [
        sa.select(
            sa.literal(launch_id, sa.Integer),
            sa.literal(position, sa.Integer),
            users.c.id,
            users.c.external_id,
            message,
        ).where(audience)
        for position, message, audience in steps
    ]
    source = selects[0] if len(selects) == 1 else sa.union_all(*selects)
    columns = ["launch_id", "position", "user_id", "external_id", "message"]
    result = conn.execute(
        sa.insert(campaign_sends).from_select(columns, source),
        execution_options={"preserve_rowcount": True},  # an INSERT's count, on every driver
    )
    return int(result.rowcount)


def finish_launch(conn: sa.Connection, launch_id: int, finished_at: str, messages: int) -> None:
    conn.execute(
        sa.update(campaign_launches)
        .where(campaign_launches.c.id == launch_id)
        .values(finished_at=finished_at, messages=messages)
    )


def sends_by_step(conn: sa.Connection, launch_id: int) -> dict[int, int]:
    """``position -> messages`` of a launch."""
    rows = conn.execute(
        sa.select(campaign_sends.c.position, sa.func.count())
        .where(campaign_sends.c.launch_id == launch_id)
        .group_by(campaign_sends.c.position)
    ).all()
    return {int(position): int(count) for position, count in rows}


def sends_page(conn: sa.Connection, launch_id: int, *, offset: int, limit: int) -> list[Any]:
    """A launch's outbox rows by step then user, a page at a time."""
    return list(
        conn.execute(
            sa.select(
                campaign_sends.c.position,
                campaign_sends.c.user_id,
                campaign_sends.c.external_id,
                campaign_sends.c.message,
            )
            .where(campaign_sends.c.launch_id == launch_id)
            .order_by(campaign_sends.c.position, campaign_sends.c.user_id)
            .offset(offset)
            .limit(limit)
        ).all()
    )


def campaign_by_id(conn: sa.Connection, campaign_id: str) -> Any:
    """The campaign row with that id, whatever its workspace, or None."""
    return conn.execute(sa.select(campaigns).where(campaigns.c.id == campaign_id)).first()
