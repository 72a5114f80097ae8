"""Parent segments: the customer tables that segments select from.

A parent names a table of the warehouse and its key column (one row per
customer). Creating one checks both against the warehouse at once, so a typo
fails here rather than at the first scheduled run.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from cohortsync.audience import store
from cohortsync.audience.compile import check_rules, column_kind, find_column, operators_for
from cohortsync.audience.mapping import check_mapping
from cohortsync.catalog import audiences
from cohortsync.catalog.audiences import SavedActivation, SavedParent, SavedSegment
from cohortsync.definitions import Parent, validated
from cohortsync.settings import Settings
from cohortsync.warehouse.connect import require_stored_warehouse


def parent_schema(parent: Parent, settings: Settings | None = None) -> pa.Schema:
    """The parent table's columns and types, read from the warehouse now.

    Raises:
        SourceError: the table is missing or the warehouse cannot be read.
    """
    with store.warehouse(parent.warehouse, settings) as engine:
        return engine.table_schema(parent.table)


@dataclass(frozen=True)
class ColumnInfo:
    """One column of a parent table as rules see it: its type, family and operators.

    ``kind`` is the family that decides which values fit (``text``, ``number``,
    ``boolean``, ``date``, ``timestamp``, ``other``); ``operators`` are those
    the rules accept on it.
    """

    name: str
    type: str
    kind: str
    operators: tuple[str, ...]

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "type": self.type}


def schema_columns(schema: pa.Schema) -> list[ColumnInfo]:
    """The columns of ``schema``, in table order, with what rules can do on each."""
    return [
        ColumnInfo(field.name, str(field.type), kind, operators_for(kind))
        for field in schema
        for kind in (column_kind(field.type),)
    ]


def table_columns(
    table: str, *, warehouse_url: str | None = None, settings: Settings | None = None
) -> list[ColumnInfo]:
    """The columns of a warehouse table, before any parent is saved on it.

    Raises:
        SourceError: the table is missing or the warehouse cannot be read.
    """
    with store.warehouse(warehouse_url, settings) as engine:
        return schema_columns(engine.table_schema(table))


def parent_columns(parent: Parent, settings: Settings | None = None) -> list[ColumnInfo]:
    """The parent table's columns now: what ``audience parent show`` lists and rules use."""
    return schema_columns(parent_schema(parent, settings))


def warehouse_tables(
    *, warehouse_url: str | None = None, settings: Settings | None = None
) -> list[str]:
    """The tables and views of the warehouse a parent can be declared on, sorted."""
    with store.warehouse(warehouse_url, settings) as engine:
        return engine.tables()


def parent_definition(
    name: str, table: str, key: str, *, warehouse_url: str | None, description: str | None
) -> Parent:
    """The :class:`Parent` of these fields, its warehouse stored and made absolute.

    Raises:
        ConfigError: a field breaks a rule of the definition, or the warehouse
            is in memory.
    """
    fields = {"name": name, "table": table, "key": key, "warehouse": warehouse_url}
    return _stored(validated(Parent, {**fields, "description": description}))


def _stored(parent: Parent) -> Parent:
    """``parent`` with a warehouse that outlives the command, its path made absolute.

    Raises:
        ConfigError: the warehouse is in memory.
    """
    warehouse_url = require_stored_warehouse(parent.warehouse, f"parent {parent.name!r}")
    return parent.model_copy(update={"warehouse": warehouse_url})


def _checked(parent: Parent, settings: Settings | None) -> pa.Schema:
    schema = parent_schema(parent, settings)
    find_column(schema, parent.key, table=parent.table, what="key column")
    return schema


def create_parent(
    name: str,
    table: str,
    key: str,
    *,
    warehouse_url: str | None = None,
    description: str | None = None,
    settings: Settings | None = None,
) -> SavedParent:
    """Save a new parent segment after checking its table and key column.

    Args:
        name: the parent's name, used by ``segment create --parent``.
        table: a table (or view) of the warehouse, ``name`` or ``schema.name``.
        key: the column that identifies one customer; sorts samples.
        warehouse_url: the warehouse holding ``table``; ``None`` is the configured one.

    Raises:
        ConfigError: the name is taken or invalid, or ``key`` is not a column.
        SourceError: the table cannot be read.
    """
    parent = parent_definition(
        name, table, key, warehouse_url=warehouse_url, description=description
    )
    _checked(parent, settings)
    with store.catalog(settings) as catalog:
        store.refuse_taken(catalog, SavedParent, name)
        return audiences.save(catalog, SavedParent, parent)


def upsert_parent(parent: Parent, *, settings: Settings | None = None) -> bool:
    """Create the parent or bring it to this definition; ``True`` if anything changed.

    When the table changes, the segments of this parent and the mappings of
    their activations are checked against the new table before anything is
    saved, so a change cannot strand them.

    Raises:
        ConfigError: the warehouse is in memory, ``key`` is not a column, or a
            segment or mapping would not fit the new table.
        SourceError: the table cannot be read.
    """
    parent = _stored(parent)
    with store.catalog(settings) as catalog:
        current = audiences.get(catalog, SavedParent, parent.name)
        if current is not None and current.model_dump() == parent.model_dump():
            return False
        schema = _checked(parent, settings)
        for segment in audiences.list_rows(catalog, SavedSegment, parent=parent.name):
            check_rules(segment.rules, schema, table=parent.table)
            for activation in audiences.list_rows(catalog, SavedActivation, segment=segment.name):
                check_mapping(activation, schema, table=parent.table)
        audiences.save(catalog, SavedParent, parent)
        return True


def get_parent(name: str, *, settings: Settings | None = None) -> SavedParent:
    """The parent named ``name``.

    Raises:
        ConfigError: there is none.
    """
    return store.get_saved(SavedParent, name, settings)


def list_parents(*, settings: Settings | None = None) -> list[SavedParent]:
    """Every parent segment, by name."""
    return store.list_saved(SavedParent, settings)


def delete_parent(name: str, *, settings: Settings | None = None) -> None:
    """Delete a parent segment that no segment uses.

    Raises:
        ConfigError: there is no such parent, or segments still use it.
    """
    store.delete_unused(SavedParent, name, users=SavedSegment, settings=settings)
