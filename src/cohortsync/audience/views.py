"""JSON views of audience definitions, one shape for ``--json`` and for ``apply``.

Keys are the fields of the definitions (:mod:`cohortsync.definitions`),
the words of the command line and of ``apply`` (``table``, ``key``, ``auth``,
``schedule``), so a script can feed what ``show --json`` prints back into
the commands or a definitions file.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from cohortsync.catalog.audiences import SavedActivation, SavedParent, SavedSegment
from cohortsync.catalog.db import stored_utc
from cohortsync.catalog.runs import RunRecord


def _time(value: dt.datetime | None) -> str | None:
    return None if value is None else stored_utc(value).isoformat()


# Shown first: what the object is and what it builds on.
_FIRST = ("name", "parent", "segment")


def _view(saved: SavedParent | SavedSegment | SavedActivation) -> dict[str, Any]:
    """The definition's fields (name and what it builds on first), then when it was saved."""
    fields = saved.model_dump()
    return {
        **{key: fields.pop(key) for key in _FIRST if key in fields},
        **fields,
        "created_at": _time(saved.created_at),
        "updated_at": _time(saved.updated_at),
    }


def parent_view(row: SavedParent) -> dict[str, Any]:
    return _view(row)


def segment_view(row: SavedSegment) -> dict[str, Any]:
    return _view(row)


def activation_view(row: SavedActivation) -> dict[str, Any]:
    """The activation's fields; its mapping as the ``ATTRIBUTE=OUTPUT`` of ``--map``."""
    return {**_view(row), "mapping": [str(mapping) for mapping in row.mapping]}


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
