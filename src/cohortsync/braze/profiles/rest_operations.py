"""Braze's ``/users/*`` operations on the store: track and export.

The identity endpoints (alias, identify, delete) are in :mod:`.identity_operations`.

Each call is one write (or read) transaction; per-item problems are returned
as Braze's ``errors`` strings instead of failing the whole request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa

from cohortsync.braze.profiles.listings import member_sort_key
from cohortsync.braze.store import Alias, Store, user_queries


@dataclass(frozen=True)
class TrackedUser:
    """One object of ``/users/track`` ``attributes``."""

    external_id: str | None
    alias: Alias | None
    update_existing_only: bool
    custom: dict[str, Any] = field(default_factory=dict)


def track_users(store: Store, workspace_id: int, items: list[TrackedUser]) -> list[str]:
    """Create or update users by external id or alias; return per-item errors."""
    errors = []
    with store.write() as conn:
        for index, item in enumerate(items):
            user_id = _tracked_user_id(conn, workspace_id, item)
            if user_id is None:
                if item.update_existing_only:
                    errors.append(
                        f"attributes[{index}]: no such user and _update_existing_only is true"
                    )
                    continue
                user_id = user_queries.create_user(conn, workspace_id, item.external_id, item.alias)
            user_queries.merge_attributes(conn, user_id, item.custom)
    return errors


def _tracked_user_id(conn: sa.Connection, workspace_id: int, item: TrackedUser) -> int | None:
    if item.external_id is not None:
        user = user_queries.user_by_external_id(conn, workspace_id, item.external_id)
    else:
        assert item.alias is not None
        user = user_queries.user_by_alias(conn, workspace_id, item.alias)
    return None if user is None else int(user.id)


def export_users(
    store: Store,
    workspace_id: int,
    external_ids: list[str],
    aliases: list[Alias],
    device_id: str | None,
) -> dict[str, Any]:
    """``/users/export/ids``: profiles by external id, alias or device id."""
    with store.read() as conn:
        found_ext = user_queries.ids_by_external_id(conn, workspace_id, external_ids)
        ids = set(found_ext.values())
        for alias in aliases:
            user = user_queries.user_by_alias(conn, workspace_id, alias)
            if user is not None:
                ids.add(user.id)
        if device_id is not None:
            ids.update(user_queries.user_ids_by_device_id(conn, workspace_id, device_id))
        profiles = _export_profiles(conn, workspace_id, sorted(ids))
    return {
        "users": profiles,
        "invalid_user_ids": [uid for uid in external_ids if uid not in found_ext],
    }


def _export_profiles(
    conn: sa.Connection, workspace_id: int, ids: list[int]
) -> list[dict[str, Any]]:
    described = user_queries.members_by_id(conn, user_queries.users_with_ids(ids))
    extras = user_queries.attributes_by_id(conn, ids)
    memberships = user_queries.cohort_ids_by_user(conn, workspace_id, ids)
    profiles = []
    for user_id, member in sorted(described.items(), key=lambda pair: member_sort_key(pair[1])):
        row = extras[user_id]
        profiles.append(
            {
                "external_id": member["external_id"],
                "user_aliases": member["aliases"],
                "devices": [{"device_id": device} for device in member["device_ids"]],
                "custom_attributes": orjson.loads(row.attributes) if row.attributes else {},
                "created_at": row.created_at,
                "cohorts": memberships.get(user_id, []),
            }
        )
    return profiles
