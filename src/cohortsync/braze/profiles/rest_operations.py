"""Braze's ``/users/*`` operations on the store: track and export.

The identity endpoints (alias, identify, delete) are in :mod:`.identity_operations`;
``/users/track`` itself is :mod:`.tracking`, its body parsed by
:mod:`cohortsync.braze.rest_track`.

:func:`track_users` is the short way for code (sandboxes, the test suites)
to set attributes of profiles by external id or alias; :func:`export_users`
is ``/users/export/ids``
(https://www.braze.com/docs/api/endpoints/export/user_data/post_users_identifier/).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa

from cohortsync.braze.profiles import tracking
from cohortsync.braze.profiles.fields import EXPORTED_FIELDS, PROFILE_FIELDS
from cohortsync.braze.profiles.listings import member_sort_key
from cohortsync.braze.store import Alias, Store, track_queries, user_queries


@dataclass(frozen=True)
class TrackedUser:
    """One profile's attributes to set: Braze profile fields and custom attributes
    mixed, as in an attributes object (None removes an attribute)."""

    external_id: str | None
    alias: Alias | None
    update_existing_only: bool
    custom: dict[str, Any] = field(default_factory=dict)


def track_users(store: Store, workspace_id: int, items: list[TrackedUser]) -> list[str]:
    """Set the attributes of profiles by external id or alias (created unless
    ``update_existing_only``); the errors as ``attributes[i]: reason``."""
    objects = []
    for index, item in enumerate(items):
        ref: tracking.Ref = (
            ("external_id", item.external_id)
            if item.external_id is not None
            else ("user_alias", item.alias)
        )
        profile = {k: v for k, v in item.custom.items() if k in PROFILE_FIELDS}
        custom = tuple(
            (k, "set" if v is not None else "unset", v)
            for k, v in item.custom.items()
            if k not in PROFILE_FIELDS
        )
        objects.append(
            tracking.TrackObject(
                "attributes", index, ref, item.update_existing_only, profile=profile, custom=custom
            )
        )
    errors = tracking.track(store, workspace_id, objects)
    return [f"attributes[{error['index']}]: {error['type']}" for error in errors]


@dataclass(frozen=True)
class ExportRequest:
    """Who ``/users/export/ids`` exports, and which fields (empty: all)."""

    external_ids: list[str] = field(default_factory=list)
    aliases: list[Alias] = field(default_factory=list)
    device_id: str | None = None
    braze_id: str | None = None
    email: str | None = None
    phone: str | None = None
    fields: list[str] = field(default_factory=list)


EXPORT_FIELDS = (
    "created_at", "external_id", "user_aliases", "braze_id", *EXPORTED_FIELDS,
    "custom_attributes", "custom_events", "purchases", "total_revenue", "devices", "cohorts",
)  # fmt: skip
"""Every field a profile of ``/users/export/ids`` may have, in the order it shows them."""


def export_users(store: Store, workspace_id: int, request: ExportRequest) -> dict[str, Any]:
    """Profiles by external ids, aliases, a device id, a braze_id, an email or a phone.

    Fields a profile lacks are left out (never ``null``); ``fields_to_export``
    keeps only the fields named. ``invalid_user_ids`` lists the external ids
    no profile has.
    """
    with store.read() as conn:
        found_ext = user_queries.ids_by_external_id(conn, workspace_id, request.external_ids)
        ids = set(found_ext.values())
        if request.aliases:
            ids.update(
                user_queries.owners_by_alias(conn, workspace_id, set(request.aliases)).values()
            )
        if request.device_id is not None:
            ids.update(user_queries.user_ids_by_device_id(conn, workspace_id, request.device_id))
        if request.braze_id is not None and request.braze_id.isdigit():
            braze_id = int(request.braze_id)
            ids.update(track_queries.owners(conn, workspace_id, "braze_id", [braze_id]).values())
        for kind, value in (("email", request.email), ("phone", request.phone)):
            if value is not None:
                ids.update(track_queries.profiles_with(conn, workspace_id, kind, value))
        profiles = _export_profiles(conn, workspace_id, sorted(ids))
    if request.fields:
        wanted = set(request.fields)
        profiles = [{k: v for k, v in p.items() if k in wanted} for p in profiles]
    return {
        "users": profiles,
        "invalid_user_ids": [uid for uid in request.external_ids if uid not in found_ext],
    }


def _export_profiles(
    conn: sa.Connection, workspace_id: int, ids: list[int]
) -> list[dict[str, Any]]:
    described = user_queries.members_by_id(conn, user_queries.users_with_ids(ids))
    columns = track_queries.profile_columns(conn, ids)
    memberships = user_queries.cohort_ids_by_user(conn, workspace_id, ids)
    events = track_queries.event_summaries(conn, ids)
    purchases = track_queries.purchase_summaries(conn, ids)
    profiles = []
    for user_id, member in sorted(described.items(), key=lambda pair: member_sort_key(pair[1])):
        row = columns[user_id]
        standard = orjson.loads(row.standard) if row.standard else {}
        products, revenue = purchases.get(user_id, (None, None))
        profile = {
            "created_at": row.created_at,
            "external_id": member["external_id"],
            "user_aliases": member["aliases"],
            "braze_id": str(user_id),
            **{name: standard.get(name) for name in EXPORTED_FIELDS},
            "email": row.email,
            "phone": row.phone,
            "custom_attributes": orjson.loads(row.attributes) if row.attributes else {},
            "custom_events": events.get(user_id),
            "purchases": products,
            "total_revenue": None if revenue is None else round(revenue, 2),
            "devices": [{"device_id": device} for device in member["device_ids"]],
            "cohorts": memberships.get(user_id, []),
        }
        profiles.append({k: profile[k] for k in EXPORT_FIELDS if profile.get(k) is not None})
    return profiles
