"""A segment: rules over the columns of a parent."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from cohortsync.definitions.fields import Definition


class Segment(Definition):
    """Rules (the JSON tree of :mod:`cohortsync.audience.rules`) over a parent's table.

    The rules are parsed and checked against the parent's columns when the
    segment is saved (:mod:`cohortsync.audience.segments`): that needs the
    warehouse, which a definition does not reach.
    """

    kind = "segment"

    parent: str = Field(min_length=1)
    rules: dict[str, Any]
    description: str | None = None
