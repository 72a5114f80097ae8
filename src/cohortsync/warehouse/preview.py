"""The console's "run the query to check the result": first rows and a row count.

The whole result streams through once: the first ``limit`` rows are kept and
the rest only counted, so checking a query over millions of rows costs one
batch of memory.
"""

from __future__ import annotations

import base64
import datetime
import decimal
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from cohortsync.warehouse.base import Engine


@dataclass(frozen=True)
class Preview:
    """A query's columns (name, Arrow type), its first rows and its total row count."""

    columns: list[tuple[str, str]]
    rows: list[list[Any]]
    row_count: int

    def to_json(self) -> dict[str, Any]:
        """``{"columns": [{"name", "type"}], "rows": [{column: value}], "row_count": N}``.

        Values become JSON types: dates and times as ISO 8601 text, decimals as
        text (so no digit is lost), bytes as base64.
        """
        names = [name for name, _ in self.columns]
        return {
            "columns": [{"name": name, "type": kind} for name, kind in self.columns],
            "rows": [
                {name: json_value(value) for name, value in zip(names, row, strict=True)}
                for row in self.rows
            ],
            "row_count": self.row_count,
        }


def preview(engine: Engine, sql: str, params: Sequence[Any] = (), *, limit: int = 20) -> Preview:
    """Run ``sql`` and keep its first ``limit`` rows while counting all of them."""
    reader = engine.stream(sql, params)
    schema: pa.Schema = reader.schema
    rows: list[list[Any]] = []
    row_count = 0
    for batch in reader:
        wanted = limit - len(rows)
        if wanted > 0:
            head = batch.slice(0, wanted)
            columns = [column.to_pylist() for column in head.columns]
            rows.extend([list(row) for row in zip(*columns, strict=True)] if columns else [])
        row_count += batch.num_rows
    return Preview([(field.name, str(field.type)) for field in schema], rows, row_count)


def json_value(value: Any) -> Any:
    """``value`` as something :func:`json.dumps` writes without losing information."""
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, list):
        return [json_value(item) for item in value]
    if isinstance(value, dict):
        return {str(key): json_value(item) for key, item in value.items()}
    return value
