"""Parent segments: the customer tables that segments select from.

A parent names a table of the warehouse and its key column (one row per
customer). Creating one checks both against the warehouse at once, so a typo
fails here rather than at the first scheduled run.
"""

from __future__ import annotations

import pyarrow as pa
import sqlalchemy as sa

from cohortsync.audience import store
from cohortsync.audience.compile import check_rules, find_column
from cohortsync.audience.mapping import check_mapping, parse_mappings
from cohortsync.catalog import audiences
from cohortsync.catalog.audiences import ActivationRow, ParentRow, SegmentRow
from cohortsync.errors import ConfigError
from cohortsync.settings import Settings
from cohortsync.warehouse.connect import require_stored_warehouse


def parent_schema(parent: ParentRow, settings: Settings | None = None) -> pa.Schema:
    """The parent table's columns and types, read from the warehouse now.

    Raises:
        SourceError: the table is missing or the warehouse cannot be read.
    """
    with store.warehouse(parent.warehouse_url, settings) as engine:
        return engine.table_schema(parent.table_name)


def _checked(parent: ParentRow, settings: Settings | None) -> pa.Schema:
    store.check_name("parent", parent.name)
    schema = parent_schema(parent, settings)
    find_column(schema, parent.key_column, table=parent.table_name, what="key column")
    return schema


def create_parent(
    name: str,
    table: str,
    key: str,
    *,
    warehouse_url: str | None = None,
    description: str | None = None,
    settings: Settings | None = None,
) -> ParentRow:
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
    warehouse_url = require_stored_warehouse(warehouse_url, f"parent {name!r}")
    row = ParentRow(name, table, key, warehouse_url, description)
    _checked(row, settings)
    with store.catalog(settings) as catalog:
        if audiences.get(catalog, ParentRow, name) is not None:
            raise store.exists_already("parent", name)
        return audiences.save(catalog, row)


def upsert_parent(
    name: str,
    table: str,
    key: str,
    *,
    warehouse_url: str | None = None,
    description: str | None = None,
    settings: Settings | None = None,
) -> bool:
    """Create the parent or bring it to this definition; ``True`` if anything changed.

    When the table changes, the segments of this parent and the mappings of
    their activations are checked against the new table before anything is
    saved, so a change cannot strand them.
    """
    warehouse_url = require_stored_warehouse(warehouse_url, f"parent {name!r}")
    row = ParentRow(name, table, key, warehouse_url, description)
    with store.catalog(settings) as catalog:
        current = audiences.get(catalog, ParentRow, name)
        if current is not None and audiences.definition(current) == audiences.definition(row):
            return False
        schema = _checked(row, settings)
        for segment in audiences.list_rows(catalog, SegmentRow, parent=name):
            check_rules(segment.rules, schema, table=table)
            for activation in audiences.list_rows(catalog, ActivationRow, segment=segment.name):
                check_mapping(
                    parse_mappings(activation.mapping),
                    schema,
                    table=table,
                    alias_column=activation.alias_column,
                    cast_to_string=activation.cast_to_string,
                )
        audiences.save(catalog, row)
        return True


def get_parent(name: str, *, settings: Settings | None = None) -> ParentRow:
    """The parent named ``name``.

    Raises:
        ConfigError: there is none.
    """
    with store.catalog(settings) as catalog:
        row = audiences.get(catalog, ParentRow, name)
    if row is None:
        raise store.not_found("parent", name)
    return row


def list_parents(*, settings: Settings | None = None) -> list[ParentRow]:
    """Every parent segment, by name."""
    with store.catalog(settings) as catalog:
        return audiences.list_rows(catalog, ParentRow)


def delete_parent(name: str, *, settings: Settings | None = None) -> None:
    """Delete a parent segment that no segment uses.

    Raises:
        ConfigError: there is no such parent, or segments still use it.
    """
    with store.catalog(settings) as catalog:
        users = [s.name for s in audiences.list_rows(catalog, SegmentRow, parent=name)]
        if users:
            raise ConfigError(
                f"parent {name!r} is used by segments: {', '.join(users)}",
                hint="delete those segments first",
            )
        try:
            deleted = audiences.delete(catalog, ParentRow, name)
        except sa.exc.IntegrityError:  # a segment was created meanwhile
            raise ConfigError(
                f"parent {name!r} is used by a segment", hint="delete its segments first"
            ) from None
    if not deleted:
        raise store.not_found("parent", name)
