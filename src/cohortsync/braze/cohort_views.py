"""What the dashboard shows of cohorts: a summary, members and history, a page at a time.

Like :mod:`.admin`, every function takes an open store and a workspace (its
id or name) and returns JSON-ready values; a cohort is looked up in that
workspace only, so a cohort id of another workspace is unknown
(:class:`~cohortsync.errors.ConfigError`). The list of cohorts is
:func:`cohortsync.braze.admin.list_cohorts`.

Pages are keysets, not offsets: members by user id (``after``), history by
change id (``before``, newest first). Each page says where the next one
starts, or None on the last one, so a page costs the same however deep.
"""

from __future__ import annotations

from typing import Any

from cohortsync.braze.admin import (
    WorkspaceRef,
    describe_cohort,
    resolve_cohort,
    resolve_workspace,
)
from cohortsync.braze.store import Store, cohort_queries, user_queries
from cohortsync.errors import ConfigError

__all__ = ["MAX_PAGE_SIZE", "PAGE_SIZE", "cohort_history", "cohort_member_page", "cohort_summary"]

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def _page_size(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ConfigError(
            f"a page holds 1 to {MAX_PAGE_SIZE} rows, not {limit}",
            hint=f"pass a limit from 1 to {MAX_PAGE_SIZE}",
        )
    return limit


def cohort_summary(store: Store, cohort_id: str, *, workspace: WorkspaceRef) -> dict[str, Any]:
    """One cohort as :func:`~cohortsync.braze.admin.list_cohorts` lists it."""
    with store.read() as conn:
        workspace_id = resolve_workspace(conn, workspace)
        resolve_cohort(conn, workspace_id, cohort_id)
        [(row, size)] = cohort_queries.cohorts_with_sizes(conn, workspace_id, cohort_id)
    return describe_cohort(row, size)


def cohort_member_page(
    store: Store,
    cohort_id: str,
    *,
    workspace: WorkspaceRef,
    after: int | None = None,
    search: str = "",
    prefix: bool = False,
    limit: int = PAGE_SIZE,
) -> dict[str, Any]:
    """A page of the cohort's members, by user id: ``{"members", "next_after"}``.

    Each member is ``{"user_id", "external_id", "aliases", "device_ids"}``.
    ``search`` keeps the members holding an external id, alias name or device
    id equal to it (case-sensitive), or starting with it when ``prefix``; a
    blank search lists everyone. ``next_after`` is the ``after`` of the next
    page, None on the last.
    """
    size = _page_size(limit)
    wanted = search.strip()
    with store.read() as conn:
        workspace_id = resolve_workspace(conn, workspace)
        cohort = resolve_cohort(conn, workspace_id, cohort_id)
        ids = cohort_queries.member_id_page(
            store,
            conn,
            workspace_id,
            cohort.id,
            after=after,
            limit=size + 1,
            search=wanted or None,
            prefix=prefix,
        )
        page = ids[:size]
        described = user_queries.members_by_id(conn, user_queries.users_with_ids(page))
    return {
        "members": [{"user_id": user_id, **described[user_id]} for user_id in page],
        "next_after": page[-1] if len(ids) > size else None,
    }


def cohort_history(
    store: Store,
    cohort_id: str,
    *,
    workspace: WorkspaceRef,
    before: int | None = None,
    limit: int = PAGE_SIZE,
) -> dict[str, Any]:
    """A page of the cohort's change history, newest first: ``{"changes", "next_before"}``.

    Each change is ``{"id", "at", "added", "removed", "key_fingerprint"}``:
    one import request that added or removed members, and the fingerprint
    of the data import key that sent it. ``next_before`` is the ``before``
    of the next (older) page, None on the last.
    """
    size = _page_size(limit)
    with store.read() as conn:
        cohort = resolve_cohort(conn, resolve_workspace(conn, workspace), cohort_id)
        rows = cohort_queries.change_page(conn, cohort.id, before=before, limit=size + 1)
    page = rows[:size]
    return {
        "changes": [
            {
                "id": int(row.id),
                "at": row.at,
                "added": int(row.added),
                "removed": int(row.removed),
                "key_fingerprint": row.key_fingerprint,
            }
            for row in page
        ],
        "next_before": int(page[-1].id) if len(rows) > size else None,
    }
