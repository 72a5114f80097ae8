"""``?`` placeholders, rewritten for SQLAlchemy's ``text()``.

Segments compile to SQL with ``?`` placeholders (DuckDB's native style). Other
engines go through SQLAlchemy's :func:`~sqlalchemy.text`, whose bound
parameters are ``:name``. The rewrite must leave string literals, quoted
identifiers, dollar-quoted bodies and comments untouched (a ``?`` inside
``'why?'`` is text, not a parameter), and must keep colons that are not ours
(``'10:30'``, ``x::text``) from being read as parameters by ``text()``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from cohortsync.errors import ConfigError

# What SQLAlchemy's text() reads as a bound parameter; such text in the user's
# SQL is escaped with a backslash, which text() removes again when compiling.
_TEXT_BIND = re.compile(r"(?<![:\w\\]):(\w+)(?![:\w])")
_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")


def to_named(sql: str, params: Sequence[Any]) -> tuple[str, dict[str, Any]]:
    """Rewrite ``?`` to ``:p0, :p1, ...`` and pair each name with its value.

    Raises:
        ConfigError: the number of placeholders differs from ``len(params)``.
    """
    pieces: list[str] = []
    count = 0
    for text, is_code in _split(sql):
        escaped = _TEXT_BIND.sub(r"\\:\1", text)
        if not is_code:
            pieces.append(escaped)
            continue
        parts = escaped.split("?")
        for index, part in enumerate(parts):
            if index:
                pieces.append(f":p{count}")
                count += 1
            pieces.append(part)
    if count != len(params):
        raise ConfigError(
            f"the query has {count} ? placeholder(s) but {len(params)} parameter(s) were given",
            hint="pass one parameter per ? outside quotes",
        )
    return "".join(pieces), {f"p{index}": value for index, value in enumerate(params)}


def _split(sql: str) -> list[tuple[str, bool]]:
    """Cut ``sql`` into (text, is_code) pieces; literals and comments are not code."""
    pieces: list[tuple[str, bool]] = []
    start = position = 0
    length = len(sql)
    while position < length:
        char = sql[position]
        end = -1
        if char == "'":
            backslashes = (
                position > 0 and sql[position - 1] in "eE" and _word_start(sql, position - 1)
            )
            end = _quoted_end(sql, position, "'", backslashes)
        elif char == '"':
            end = _quoted_end(sql, position, '"', False)
        elif sql.startswith("--", position):
            newline = sql.find("\n", position)
            end = length if newline < 0 else newline
        elif sql.startswith("/*", position):
            close = sql.find("*/", position + 2)
            end = length if close < 0 else close + 2
        elif char == "$" and (
            position == 0 or not (sql[position - 1].isalnum() or sql[position - 1] == "_")
        ):
            tag = _DOLLAR_TAG.match(sql, position)
            if tag:
                close = sql.find(tag.group(0), tag.end())
                end = length if close < 0 else close + len(tag.group(0))
        if end < 0:
            position += 1
            continue
        if start < position:
            pieces.append((sql[start:position], True))
        pieces.append((sql[position:end], False))
        start = position = end
    if start < length:
        pieces.append((sql[start:], True))
    return pieces


def _word_start(sql: str, position: int) -> bool:
    """True when the character at ``position`` starts a word (``E'..'`` strings)."""
    return position == 0 or not (sql[position - 1].isalnum() or sql[position - 1] == "_")


def _quoted_end(sql: str, position: int, quote: str, backslashes: bool) -> int:
    """Index just past the literal opened at ``position``; doubled quotes stay inside."""
    index = position + 1
    length = len(sql)
    while index < length:
        char = sql[index]
        if backslashes and char == "\\":
            index += 2
            continue
        if char == quote:
            if index + 1 < length and sql[index + 1] == quote:
                index += 2
                continue
            return index + 1
        index += 1
    return length
