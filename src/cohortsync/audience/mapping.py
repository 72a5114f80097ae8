"""The output mapping of an activation: which parent columns become identifiers.

The spec's Audience Studio rule: an output column is named ``user_ids`` for
Braze external ids, ``device_ids`` for device ids, or the activation's alias
column for aliases. Anything else would be ignored by the export, so it is
refused when the activation is saved, with the allowed names in the message.

Identifiers are strings in Braze. A text column maps as it is; another
column (numbers, dates...) is refused unless the activation asks to cast it
(``cast_to_string``), in which case the SQL reads ``CAST(col AS VARCHAR)`` in
the warehouse: the value is sent exactly as the warehouse prints it (a
``DECIMAL(10,2)`` id ``42`` becomes ``"42.00"``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pyarrow as pa

from cohortsync.audience.compile import column_kind, find_column, quote_identifier
from cohortsync.errors import ConfigError
from cohortsync.export.spec import DEVICE_IDS, USER_IDS


@dataclass(frozen=True)
class OutputMapping:
    """One ``ATTRIBUTE=OUTPUT`` pair: a parent column and its output column name."""

    attribute: str
    output: str

    def to_dict(self) -> dict[str, str]:
        return {"attribute": self.attribute, "output": self.output}

    def __str__(self) -> str:
        return f"{self.attribute}={self.output}"


MappingInput = str | OutputMapping | Mapping[str, str]
"""``"customer_id=user_ids"``, an :class:`OutputMapping`, or ``{"attribute": .., "output": ..}``."""


def parse_mapping(item: MappingInput) -> OutputMapping:
    """Read one mapping in any of the forms of :data:`MappingInput`.

    Raises:
        ConfigError: not ``ATTRIBUTE=OUTPUT`` with both sides non-empty.
    """
    if isinstance(item, OutputMapping):
        return item
    if isinstance(item, Mapping):
        attribute, output = item.get("attribute", ""), item.get("output", "")
    else:
        attribute, _, output = item.partition("=")
    attribute, output = attribute.strip(), output.strip()
    if not attribute or not output:
        raise ConfigError(
            f"invalid output mapping {item!r}",
            hint="write ATTRIBUTE=OUTPUT, e.g. --map customer_id=user_ids",
        )
    return OutputMapping(attribute, output)


def parse_mappings(items: Iterable[MappingInput]) -> list[OutputMapping]:
    """Read every mapping, keeping the user's order."""
    return [parse_mapping(item) for item in items]


def allowed_outputs(alias_column: str | None) -> list[str]:
    """The output names an activation may use: ``user_ids``, ``device_ids``, its alias column."""
    return [USER_IDS, DEVICE_IDS, *([alias_column] if alias_column else [])]


def check_mapping(
    mappings: list[OutputMapping],
    schema: pa.Schema,
    *,
    table: str,
    alias_column: str | None,
    cast_to_string: bool,
) -> None:
    """Refuse a mapping the export could not use, naming the fix.

    Raises:
        ConfigError: no mapping; an output name outside :func:`allowed_outputs`;
            an output used twice; an alias column named like a built-in output
            or never mapped; an attribute that is not a column of ``table``;
            a non-text attribute without ``cast_to_string``.
    """
    if alias_column in (USER_IDS, DEVICE_IDS):
        raise ConfigError(
            f"alias column {alias_column!r} clashes with the built-in output of that name",
            hint="name the alias column after its alias label, e.g. --alias-column email",
        )
    if not mappings:
        raise ConfigError(
            "an activation needs at least one output mapping",
            hint="add --map ATTRIBUTE=OUTPUT, e.g. --map customer_id=user_ids",
        )
    allowed = allowed_outputs(alias_column)
    seen: set[str] = set()
    for mapping in mappings:
        if mapping.output not in allowed:
            extra = "" if alias_column else " (or set --alias-column to send aliases)"
            raise ConfigError(
                f"output name {mapping.output!r} of mapping {mapping} is not allowed",
                hint=f"allowed output names: {', '.join(allowed)}{extra}",
            )
        if mapping.output in seen:
            raise ConfigError(
                f"output name {mapping.output!r} is mapped twice",
                hint="map each output name from one attribute",
            )
        seen.add(mapping.output)
        field = find_column(schema, mapping.attribute, table=table, what="attribute")
        kind = column_kind(field.type)
        if kind != "text" and not (cast_to_string and kind != "other"):
            hint = (
                "identifiers must be strings; use --cast-to-string to send its text form"
                if kind != "other"
                else "identifiers must be strings; map a text column"
            )
            raise ConfigError(
                f"attribute {mapping.attribute!r} of table {table} is {field.type}, not a string",
                hint=hint,
            )
    if alias_column and alias_column not in seen:
        raise ConfigError(
            f"alias column {alias_column!r} is set but no mapping outputs it",
            hint=f"add --map ATTRIBUTE={alias_column}, or drop --alias-column",
        )


def select_items(
    mappings: list[OutputMapping], schema: pa.Schema, *, cast_to_string: bool
) -> list[str]:
    """The SQL select items: ``"email" AS "email"``, ``CAST("id" AS VARCHAR) AS "user_ids"``.

    Call :func:`check_mapping` first: this assumes every attribute exists.
    """
    items = []
    for mapping in mappings:
        field = schema.field(mapping.attribute)
        column = quote_identifier(field.name)
        if cast_to_string and column_kind(field.type) != "text":
            column = f"CAST({column} AS VARCHAR)"
        items.append(f"{column} AS {quote_identifier(mapping.output)}")
    return items
