"""Catalog tables of the Audience Studio path: parents, segments, activations.

The objects are the definitions of :mod:`cohortsync.definitions`; this module
maps them to rows and back (``table`` is stored as ``table_name``, an
activation's mirror guards as two columns...). Checks against the warehouse
live in :mod:`cohortsync.audience`.
Segments refer to their parent and activations to their segment with foreign
keys that refuse a delete while something still uses the row, so a parent or
segment can never vanish from under an activation's schedule.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, TypeVar

import sqlalchemy as sa
from pydantic import BaseModel, Field, ValidationError

from cohortsync.catalog.db import definition_table, stored_utc
from cohortsync.catalog.rows import clamped_offset, delete_rows
from cohortsync.definitions import Activation, Parent, Segment
from cohortsync.definitions.fields import DEFAULT_MAX_REMOVE_PCT, Definition
from cohortsync.definitions.invalid import refusal
from cohortsync.errors import ConfigError


def _uses(column: str, table: str) -> sa.Column[str]:
    """A reference to a row of ``table`` by name, which refuses that row's delete."""
    return sa.Column(
        column, sa.String, sa.ForeignKey(f"{table}.name", ondelete="RESTRICT"), nullable=False
    )


parents = definition_table(
    "audience_parents",
    sa.Column("table_name", sa.String, nullable=False),
    sa.Column("key_column", sa.String, nullable=False),
    sa.Column("warehouse_url", sa.String, nullable=True),
    sa.Column("description", sa.String, nullable=True),
)

segments = definition_table(
    "audience_segments",
    _uses("parent", "audience_parents"),
    sa.Column("rules", sa.JSON, nullable=False),
    sa.Column("description", sa.String, nullable=True),
)

activations = definition_table(
    "audience_activations",
    _uses("segment", "audience_segments"),
    sa.Column("auth_name", sa.String, nullable=False),
    sa.Column("cohort_id", sa.String, nullable=False),
    sa.Column("cohort_name", sa.String, nullable=True),
    sa.Column("operation", sa.String, nullable=False),
    sa.Column("alias_column", sa.String, nullable=True),
    sa.Column("threads", sa.String, nullable=False),  # "auto" or a count (revision 0007)
    # [{"attribute": "customer_id", "output": "user_ids"}, ...] in the user's order
    sa.Column("mapping", sa.JSON, nullable=False),
    sa.Column("cast_to_string", sa.Boolean, nullable=False, default=False),
    sa.Column("description", sa.String, nullable=True),
    sa.Column("schedule_cron", sa.String, nullable=True),
    sa.Column("schedule_timezone", sa.String, nullable=False, default="UTC"),
    sa.Column("mirror_allow_empty", sa.Boolean, nullable=False, default=False),
    sa.Column("mirror_max_remove_pct", sa.Float, nullable=False, default=DEFAULT_MAX_REMOVE_PCT),
    sa.Column("skip_invalid", sa.Boolean, nullable=False, default=False, server_default=sa.false()),
    sa.Column("attribute_mode", sa.String, nullable=False, default="array", server_default="array"),
    sa.Column("attribute", sa.String, nullable=True),
    # The activation's Alerts (definitions.alerts) as one document, or NULL (revision 0008).
    sa.Column("alerts", sa.JSON(none_as_null=True), nullable=True),
)


class Stamped(BaseModel):
    """When the catalog saved a definition: set by the catalog, never part of the definition."""

    created_at: dt.datetime | None = Field(default=None, exclude=True)
    updated_at: dt.datetime | None = Field(default=None, exclude=True)


class SavedParent(Parent, Stamped):
    """A parent as stored in the catalog."""


class SavedSegment(Segment, Stamped):
    """A segment as stored in the catalog."""


class SavedActivation(Activation, Stamped):
    """An activation as stored in the catalog."""


Saved = SavedParent | SavedSegment | SavedActivation
S = TypeVar("S", SavedParent, SavedSegment, SavedActivation)

_TABLES: dict[type[Any], sa.Table] = {
    SavedParent: parents,
    SavedSegment: segments,
    SavedActivation: activations,
}
# A definition's field -> its column, where the two names differ.
_COLUMNS: dict[type[Any], dict[str, str]] = {
    SavedParent: {"table": "table_name", "key": "key_column", "warehouse": "warehouse_url"},
    SavedSegment: {},
    SavedActivation: {
        "auth": "auth_name",
        "schedule": "schedule_cron",
        "timezone": "schedule_timezone",
    },
}
# The mirror guards of an activation are two columns: mirror_allow_empty, ...
_MIRROR = "mirror"
_TIMESTAMPS = ("created_at", "updated_at")


def columns(definition: Definition, kind: type[Saved]) -> dict[str, Any]:
    """The column values of ``definition`` in ``kind``'s table (without timestamps)."""
    renames = _COLUMNS[kind]
    values: dict[str, Any] = {}
    for field, value in definition.model_dump().items():
        if field == _MIRROR:
            values.update({f"{_MIRROR}_{key}": item for key, item in value.items()})
        else:
            values[renames.get(field, field)] = value
    return values


