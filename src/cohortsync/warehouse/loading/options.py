"""What a load may do: its options, and ``--schema`` as the user writes it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cohortsync.errors import ConfigError, whole_message
from cohortsync.warehouse.base import FileFormat, LoadMode

if TYPE_CHECKING:
    pass

# -- options ---------------------------------------------------------------------

_SCHEMA_HINT = (
    "write --schema as NAME=TYPE pairs separated by commas, e.g. "
    "--schema user_ids=VARCHAR,age=INTEGER, or --schema @FILE with one NAME=TYPE per line"
)
# A type as DuckDB spells it: a name, optional (precision[, scale]), optional [].
_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9_ ]*(\(\s*\d+\s*(,\s*\d+\s*)?\))?(\[\])?")


@dataclass(frozen=True)
class LoadOptions:
    """How to read a file and what a load may do to the table.

    Attributes:
        mode: ``replace`` (the table becomes the file) or ``append``.
        format: ``csv``, ``parquet`` or ``ndjson``; already resolved.
        encoding: the text encoding of a CSV or NDJSON file; UTF-8 when None.
        schema: declared column types (name -> DuckDB type), e.g. from --schema.
        allow_empty: accept a file without rows (a CSV still needs its header).
    """

    mode: LoadMode = "replace"
    format: FileFormat = "csv"
    encoding: str | None = None
    schema: Mapping[str, str] = field(default_factory=dict)
    allow_empty: bool = False


def parse_schema(text: str | None) -> dict[str, str]:
    """``"a=VARCHAR,b=DECIMAL(10,2)"`` (or ``"@file"``) -> ``{"a": "VARCHAR", ...}``.

    The file form holds one ``NAME=TYPE`` per line (or comma-separated);
    blank lines and ``#`` comments are skipped. Types are checked for shape
    here and for meaning by DuckDB when the load starts.

    Raises:
        ConfigError: a pair without ``=``, a type that is not a type name, a
            column declared twice, or an unreadable schema file.
    """
    if text is None:
        return {}
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            content = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(
                f"cannot read the schema file {path}: {whole_message(error)}",
                hint=_SCHEMA_HINT,
            ) from error
        lines = [line.split("#", 1)[0] for line in content.splitlines()]
        text = ",".join(line for line in lines if line.strip())
    declared: dict[str, str] = {}
    for item in _split_pairs(text):
        name, equals, kind = item.partition("=")
        name, kind = name.strip(), " ".join(kind.split())
        if not equals or not name or not _TYPE.fullmatch(kind):
            raise ConfigError(f"invalid --schema entry {item.strip()!r}", hint=_SCHEMA_HINT)
        if name.lower() in (known.lower() for known in declared):
            raise ConfigError(f"--schema declares column {name!r} twice", hint=_SCHEMA_HINT)
        declared[name] = kind.upper()
    return declared


def _split_pairs(text: str) -> list[str]:
    """Split on commas outside parentheses, so ``DECIMAL(10,2)`` stays whole."""
    items: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    items.append("".join(current))
    return [item for item in items if item.strip()]
