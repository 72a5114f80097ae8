"""Member listings: users in one shape, in one order, wherever they are listed.

A cohort's members, a segment's members and ``/users/export/ids`` all show
users as ``{"external_id", "aliases", "device_ids"}`` sorted by
:func:`member_sort_key`, so two listings of the same users compare equal.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from cohortsync.braze.store import user_queries


def describe_users(conn: sa.Connection, user_ids: sa.Select[Any]) -> list[dict[str, Any]]:
    """``{"external_id", "aliases", "device_ids"}`` for the users a query selects, sorted.

    Users sort by external id (anonymous users last), then aliases, then
    device ids.
    """
    return sorted(user_queries.members_by_id(conn, user_ids).values(), key=member_sort_key)


def member_sort_key(member: dict[str, Any]) -> tuple[Any, ...]:
    external_id = member["external_id"]
    aliases = [(a["alias_label"], a["alias_name"]) for a in member["aliases"]]
    return (external_id is None, external_id or "", aliases, member["device_ids"])
