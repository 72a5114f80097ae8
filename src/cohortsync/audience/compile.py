"""Segment rules to parameterised SQL, checked against the parent table's schema.

Values never enter the SQL text: every value becomes a ``?`` placeholder and
travels in ``params``, so ``x' OR '1'='1`` is matched as the literal string it
is. Identifiers (table and columns) come from the warehouse's own schema and
are double-quoted with embedded quotes doubled, which DuckDB and PostgreSQL
both read the same way.

Type rules, from the column's Arrow type:

- numeric columns (integers, floats, decimals) take numbers (not booleans);
- text columns take strings; ``like`` works on text columns only;
- boolean columns take ``true``/``false`` with ``=`` and ``!=`` only;
- date and timestamp columns take ISO-8601 strings (``"2024-05-01"``,
  ``"2024-05-01T12:00:00"``), bound as dates and datetimes;
- any other type (lists, structs, binary...) takes ``is null`` / ``is not null`` only.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from cohortsync.audience.rules import (
    COMPARISONS,
    NULL_TESTS,
    OPERATORS,
    And,
    Condition,
    Not,
    Or,
    Rule,
    load_rules,
    parse_rules,
)
from cohortsync.errors import ConfigError


class RuleError(ConfigError):
    """Segment rules that do not fit the parent table: unknown column, wrong type."""


@dataclass(frozen=True)
class CompiledSQL:
    """SQL text with ``?`` placeholders and the values bound to them, in order."""

    sql: str
    params: tuple[Any, ...] = ()


def quote_identifier(name: str) -> str:
    """Double-quote a name, doubling its own quotes: a name can never close its quotes."""
    return '"' + name.replace('"', '""') + '"'


def quote_table(table: str) -> str:
    """Quote each dotted part of ``schema.table`` (or ``catalog.schema.table``)."""
    return ".".join(quote_identifier(part) for part in table.split("."))


def column_kind(data_type: pa.DataType) -> str:
    """The family of an Arrow type that decides which values and operators fit."""
    if (
        pa.types.is_string(data_type)
        or pa.types.is_large_string(data_type)
        or pa.types.is_string_view(data_type)
    ):
        return "text"
    if (
        pa.types.is_integer(data_type)
        or pa.types.is_floating(data_type)
        or pa.types.is_decimal(data_type)
    ):
        return "number"
    if pa.types.is_boolean(data_type):
        return "boolean"
    if pa.types.is_date(data_type):
        return "date"
    if pa.types.is_timestamp(data_type):
        return "timestamp"
    if pa.types.is_dictionary(data_type):
        return column_kind(data_type.value_type)
    return "other"


def operators_for(kind: str) -> tuple[str, ...]:
    """The operators rules accept on a column of this family (see :func:`column_kind`).

    The same rules :func:`compile_rules` enforces: ``like`` on text only,
    booleans with ``=`` and ``!=``, other types with the NULL tests only.
    """
    if kind == "other":
        return tuple(op for op in OPERATORS if op in NULL_TESTS)
    if kind == "boolean":
        return tuple(op for op in OPERATORS if op in NULL_TESTS or op in ("=", "!="))
    if kind == "text":
        return OPERATORS
    return tuple(op for op in OPERATORS if op != "like")


def find_column(schema: pa.Schema, column: str, *, table: str, what: str = "column") -> pa.Field:
    """The schema field named ``column``; unknown names list the table's columns.

    Raises:
        RuleError: no such column, with the closest names and the full list.
    """
    index = schema.get_field_index(column)
    if index >= 0:
        return schema.field(index)
    names = list(schema.names)
    close = difflib.get_close_matches(column, names, n=1)
    guess = f"did you mean {close[0]!r}? " if close else ""
    raise RuleError(
        f"unknown {what} {column!r} in table {table}",
        hint=f"{guess}columns: {', '.join(names)}",
    )


def compile_rules(rule: Rule, schema: pa.Schema, *, table: str) -> CompiledSQL:
    """Compile a rule tree to a boolean SQL expression over ``table``'s columns.

    Args:
        rule: the segment's rules.
        schema: the parent table's schema, from ``engine.table_schema(table)``.
        table: the table's name, for error messages.

    Raises:
        RuleError: a column is not in ``schema`` or a value does not fit its type.
    """
    params: list[Any] = []
    sql = _compile(rule, schema, table, params)
    return CompiledSQL(sql, tuple(params))


def _compile(rule: Rule, schema: pa.Schema, table: str, params: list[Any]) -> str:
    if isinstance(rule, Condition):
        return _condition(rule, schema, table, params)
    if isinstance(rule, Not):
        return f"NOT ({_compile(rule.rule, schema, table, params)})"
    joiner = " AND " if isinstance(rule, And) else " OR "
    assert isinstance(rule, Or | And)
    return "(" + joiner.join(_compile(child, schema, table, params) for child in rule.rules) + ")"


def _condition(rule: Condition, schema: pa.Schema, table: str, params: list[Any]) -> str:
    field = find_column(schema, rule.column, table=table)
    column = quote_identifier(field.name)
    kind = column_kind(field.type)
    op = rule.op
    if op in NULL_TESTS:
        return f"{column} {op.upper()}"
    if kind == "other":
        raise RuleError(
            f"column {field.name!r} of table {table} has type {field.type}, which takes only "
            f"'is null' and 'is not null', not {op!r}"
        )
    if op == "like" and kind != "text":
        raise RuleError(
            f"'like' needs a text column; {field.name!r} of table {table} is {field.type}",
            hint="use =, in or between on non-text columns",
        )
    if kind == "boolean" and op not in ("=", "!="):
        raise RuleError(
            f"boolean column {field.name!r} of table {table} takes only '=' and '!=', not {op!r}"
        )
    convert = _CONVERTERS[kind]
    values = rule.value if isinstance(rule.value, list) else [rule.value]
    bound = [convert(value, field, table) for value in values]
    params.extend(bound)
    if op == "in":
        return f"{column} IN ({', '.join('?' for _ in bound)})"
    if op == "between":
        return f"{column} BETWEEN ? AND ?"
    if op == "like":
        return f"{column} LIKE ?"
    assert op in COMPARISONS
    return f"{column} {op} ?"


def _wrong_type(value: Any, field: pa.Field, table: str, expected: str) -> RuleError:
    return RuleError(
        f"value {value!r} does not fit column {field.name!r} of table {table} ({field.type})",
        hint=f"give {expected}",
    )


def _number(value: Any, field: pa.Field, table: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _wrong_type(value, field, table, "a number, without quotes")
    return value


def _text(value: Any, field: pa.Field, table: str) -> str:
    if not isinstance(value, str):
        raise _wrong_type(value, field, table, "a string, in quotes")
    return value


def _boolean(value: Any, field: pa.Field, table: str) -> bool:
    if not isinstance(value, bool):
        raise _wrong_type(value, field, table, "true or false")
    return value


def _date(value: Any, field: pa.Field, table: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise _wrong_type(value, field, table, 'an ISO date string like "2024-05-31"') from None


def _timestamp(value: Any, field: pa.Field, table: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise _wrong_type(
            value, field, table, 'an ISO timestamp string like "2024-05-31T08:00:00"'
        ) from None


_CONVERTERS: dict[str, Callable[[Any, pa.Field, str], Any]] = {
    "number": _number,
    "text": _text,
    "boolean": _boolean,
    "date": _date,
    "timestamp": _timestamp,
}


def select_sql(
    table: str,
    where: CompiledSQL | None,
    columns: Iterable[str] | None = None,
    *,
    order_by: str | None = None,
    limit: int | None = None,
) -> CompiledSQL:
    """``SELECT <columns or *> FROM <table> [WHERE ...] [ORDER BY ...] [LIMIT n]``.

    ``columns`` are SQL select items already quoted by the caller; the limit is
    an ``int`` and so is safe to write into the text.
    """
    items = ", ".join(columns) if columns is not None else "*"
    sql = f"SELECT {items} FROM {quote_table(table)}"
    if where is not None:
        sql += f" WHERE {where.sql}"
    if order_by is not None:
        sql += f" ORDER BY {quote_identifier(order_by)}"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return CompiledSQL(sql, where.params if where is not None else ())


# --- rules in any form, checked against a table -------------------------------

RulesInput = Rule | dict[str, Any] | str
"""Rules as a parsed tree, a decoded JSON object, or JSON text / a JSON file path."""


def as_rule(rules: RulesInput) -> Rule:
    """Accept rules in any of the forms callers hold them."""
    if isinstance(rules, str):
        return load_rules(rules)
    if isinstance(rules, dict):
        return parse_rules(rules)
    return rules


def check_rules(rules: RulesInput, schema: pa.Schema, *, table: str) -> CompiledSQL:
    """Compile ``rules`` against ``schema``: the check done at every save and use."""
    return compile_rules(as_rule(rules), schema, table=table)
