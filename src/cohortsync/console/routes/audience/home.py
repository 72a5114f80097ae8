"""Audience Studio's home: the parents, segments and activations, a page of each at a time.

Each list is read a page at a time (:mod:`cohortsync.audience.listing`), with
its own offset in the address (``parents_offset``, ``segments_offset``,
``activations_offset``) so that paging one list keeps the others where they
are; *Find by name* narrows all three. The counts at the top are of
everything saved.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from cohortsync.audience import listing
from cohortsync.console.context import Console, console_of

router = APIRouter()

# Definitions per page of each list.
LIST_PAGE = listing.PAGE_SIZE


def _offset(value: str) -> int:
    return int(value) if value.isdigit() else 0


@router.get("/audience")
def home(
    request: Request,
    console: Console = Depends(console_of),
    deleted: str = "",
    name: str = "",
    parents_offset: str = "0",
    segments_offset: str = "0",
    activations_offset: str = "0",
) -> Response:
    settings = console.settings
    name = name.strip()
    parents = listing.page_of_parents(
        offset=_offset(parents_offset), limit=LIST_PAGE, name_contains=name, settings=settings
    )
    segments = listing.page_of_segments(
        offset=_offset(segments_offset), limit=LIST_PAGE, name_contains=name, settings=settings
    )
    activations = listing.page_of_activations(
        offset=_offset(activations_offset), limit=LIST_PAGE, name_contains=name, settings=settings
    )
    offsets = {
        "parents_offset": parents.offset,
        "segments_offset": segments.offset,
        "activations_offset": activations.offset,
    }
    return console.pages.render(
        request,
        "console/audience_home.html",
        {
            "parents": parents,
            "segments": segments,
            "activations": activations,
            "name": name,
            "keep": {param: _keep(name, offsets, param) for param in offsets},
            "deleted": deleted,
        },
    )


def _keep(name: str, offsets: dict[str, int], paged: str) -> str:
    """What a pager of ``paged`` carries in its links: the name searched, the other offsets."""
    args: dict[str, str | int] = {"name": name} if name else {}
    args.update({param: offset for param, offset in offsets.items() if param != paged and offset})
    return f"&{urlencode(args)}" if args else ""