def from_columns(kind: type[S], row: Mapping[Any, Any]) -> S:
    """The saved definition of one row of ``kind``'s table.

    Raises:
        ConfigError: the row breaks a rule of its definition (written by hand,
            or by a release with looser checks); the message names it.
    """
    fields = {column: field for field, column in _COLUMNS[kind].items()}
    data: dict[str, Any] = {}
    mirror: dict[str, Any] = {}
    for column, value in row.items():
        if column.startswith(f"{_MIRROR}_"):
            mirror[column.removeprefix(f"{_MIRROR}_")] = value
        elif column in _TIMESTAMPS:
            data[column] = stored_utc(value)
        else:
            data[fields.get(column, column)] = value
    if mirror:
        data[_MIRROR] = mirror
    try:
        return kind.model_validate(data)
    except ValidationError as error:
        problem = refusal(error)
        raise ConfigError(
            f"the saved {kind.kind} {row['name']!r} is invalid: {problem.message}",
            hint="delete it and create it again" + (f"; {problem.hint}" if problem.hint else ""),
        ) from None


def get(engine: sa.Engine, kind: type[S], name: str) -> S | None:
    """The definition named ``name``, or ``None``."""
    table = _TABLES[kind]
    with engine.connect() as conn:
        found = conn.execute(sa.select(table).where(table.c.name == name)).mappings().first()
    return from_columns(kind, found) if found is not None else None


def list_rows(engine: sa.Engine, kind: type[S], **where: str) -> list[S]:
    """Every definition of a kind, by name; ``where`` filters on equal columns (``parent="p"``)."""
    table = _TABLES[kind]
    query = sa.select(table).order_by(table.c.name)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    with engine.connect() as conn:
        return [from_columns(kind, found) for found in conn.execute(query).mappings()]


def save(engine: sa.Engine, kind: type[S], definition: Definition) -> S:
    """Insert ``definition``, or replace the one of that name; returns it as stored.

    ``created_at`` is kept on replace; ``updated_at`` is now.
    """
    table = _TABLES[kind]
    now = dt.datetime.now(dt.UTC)
    values = columns(definition, kind)
    with engine.begin() as conn:
        existing = conn.execute(
            sa.select(table.c.created_at).where(table.c.name == definition.name)
        ).scalar_one_or_none()
        if existing is None:
            conn.execute(table.insert().values(**values, created_at=now, updated_at=now))
            created = now
        else:
            conn.execute(
                table.update()
                .where(table.c.name == definition.name)
                .values(**values, updated_at=now)
            )
            created = stored_utc(existing)
    return kind.model_validate(
        {**definition.model_dump(), "created_at": created, "updated_at": now}
    )


def delete(engine: sa.Engine, kind: type[Saved], name: str) -> bool:
    """Delete the definition named ``name``; ``False`` when there was none.

    Raises:
        sqlalchemy.exc.IntegrityError: another row still refers to it.
    """
    table = _TABLES[kind]
    return delete_rows(engine, table, table.c.name == name) > 0


def page_rows(
    engine: sa.Engine, kind: type[S], *, offset: int, limit: int, name_contains: str = ""
) -> tuple[list[S], int, int]:
    """One page of a kind's definitions by name: the rows, how many match, the offset used.

    Only the page is read (LIMIT/OFFSET) and only the count of the rest, so a
    list over thousands of definitions costs one page of them. ``name_contains``
    matches case-insensitively and literally (``%`` and ``_`` are plain
    characters); an offset past the end shows the last row's page.
    """
    table = _TABLES[kind]
    wanted = name_contains.strip()
    matching = table.c.name.icontains(wanted, autoescape=True) if wanted else sa.true()
    with engine.connect() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(table).where(matching))
        count = int(total.scalar_one())
        offset = clamped_offset(offset, count)
        query = sa.select(table).where(matching).order_by(table.c.name).offset(offset).limit(limit)
        rows = [from_columns(kind, found) for found in conn.execute(query).mappings()]
    return rows, count, offset


def count_rows(engine: sa.Engine, kind: type[Saved]) -> int:
    """How many definitions of a kind are saved."""
    table = _TABLES[kind]
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def count_users(
    engine: sa.Engine, users: type[Saved], column: str, names: list[str]
) -> dict[str, int]:
    """How many rows of ``users`` refer to each of ``names`` in ``column``; absent when none.

    For instance the activations of each segment of a page:
    ``count_users(engine, SavedActivation, "segment", names)``.
    """
    table = _TABLES[users]
    query = (
        sa.select(table.c[column], sa.func.count())
        .where(table.c[column].in_(names))
        .group_by(table.c[column])
    )
    with engine.connect() as conn:
        return {str(name): int(count) for name, count in conn.execute(query)}
