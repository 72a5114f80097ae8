"""Segments: rules over a parent table, kept as JSON, compiled to SQL when used.

Rules are checked against the parent table when the segment is saved, and
compiled again against the table as it is at every use, so a column dropped
since is reported by name rather than as a warehouse error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from cohortsync.audience import store
from cohortsync.audience.compile import CompiledSQL, RulesInput, as_rule, check_rules, select_sql
from cohortsync.audience.mapping import check_mapping
from cohortsync.audience.parents import get_parent, parent_schema
from cohortsync.audience.rules import rules_to_json
from cohortsync.catalog import audiences
from cohortsync.catalog.audiences import SavedActivation, SavedParent, SavedSegment
from cohortsync.definitions import Segment, validated
from cohortsync.settings import Settings

SAMPLE_SIZE = 10


@dataclass(frozen=True)
class SegmentQuery:
    """A segment resolved against its parent table as it is now."""

    segment: SavedSegment
    parent: SavedParent
    schema: pa.Schema
    where: CompiledSQL

    def select(self, columns: list[str] | None = None, *, limit: int | None = None) -> CompiledSQL:
        """The segment's rows (``columns`` are quoted select items), sorted by key if limited."""
        order = self.parent.key if limit is not None else None
        return select_sql(self.parent.table, self.where, columns, order_by=order, limit=limit)


def create_segment(
    name: str,
    parent: str,
    rules: RulesInput,
    *,
    description: str | None = None,
    settings: Settings | None = None,
) -> SavedSegment:
    """Save a new segment after checking its rules against the parent table.

    Raises:
        ConfigError: the name is taken or invalid, the parent is unknown, or
            the rules do not fit the table (:class:`RuleError`).
    """
    segment = _checked(_definition(name, parent, rules, description), settings)
    with store.catalog(settings) as catalog:
        store.refuse_taken(catalog, SavedSegment, name)
        return audiences.save(catalog, SavedSegment, segment)


def upsert_segment(segment: Segment, *, settings: Settings | None = None) -> bool:
    """Create the segment or bring it to this definition; ``True`` if anything changed.

    Raises:
        ConfigError: the parent is unknown, the rules do not fit its table
            (:class:`RuleError`), or a new parent would not fit the segment's
            activations' mappings.
    """
    segment = _checked(segment, settings)
    with store.catalog(settings) as catalog:
        current = audiences.get(catalog, SavedSegment, segment.name)
        if current is not None and current.model_dump() == segment.model_dump():
            return False
        if current is not None and current.parent != segment.parent:
            _check_activations_fit(catalog, segment.name, segment.parent, settings)
        audiences.save(catalog, SavedSegment, segment)
        return True


def update_segment(
    name: str,
    *,
    rules: RulesInput | None = None,
    parent: str | None = None,
    description: str | None = None,
    settings: Settings | None = None,
) -> SavedSegment:
    """Change a segment's rules, parent or description; ``None`` keeps the current one.

    The result is checked like a new segment, and a new parent must keep the
    segment's activations' mappings valid. Activations pick the change up at
    their next run.

    Raises:
        ConfigError: unknown segment or parent, or rules that do not fit the table.
    """
    current = get_segment(name, settings=settings)
    segment = _definition(
        name,
        parent if parent is not None else current.parent,
        rules if rules is not None else current.rules,
        description if description is not None else current.description,
    )
    upsert_segment(segment, settings=settings)
    return get_segment(name, settings=settings)


def _check_activations_fit(
    catalog: sa.Engine, name: str, parent: str, settings: Settings | None
) -> None:
    """Moving a segment to another parent must keep its activations' mappings valid."""
    parent_row = get_parent(parent, settings=settings)
    schema = parent_schema(parent_row, settings)
    for activation in audiences.list_rows(catalog, SavedActivation, segment=name):
        check_mapping(activation, schema, table=parent_row.table)


