"""Audience Studio's home: every parent, segment and activation, with each activation's last run."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from cohortsync.audience import activations, parents, segments
from cohortsync.console.context import Console, console_of

router = APIRouter()


@router.get("/audience")
def home(request: Request, console: Console = Depends(console_of), deleted: str = "") -> Response:
    settings = console.settings
    all_segments = segments.list_segments(settings=settings)
    all_activations = activations.list_activations(settings=settings)
    # One read of the history for the whole list, however many activations are saved.
    latest = activations.latest_activation_runs(
        [activation.name for activation in all_activations], settings=settings
    )
    return console.pages.render(
        request,
        "console/audience_home.html",
        {
            "parents": parents.list_parents(settings=settings),
            "segments": all_segments,
            "activations": all_activations,
            "segment_count": _count_by(all_segments, "parent"),
            "activation_count": _count_by(all_activations, "segment"),
            "last_runs": latest,
            "deleted": deleted,
        },
    )


def _count_by(rows: list[Any], attribute: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        key = getattr(row, attribute)
        counts[key] = counts.get(key, 0) + 1
    return counts
