"""An activation's output mapping against the parent table: columns, types, the SQL.

The mapping's own rules (allowed output names, each output once, the alias
column mapped) are the definition's (:class:`cohortsync.definitions.Activation`).
What needs the table is checked here, when the activation is saved and at
every run.

Identifiers are strings in Braze. A text column maps as it is; another
column (numbers, dates...) is refused unless the activation asks to cast it
(``cast_to_string``), in which case the SQL reads ``CAST(col AS VARCHAR)`` in
the warehouse: the value is sent exactly as the warehouse prints it (a
``DECIMAL(10,2)`` id ``42`` becomes ``"42.00"``).
"""

from __future__ import annotations

import pyarrow as pa

from cohortsync.audience.compile import column_kind, find_column, quote_identifier
from cohortsync.definitions import Activation
from cohortsync.errors import ConfigError


def check_mapping(activation: Activation, schema: pa.Schema, *, table: str) -> None:
    """Refuse a mapping the export could not read from ``table``, naming the fix.

    Raises:
        ConfigError: an attribute that is not a column of ``table``, or a
            non-text attribute without ``cast_to_string``.
    """
    for mapping in activation.mapping:
        field = find_column(schema, mapping.attribute, table=table, what="attribute")
        kind = column_kind(field.type)
        if kind != "text" and not (activation.cast_to_string and kind != "other"):
            hint = (
                "identifiers must be strings; use --cast-to-string to send its text form"
                if kind != "other"
                else "identifiers must be strings; map a text column"
            )
            raise ConfigError(
                f"attribute {mapping.attribute!r} of table {table} is {field.type}, not a string",
                hint=hint,
            )


def select_items(activation: Activation, schema: pa.Schema) -> list[str]:
    """The SQL select items: ``"email" AS "email"``, ``CAST("id" AS VARCHAR) AS "user_ids"``.

    Call :func:`check_mapping` first: this assumes every attribute exists.
    """
    items = []
    for mapping in activation.mapping:
        field = schema.field(mapping.attribute)
        column = quote_identifier(field.name)
        if activation.cast_to_string and column_kind(field.type) != "text":
            column = f"CAST({column} AS VARCHAR)"
        items.append(f"{column} AS {quote_identifier(mapping.output)}")
    return items
