"""Pages of the saved parents, segments and activations, for lists people read.

Audience Studio's home lists every kind a page at a time: each function reads
one page from the catalog (LIMIT/OFFSET) and the counts around it, so a home
with thousands of activations costs one page of them, and the last runs
shown are those of that page's activations only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic

import sqlalchemy as sa

from cohortsync.audience import store
from cohortsync.audience.activations import latest_activation_runs
from cohortsync.catalog import audiences
from cohortsync.catalog.audiences import S, SavedActivation, SavedParent, SavedSegment
from cohortsync.catalog.runs import RunRecord
from cohortsync.settings import Settings

# Definitions per page of a list, as the console's other lists.
PAGE_SIZE = 50


@dataclass(frozen=True)
class Page(Generic[S]):
    """One page of a kind's definitions by name.

    ``total`` counts those whose name matches, ``saved`` every one saved
    (the two differ only while a name is searched for).
    """

    rows: list[S]
    total: int
    saved: int
    offset: int
    limit: int


@dataclass(frozen=True)
class ParentPage(Page[SavedParent]):
    """A page of parents, with the number of segments of each (absent when none)."""

    segment_counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class SegmentPage(Page[SavedSegment]):
    """A page of segments, with the number of activations of each (absent when none)."""

    activation_counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ActivationPage(Page[SavedActivation]):
    """A page of activations, with the latest run of each (absent when never run)."""

    last_runs: dict[str, RunRecord] = field(default_factory=dict)


def page_of_parents(
    *,
    offset: int = 0,
    limit: int = PAGE_SIZE,
    name_contains: str = "",
    settings: Settings | None = None,
) -> ParentPage:
    """The parents from ``offset``, at most ``limit``, whose name contains ``name_contains``."""
    with store.catalog(settings) as catalog:
        page = _page(catalog, SavedParent, offset, limit, name_contains)
        names = [row.name for row in page.rows]
        counts = audiences.count_users(catalog, SavedSegment, "parent", names)
    return ParentPage(**vars(page), segment_counts=counts)


def page_of_segments(
    *,
    offset: int = 0,
    limit: int = PAGE_SIZE,
    name_contains: str = "",
    settings: Settings | None = None,
) -> SegmentPage:
    """The segments from ``offset``, at most ``limit``, whose name contains ``name_contains``."""
    with store.catalog(settings) as catalog:
        page = _page(catalog, SavedSegment, offset, limit, name_contains)
        names = [row.name for row in page.rows]
        counts = audiences.count_users(catalog, SavedActivation, "segment", names)
    return SegmentPage(**vars(page), activation_counts=counts)


def page_of_activations(
    *,
    offset: int = 0,
    limit: int = PAGE_SIZE,
    name_contains: str = "",
    settings: Settings | None = None,
) -> ActivationPage:
    """The activations from ``offset``, at most ``limit``, whose name contains ``name_contains``.

    With the latest run of each activation of the page, read at once
    (:func:`~cohortsync.audience.activations.latest_activation_runs`).
    """
    with store.catalog(settings) as catalog:
        page = _page(catalog, SavedActivation, offset, limit, name_contains)
    last = latest_activation_runs([row.name for row in page.rows], settings=settings)
    return ActivationPage(**vars(page), last_runs=last)


def _page(
    catalog: sa.Engine, kind: type[S], offset: int, limit: int, name_contains: str
) -> Page[S]:
    """One page of ``kind``, with how many match and how many are saved."""
    rows, total, offset = audiences.page_rows(
        catalog, kind, offset=offset, limit=limit, name_contains=name_contains
    )
    saved = total if not name_contains.strip() else audiences.count_rows(catalog, kind)
    return Page(rows, total, saved, offset, limit)
