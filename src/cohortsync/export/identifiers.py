"""Which columns of a result are identifiers, checked once from the schema.

The spec (sections 1 and 3) names three identifier columns: ``user_ids``,
``device_ids`` and the configured alias column. Checking the Arrow schema
before the first row is read lets a wrong result fail before any request is
sent, with a message that names what was found and what was expected.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from cohortsync.errors import SourceError
from cohortsync.export.spec import DEVICE_IDS, USER_IDS

ALIAS = "alias"
KINDS: tuple[str, ...] = (USER_IDS, DEVICE_IDS, ALIAS)
"""Identifier kinds; the index is the kind's code in the staging database."""


@dataclass(frozen=True)
class IdentifierColumns:
    """The identifier columns present in a result, by kind.

    ``columns`` maps a kind (``user_ids``, ``device_ids``, ``alias``) to the
    result column holding it; ``ignored`` lists the other columns.
    """

    columns: dict[str, str]
    ignored: tuple[str, ...]
    alias_label: str | None

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(kind for kind in KINDS if kind in self.columns)


def is_string_type(data_type: pa.DataType) -> bool:
    """Strings in any Arrow layout (plain, large, view, dictionary-encoded)."""
    if pa.types.is_dictionary(data_type):
        return is_string_type(data_type.value_type)
    return bool(
        pa.types.is_string(data_type)
        or pa.types.is_large_string(data_type)
        or pa.types.is_string_view(data_type)
    )


def identifier_columns(schema: pa.Schema, alias_column: str | None) -> IdentifierColumns:
    """Find and check the identifier columns of a result schema.

    Raises:
        SourceError: no identifier column, one that is not a string column, or
            two columns of the same identifier name.
    """
    wanted = {USER_IDS: USER_IDS, DEVICE_IDS: DEVICE_IDS}
    if alias_column:
        wanted[ALIAS] = alias_column
    names = list(schema.names)
    columns = {kind: column for kind, column in wanted.items() if column in names}
    if not columns:
        expected = ", ".join(repr(column) for column in wanted.values())
        found = ", ".join(repr(name) for name in names) or "none"
        hint = "rename a column in the query, e.g. 'SELECT external_id AS user_ids ...'"
        if not alias_column:
            hint += ", or name an alias column with --alias-column"
        raise SourceError(
            f"the result has no identifier column: found {found}; expected at least one of "
            f"{expected}",
            hint=hint,
        )
    for column in columns.values():
        if names.count(column) > 1:
            raise SourceError(
                f"the result has {names.count(column)} columns named {column!r}",
                hint="give each identifier column one name in the query",
            )
        data_type = schema.field(column).type
        if not is_string_type(data_type):
            raise SourceError(
                f"identifier column {column!r} has type {data_type}, not a string",
                hint=f"cast it in the query, e.g. 'CAST({column} AS VARCHAR) AS {column}'",
            )
    used = set(columns.values())
    ignored = tuple(name for name in names if name not in used)
    return IdentifierColumns(columns=columns, ignored=ignored, alias_label=alias_column)
