"""JSON views of audience definitions, one shape for ``--json`` and for ``apply``.

Keys use the words of the command line (``table``, ``key``, ``auth``,
``schedule``), not the catalog's column names, so a script can feed what
``show --json`` prints back into the commands.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from cohortsync.catalog.audiences import ActivationRow, ParentRow, SegmentRow
from cohortsync.catalog.db import stored_utc
from cohortsync.catalog.runs import RunRecord


def _time(value: dt.datetime | None) -> str | None:
    return None if value is None else stored_utc(value).isoformat()


def parent_view(row: ParentRow) -> dict[str, Any]:
    return {
        "name": row.name,
        "table": row.table_name,
        "key": row.key_column,
        "warehouse": row.warehouse_url,
        "description": row.description,
        "created_at": _time(row.created_at),
        "updated_at": _time(row.updated_at),
    }


def segment_view(row: SegmentRow) -> dict[str, Any]:
    return {
        "name": row.name,
        "parent": row.parent,
        "rules": row.rules,
        "description": row.description,
        "created_at": _time(row.created_at),
        "updated_at": _time(row.updated_at),
    }


def activation_view(row: ActivationRow) -> dict[str, Any]:
    return {
        "name": row.name,
        "segment": row.segment,
        "auth": row.auth_name,
        "cohort_id": row.cohort_id,
        "cohort_name": row.cohort_name,
        "operation": row.operation,
        "alias_column": row.alias_column,
        "threads": row.threads,
        "mapping": [f"{m['attribute']}={m['output']}" for m in row.mapping],
        "cast_to_string": row.cast_to_string,
        "description": row.description,
        "schedule": row.schedule_cron,
        "timezone": row.schedule_timezone,
        "mirror": {
            "allow_empty": row.mirror_allow_empty,
            "max_remove_pct": row.mirror_max_remove_pct,
        },
        "created_at": _time(row.created_at),
        "updated_at": _time(row.updated_at),
    }


def run_view(run: RunRecord) -> dict[str, Any]:
    """A run as ``activation show`` lists it: when, how it ended, what it sent."""
    report = run.report or {}
    return {
        "id": run.id,
        "status": run.status,
        "started_at": _time(run.started_at),
        "finished_at": _time(run.finished_at),
        "operation": run.operation,
        "rows_read": report.get("rows_read"),
        "sent": report.get("sent_total"),
        "error": run.error,
    }