def _definition(name: str, parent: str, rules: RulesInput, description: str | None) -> Segment:
    """The :class:`Segment` of these fields, its rules (tree, JSON or file) as a JSON object."""
    fields = {"name": name, "parent": parent, "rules": rules_to_json(as_rule(rules))}
    return validated(Segment, {**fields, "description": description})


def _checked(segment: Segment, settings: Settings | None) -> Segment:
    """``segment`` with its rules in their saved form, once they fit the parent table.

    Raises:
        ConfigError: the parent is unknown or the rules do not fit its table.
    """
    rule = as_rule(segment.rules)
    parent_row = get_parent(segment.parent, settings=settings)
    check_rules(rule, parent_schema(parent_row, settings), table=parent_row.table)
    return segment.model_copy(update={"rules": rules_to_json(rule)})


def count_matching(parent: str, rules: RulesInput, *, settings: Settings | None = None) -> int:
    """How many rows of ``parent``'s table ``rules`` select now, counted in the warehouse.

    What a segment would hold before it is saved (the builder's live count).

    Raises:
        ConfigError: unknown parent, or rules that do not fit its table (:class:`RuleError`).
        SourceError: the table cannot be read.
    """
    parent_row = get_parent(parent, settings=settings)
    with store.warehouse(parent_row.warehouse, settings) as engine:
        where = check_rules(rules, engine.table_schema(parent_row.table), table=parent_row.table)
        query = select_sql(parent_row.table, where)
        return engine.count(query.sql, query.params)


def get_segment(name: str, *, settings: Settings | None = None) -> SavedSegment:
    """The segment named ``name``.

    Raises:
        ConfigError: there is none.
    """
    return store.get_saved(SavedSegment, name, settings)


def list_segments(
    *, parent: str | None = None, settings: Settings | None = None
) -> list[SavedSegment]:
    """Every segment by name, or those of one parent."""
    return store.list_saved(SavedSegment, settings, parent=parent)


def delete_segment(name: str, *, settings: Settings | None = None) -> None:
    """Delete a segment that no activation uses.

    Raises:
        ConfigError: there is no such segment, or activations still use it.
    """
    store.delete_unused(SavedSegment, name, users=SavedActivation, settings=settings)


def resolve_segment(name: str, *, settings: Settings | None = None) -> SegmentQuery:
    """Compile a saved segment against its parent table as it is now.

    Raises:
        ConfigError: unknown segment or parent; rules that no longer fit the table.
        SourceError: the parent table cannot be read.
    """
    segment = get_segment(name, settings=settings)
    parent = get_parent(segment.parent, settings=settings)
    schema = parent_schema(parent, settings)
    where = check_rules(segment.rules, schema, table=parent.table)
    return SegmentQuery(segment, parent, schema, where)


@dataclass(frozen=True)
class SegmentSummary:
    """What ``segment show`` prints: the definition, its size and a few rows."""

    segment: SavedSegment
    parent: SavedParent
    sql: CompiledSQL
    size: int
    sample: pa.Table

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.segment.name,
            "parent": self.parent.name,
            "table": self.parent.table,
            "key": self.parent.key,
            "description": self.segment.description,
            "rules": self.segment.rules,
            "sql": self.sql.sql,
            "params": [_jsonable(value) for value in self.sql.params],
            "size": self.size,
            "sample": self.sample.to_pylist(),
        }


def _jsonable(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool) else str(value)


def describe_segment(
    name: str, *, sample: int = SAMPLE_SIZE, settings: Settings | None = None
) -> SegmentSummary:
    """Count a segment's rows and read the first ``sample`` of them by key, in the warehouse."""
    query = resolve_segment(name, settings=settings)
    full = query.select()
    first = query.select(limit=sample)
    with store.warehouse(query.parent.warehouse, settings) as engine:
        size = engine.count(full.sql, full.params)
        rows = engine.stream(first.sql, first.params).read_all()
    return SegmentSummary(query.segment, query.parent, full, size, rows)
