"""Catalog tables of the Audience Studio path: parents, segments, activations.

Rows only: validation against the warehouse lives in :mod:`cohortsync.audience`.
Segments refer to their parent and activations to their segment with foreign
keys that refuse a delete while something still uses the row, so a parent or
segment can never vanish from under an activation's schedule.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

import sqlalchemy as sa

from cohortsync.catalog.db import metadata

parents = sa.Table(
    "audience_parents",
    metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("table_name", sa.String, nullable=False),
    sa.Column("key_column", sa.String, nullable=False),
    sa.Column("warehouse_url", sa.String, nullable=True),
    sa.Column("description", sa.String, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

segments = sa.Table(
    "audience_segments",
    metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column(
        "parent",
        sa.String,
        sa.ForeignKey("audience_parents.name", ondelete="RESTRICT"),
        nullable=False,
    ),
    sa.Column("rules", sa.JSON, nullable=False),
    sa.Column("description", sa.String, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

activations = sa.Table(
    "audience_activations",
    metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column(
        "segment",
        sa.String,
        sa.ForeignKey("audience_segments.name", ondelete="RESTRICT"),
        nullable=False,
    ),
    sa.Column("auth_name", sa.String, nullable=False),
    sa.Column("cohort_id", sa.String, nullable=False),
    sa.Column("cohort_name", sa.String, nullable=True),
    sa.Column("operation", sa.String, nullable=False),
    sa.Column("alias_column", sa.String, nullable=True),
    sa.Column("threads", sa.Integer, nullable=False),
    # [{"attribute": "customer_id", "output": "user_ids"}, ...] in the user's order
    sa.Column("mapping", sa.JSON, nullable=False),
    sa.Column("cast_to_string", sa.Boolean, nullable=False, default=False),
    sa.Column("description", sa.String, nullable=True),
    sa.Column("schedule_cron", sa.String, nullable=True),
    sa.Column("schedule_timezone", sa.String, nullable=False, default="UTC"),
    sa.Column("mirror_allow_empty", sa.Boolean, nullable=False, default=False),
    sa.Column("mirror_max_remove_pct", sa.Float, nullable=False, default=50.0),
    sa.Column("skip_invalid", sa.Boolean, nullable=False, default=False, server_default=sa.false()),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class ParentRow:
    """A parent segment: a customer table of the warehouse and its key column."""

    name: str
    table_name: str
    key_column: str
    warehouse_url: str | None = None
    description: str | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


@dataclass(frozen=True)
class SegmentRow:
    """A segment: rules (the JSON tree of :mod:`cohortsync.audience.rules`) over a parent."""

    name: str
    parent: str
    rules: dict[str, Any]
    description: str | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


@dataclass(frozen=True)
class ActivationRow:
    """An activation: a segment exported to a Braze cohort, maybe on a schedule."""

    name: str
    segment: str
    auth_name: str
    cohort_id: str
    mapping: list[dict[str, str]] = field(default_factory=list)
    cohort_name: str | None = None
    operation: str = "add"
    alias_column: str | None = None
    threads: int = 4
    cast_to_string: bool = False
    description: str | None = None
    schedule_cron: str | None = None
    schedule_timezone: str = "UTC"
    mirror_allow_empty: bool = False
    mirror_max_remove_pct: float = 50.0
    skip_invalid: bool = False
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


Row = ParentRow | SegmentRow | ActivationRow
_TABLES: dict[type[Any], sa.Table] = {
    ParentRow: parents,
    SegmentRow: segments,
    ActivationRow: activations,
}
_TIMESTAMPS = ("created_at", "updated_at")
R = TypeVar("R", ParentRow, SegmentRow, ActivationRow)


def definition(row: Row) -> dict[str, Any]:
    """The row's user-set fields, without timestamps: what ``apply`` compares."""
    return {f.name: getattr(row, f.name) for f in fields(row) if f.name not in _TIMESTAMPS}


def get(engine: sa.Engine, kind: type[R], name: str) -> R | None:
    """The row named ``name``, or ``None``."""
    table = _TABLES[kind]
    with engine.connect() as conn:
        found = conn.execute(sa.select(table).where(table.c.name == name)).mappings().first()
    return kind(**found) if found is not None else None


def list_rows(engine: sa.Engine, kind: type[R], **where: str) -> list[R]:
    """Every row of a kind, by name; ``where`` filters on equal columns (``parent="p"``)."""
    table = _TABLES[kind]
    query = sa.select(table).order_by(table.c.name)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    with engine.connect() as conn:
        return [kind(**found) for found in conn.execute(query).mappings()]


def save(engine: sa.Engine, row: R) -> R:
    """Insert ``row``, or replace the definition of the row of that name.

    ``created_at`` is kept on replace; ``updated_at`` is now. Returns the row
    as stored.
    """
    table = _TABLES[type(row)]
    now = dt.datetime.now(dt.UTC)
    values = definition(row)
    with engine.begin() as conn:
        existing = conn.execute(
            sa.select(table.c.created_at).where(table.c.name == row.name)
        ).scalar_one_or_none()
        if existing is None:
            conn.execute(table.insert().values(**values, created_at=now, updated_at=now))
            created = now
        else:
            conn.execute(
                table.update().where(table.c.name == row.name).values(**values, updated_at=now)
            )
            created = existing
    return type(row)(**values, created_at=created, updated_at=now)


def delete(engine: sa.Engine, kind: type[Row], name: str) -> bool:
    """Delete the row named ``name``; ``False`` when there was none.

    Raises:
        sqlalchemy.exc.IntegrityError: another row still refers to it.
    """
    table = _TABLES[kind]
    with engine.begin() as conn:
        deleted = conn.execute(table.delete().where(table.c.name == name)).rowcount
    return bool(deleted)
