"""Table names given on the command line: checked once, quoted the same everywhere.

Load targets are restricted to plain identifiers (``name`` or ``schema.name``)
so that a table name can never smuggle SQL into the statements built around
it, and so that the name a user types is the name the warehouse keeps.
"""

from __future__ import annotations

import re

from cohortsync.errors import ConfigError

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def split_table_name(table: str) -> tuple[str | None, str]:
    """``"schema.name"`` -> ``("schema", "name")``; ``"name"`` -> ``(None, "name")``.

    Raises:
        ConfigError: the name is not one or two plain identifiers.
    """
    parts = table.split(".")
    if len(parts) > 2 or not all(_IDENTIFIER.fullmatch(part) for part in parts):
        raise ConfigError(
            f"invalid table name {table!r}",
            hint="use letters, digits and underscores, optionally as schema.table",
        )
    if len(parts) == 2:
        return parts[0], parts[1]
    return None, parts[0]


def quote_table_name(table: str, *, quote: str = '"') -> str:
    """The SQL text for ``table``, each part quoted.

    ``quote`` is ``"`` for DuckDB and PostgreSQL, a backtick for Spark SQL,
    which reads a double-quoted text as a string.
    """
    schema, name = split_table_name(table)
    quoted = f"{quote}{name}{quote}"
    return f"{quote}{schema}{quote}.{quoted}" if schema else quoted


def quote_identifier(name: str) -> str:
    """``name`` as a double-quoted SQL identifier, inner quotes doubled (any name)."""
    return '"' + name.replace('"', '""') + '"'


def sql_literal(text: str) -> str:
    """``text`` as a single-quoted SQL string literal, inner quotes doubled."""
    return "'" + text.replace("'", "''") + "'"
