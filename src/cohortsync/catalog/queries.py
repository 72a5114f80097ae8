"""Saved queries: the Data Workbench path (spec section 1, "Data Workbench").

A saved query is a name, its SQL, optionally the warehouse it runs on, and
optionally the export settings that send its result to a Braze cohort each
time it runs. Its schedule lives in ``schedules`` (job ``"query:NAME"``), like
an activation's, so one scheduler serves both.

The export settings and the alerts are stored as JSON documents validated by
:class:`cohortsync.queries.QueryExport` and :class:`cohortsync.definitions.Alerts`;
this module only stores and fetches.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa

from cohortsync.catalog.db import definition_table, stored_utc
from cohortsync.catalog.rows import delete_rows, first_row

saved_queries = definition_table(
    "saved_queries",
    sa.Column("sql", sa.Text, nullable=False),
    sa.Column("warehouse_url", sa.String, nullable=True),
    sa.Column("export", sa.Text, nullable=True),  # QueryExport JSON, or NULL
    sa.Column("alerts", sa.Text, nullable=True),  # Alerts JSON, or NULL (revision 0008)
)


@dataclass(frozen=True)
class QueryRow:
    """A saved query as stored (export settings still as a plain dict)."""

    name: str
    sql: str
    warehouse_url: str | None
    export: dict[str, Any] | None
    created_at: dt.datetime
    updated_at: dt.datetime
    alerts: dict[str, Any] | None = None


def _row(row: sa.Row[Any]) -> QueryRow:
    return QueryRow(
        name=row.name,
        sql=row.sql,
        warehouse_url=row.warehouse_url,
        export=orjson.loads(row.export) if row.export else None,
        created_at=stored_utc(row.created_at),
        updated_at=stored_utc(row.updated_at),
        alerts=orjson.loads(row.alerts) if row.alerts else None,
    )


def fetch_query(catalog: sa.Engine, name: str) -> QueryRow | None:
    """The saved query ``name``, or ``None``."""
    row = first_row(catalog, saved_queries, saved_queries.c.name == name)
    return None if row is None else _row(row)


def fetch_queries(catalog: sa.Engine) -> list[QueryRow]:
    """Every saved query, by name."""
    with catalog.connect() as conn:
        rows = conn.execute(sa.select(saved_queries).order_by(saved_queries.c.name)).all()
    return [_row(row) for row in rows]


def store_query(
    catalog: sa.Engine,
    *,
    name: str,
    sql: str,
    warehouse_url: str | None,
    export: dict[str, Any] | None,
    alerts: dict[str, Any] | None = None,
) -> bool:
    """Insert or replace a saved query; returns whether the stored definition changed."""
    now = dt.datetime.now(dt.UTC)
    export_json = _json(export)
    alerts_json = _json(alerts)
    with catalog.begin() as conn:
        current = conn.execute(sa.select(saved_queries).where(saved_queries.c.name == name)).first()
        if current is None:
            conn.execute(
                saved_queries.insert().values(
                    name=name,
                    sql=sql,
                    warehouse_url=warehouse_url,
                    export=export_json,
                    alerts=alerts_json,
                    created_at=now,
                    updated_at=now,
                )
            )
            return True
        if (current.sql, current.warehouse_url, current.export, current.alerts) == (
            sql,
            warehouse_url,
            export_json,
            alerts_json,
        ):
            return False
        conn.execute(
            saved_queries.update()
            .where(saved_queries.c.name == name)
            .values(
                sql=sql,
                warehouse_url=warehouse_url,
                export=export_json,
                alerts=alerts_json,
                updated_at=now,
            )
        )
        return True


def _json(document: dict[str, Any] | None) -> str | None:
    """A document as stored: sorted keys, so the same settings compare equal as text."""
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS).decode() if document else None


def remove_query(catalog: sa.Engine, name: str) -> bool:
    """Delete a saved query; returns whether it existed."""
    return delete_rows(catalog, saved_queries, saved_queries.c.name == name) > 0
