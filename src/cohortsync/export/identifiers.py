"""Which columns of a result are identifiers, checked once from the schema.

The spec (sections 1 and 3) names three identifier columns: ``user_ids``,
``device_ids`` and the configured alias column. Checking the Arrow schema
before the first row is read lets a wrong result fail before any request is
sent, with a message that names what was found and what was expected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from cohortsync.errors import SourceError
from cohortsync.export.spec import DEVICE_IDS, USER_IDS

ALIAS = "alias"
KINDS: tuple[str, ...] = (USER_IDS, DEVICE_IDS, ALIAS)
"""Identifier kinds; the index is the kind's code in the staging database."""

# What Braze would refuse, checked before the first request (see `invalid_reason`).
# 512 characters is the receiving service's bound (braze.store.MAX_IDENTIFIER_LENGTH:
# every identifier fits a PostgreSQL btree entry); 997 bytes is Braze's own bound
# on a user id (its SDKs reject longer ones), which multi-byte text reaches first.
MAX_IDENTIFIER_CHARS = 512
MAX_IDENTIFIER_BYTES = 997
# C0 controls (NUL included), DEL and C1 controls: Unicode category Cc. Braze
# matches identifiers byte for byte, so a stray tab or NUL never matches a user,
# and the receiving service refuses a NUL with 400 in the middle of a run.
CONTROL_PATTERN = r"[\x00-\x1f\x7f-\x{9f}]"
SAMPLE_INVALID = 5
"""How many invalid identifiers a report or a message names (the first rows)."""


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


@dataclass(frozen=True)
class InvalidIdentifier:
    """An identifier Braze would refuse, where the result holds it.

    ``row`` is the 1-based row number of the result, in the order the source
    returned its rows.
    """

    kind: str
    row: int
    value: str
    reason: str

    def describe(self) -> str:
        """``row 2,500: user_ids 'abc…' (600 characters) is longer than 512 characters``."""
        return f"row {self.row:,}: {self.kind} {shown(self.value)} {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "row": self.row,
            "value": shown(self.value),
            "reason": self.reason,
        }


def invalid_reason(value: str) -> str | None:
    """Why Braze would refuse ``value`` (too long, a control character), or None.

    Only called for the few values the vectorised checks flagged, to word the
    message; :func:`invalid_sql` and :func:`invalid_mask` decide which are invalid.
    """
    if len(value) > MAX_IDENTIFIER_CHARS:
        return f"is longer than {MAX_IDENTIFIER_CHARS} characters"
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > MAX_IDENTIFIER_BYTES:
        return f"is longer than {MAX_IDENTIFIER_BYTES} bytes in UTF-8 ({size:,})"
    for position, char in enumerate(value, 1):
        code = ord(char)
        if code < 0x20 or 0x7F <= code <= 0x9F:
            return f"holds the control character U+{code:04X} at character {position}"
    return None


def shown(value: str, keep: int = 40) -> str:
    """``value`` quoted for a one-line message: control characters escaped, long ones cut."""
    escaped = "".join(
        f"\\x{ord(c):02x}" if ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F else c for c in value[:keep]
    )
    escaped = escaped.replace("'", "\\'")
    if len(value) > keep:
        return f"'{escaped}…' ({len(value):,} characters)"
    return f"'{escaped}'"


def invalid_sql(value: str) -> str:
    """DuckDB condition: the VARCHAR expression ``value`` is one Braze would refuse.

    A regular expression on every value costs about a fifth of an export's time,
    so it runs only on the rare values a cheap test flags: longer than the
    character bound in bytes, non-ASCII, DEL, or changed by JSON escaping (which
    escapes every C0 control, and also quotes and backslashes).
    """
    return (
        f"(CASE WHEN strlen({value}) > {MAX_IDENTIFIER_CHARS} AND (length({value}) > "
        f"{MAX_IDENTIFIER_CHARS} OR strlen({value}) > {MAX_IDENTIFIER_BYTES}) THEN true"
        f" WHEN strlen(to_json({value})) <> strlen({value}) + 2 "
        f"OR strlen({value}) <> length({value}) OR contains({value}, chr(127)) "
        f"THEN regexp_matches({value}, '{CONTROL_PATTERN}') ELSE false END)"
    )


def invalid_mask(array: pa.Array, byte_lengths: pa.Array) -> pa.Array | None:
    """Which values of a string array Braze would refuse; None when none can be.

    Vectorised with Arrow: the lengths are the caller's ``binary_length``, and
    the regular expression runs only when the batch's bytes are not all
    printable ASCII (one min/max over the value buffer rules out the rest).
    """
    import pyarrow.compute as pc

    mask: pa.Array | None = None
    longest = pc.max(byte_lengths).as_py() or 0
    if longest > MAX_IDENTIFIER_CHARS:
        mask = pc.or_(
            pc.greater(pc.utf8_length(array), MAX_IDENTIFIER_CHARS),
            pc.greater(byte_lengths, MAX_IDENTIFIER_BYTES),
        )
    if not _printable_ascii(array):
        controls = pc.match_substring_regex(array, CONTROL_PATTERN)
        mask = controls if mask is None else pc.or_(mask, controls)
    if mask is None:
        return None
    return pc.fill_null(mask, False)


def _printable_ascii(array: pa.Array) -> bool:
    """Every byte of the array's values is printable ASCII (0x20 to 0x7E)."""
    import pyarrow.compute as pc

    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        return False  # string views: let the regular expression decide
    if len(array) == 0:
        return True
    width = 8 if pa.types.is_large_string(array.type) else 4
    bounds = array.buffers()[1]
    data = array.buffers()[2]
    if bounds is None or data is None:
        return True
    start_at, end_at = array.offset * width, (array.offset + len(array)) * width
    start = int.from_bytes(bounds[start_at : start_at + width].to_pybytes(), "little")
    end = int.from_bytes(bounds[end_at : end_at + width].to_pybytes(), "little")
    if end <= start:
        return True
    values = pa.Array.from_buffers(pa.uint8(), end - start, [None, data], offset=start)
    low_high = pc.min_max(values).as_py()
    return bool(low_high["min"] >= 0x20 and low_high["max"] <= 0x7E)
