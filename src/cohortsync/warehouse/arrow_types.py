"""Arrow types for SQL columns, and SQL column types for Arrow, outside DuckDB.

DuckDB speaks Arrow natively. For other databases the result's Arrow schema is
built from the cursor's description *before* the first row is fetched, so an
empty result still has typed columns. PostgreSQL (psycopg) reports type OIDs
that map precisely; other drivers' columns become strings, which is lossless
for every value a cohort export reads.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from cohortsync.errors import ConfigError

Converter = Callable[[Any], Any]

_POSTGRES_TYPES: dict[str, pa.DataType] = {
    "bool": pa.bool_(),
    "int2": pa.int16(),
    "int4": pa.int32(),
    "int8": pa.int64(),
    "oid": pa.int64(),
    "float4": pa.float32(),
    "float8": pa.float64(),
    "text": pa.string(),
    "varchar": pa.string(),
    "bpchar": pa.string(),
    "char": pa.string(),
    "name": pa.string(),
    "date": pa.date32(),
    "time": pa.time64("us"),
    "timestamp": pa.timestamp("us"),
    "timestamptz": pa.timestamp("us", tz="UTC"),
    "bytea": pa.binary(),
}


@dataclass(frozen=True)
class ResultColumn:
    """One column of a result: its Arrow field and how to convert driver values."""

    field: pa.Field
    convert: Converter | None = None


def _to_text(value: Any) -> Any:
    """Values without an Arrow type of their own, as text (JSON for containers)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


def _items_to_text(value: Any) -> Any:
    return None if value is None else [_to_text(item) for item in value]


def result_columns(description: Sequence[Any], driver: str) -> list[ResultColumn]:
    """The Arrow fields of a cursor description (PEP 249), known before any row."""
    return [_result_column(column, driver) for column in description]


def _result_column(column: Any, driver: str) -> ResultColumn:
    name = str(column[0])
    if driver == "psycopg":
        from psycopg.postgres import types as postgres_types

        info = postgres_types.get(column[1])
        if info is not None and info.oid == column[1]:
            if info.name == "numeric":
                precision, scale = column[4], column[5]
                if precision is not None and 0 < precision <= 38:
                    return ResultColumn(pa.field(name, pa.decimal128(precision, scale or 0)))
            elif info.name in _POSTGRES_TYPES:
                return ResultColumn(pa.field(name, _POSTGRES_TYPES[info.name]))
        elif info is not None and info.array_oid == column[1]:
            # Arrays are lists; items without an Arrow type of their own are text.
            item = _POSTGRES_TYPES.get(info.name)
            if item is not None:
                return ResultColumn(pa.field(name, pa.list_(item)))
            return ResultColumn(pa.field(name, pa.list_(pa.string())), _items_to_text)
    return ResultColumn(pa.field(name, pa.string()), _to_text)


def arrays_from_rows(
    columns: Sequence[ResultColumn], rows: Sequence[Sequence[Any]]
) -> list[pa.Array]:
    """Column arrays for one batch of driver rows."""
    arrays = []
    for index, column in enumerate(columns):
        values = [row[index] for row in rows]
        if column.convert is not None:
            values = [column.convert(value) for value in values]
        arrays.append(pa.array(values, type=column.field.type))
    return arrays


def sql_type(field: pa.Field) -> sa.types.TypeEngine[Any]:
    """The SQLAlchemy column type that holds ``field``'s values (for created tables).

    Raises:
        ConfigError: a nested or otherwise unsupported Arrow type.
    """
    kind = field.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind):
        return sa.Text()
    if pa.types.is_boolean(kind):
        return sa.Boolean()
    if pa.types.is_int8(kind) or pa.types.is_int16(kind) or pa.types.is_uint8(kind):
        return sa.SmallInteger()
    if pa.types.is_int32(kind) or pa.types.is_uint16(kind):
        return sa.Integer()
    if pa.types.is_int64(kind) or pa.types.is_uint32(kind):
        return sa.BigInteger()
    if pa.types.is_uint64(kind):
        return sa.Numeric(20, 0)
    if pa.types.is_float16(kind) or pa.types.is_float32(kind):
        return sa.REAL()
    if pa.types.is_float64(kind):
        return sa.Double()
    if pa.types.is_decimal(kind):
        return sa.Numeric(kind.precision, kind.scale)
    if pa.types.is_date(kind):
        return sa.Date()
    if pa.types.is_timestamp(kind):
        return sa.DateTime(timezone=kind.tz is not None)
    if pa.types.is_time(kind):
        return sa.Time()
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return sa.LargeBinary()
    raise ConfigError(
        f"column {field.name!r} has type {kind}, which cannot be loaded into this warehouse",
        hint="flatten nested columns to text or numbers before loading",
    )


def arrow_type(column_type: sa.types.TypeEngine[Any]) -> pa.DataType:
    """The Arrow type of a column found by SQLAlchemy inspection; unknown -> string."""
    if isinstance(column_type, sa.ARRAY):
        item = arrow_type(column_type.item_type)
        return pa.list_(pa.string() if pa.types.is_decimal(item) else item)
    if isinstance(column_type, sa.Boolean):
        return pa.bool_()
    if isinstance(column_type, sa.SmallInteger):
        return pa.int16()
    if isinstance(column_type, sa.BigInteger):
        return pa.int64()
    if isinstance(column_type, sa.Integer):
        return pa.int32()
    if isinstance(column_type, sa.Numeric) and not isinstance(column_type, sa.Float):
        precision, scale = column_type.precision, column_type.scale
        if precision is not None and 0 < precision <= 38:
            return pa.decimal128(precision, scale or 0)
        return pa.string()
    if isinstance(column_type, sa.Float):
        return pa.float32() if isinstance(column_type, sa.REAL) else pa.float64()
    if isinstance(column_type, sa.DateTime):
        return pa.timestamp("us", tz="UTC" if column_type.timezone else None)
    if isinstance(column_type, sa.Date):
        return pa.date32()
    if isinstance(column_type, sa.Time):
        return pa.time64("us")
    if isinstance(column_type, sa.LargeBinary):
        return pa.binary()
    return pa.string()
