"""Finding one user, and everything the dashboard shows of it.

A user is found the three ways a partner names one in a cohort import: by
external id, by alias (label and name) or by device id. The first two name
at most one user; a device id may belong to several anonymous users, who are
all listed. Everything is read inside one workspace: a user of another
workspace is never found, whatever identifier or id is typed.

The profile gathers what explains why a user is (or is not) in a campaign's
audience: identifiers, Braze's profile fields, custom attributes, cohorts
(with their partner), segments, the messages the recent launches rendered
for it, and its latest events and purchases (``/users/track``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa

from cohortsync.braze.store import (
    Alias,
    Store,
    profile_queries,
    segment_queries,
    track_queries,
    user_queries,
)
from cohortsync.errors import ConfigError

LOOKUP_KINDS = ("external_id", "alias", "device_id")
"""The identifiers a user is looked up by, in the order the search form offers them."""
RECENT_LAUNCHES = 20
"""How many of the workspace's latest launches a profile's messages come from."""
RECENT_ACTIVITY = 20
"""How many of a user's latest events, and of its latest purchases, a profile lists."""


@dataclass(frozen=True)
class TrackedEvent:
    """One custom event recorded by ``/users/track``."""

    name: str
    time: str
    app_id: str | None
    properties: dict[str, Any]


@dataclass(frozen=True)
class TrackedPurchase:
    """One purchase recorded by ``/users/track`` (``price`` per unit)."""

    product_id: str
    currency: str
    price: float
    quantity: int
    time: str


@dataclass(frozen=True)
class FoundUser:
    """One user a lookup found: enough to list it and open its profile."""

    braze_id: int
    external_id: str | None
    created_at: str
    aliases: list[dict[str, str]] = field(default_factory=list)
    device_ids: list[str] = field(default_factory=list)

    @property
    def anonymous(self) -> bool:
        return self.external_id is None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "anonymous": self.anonymous}


@dataclass(frozen=True)
class ReceivedMessage:
    """One message of the outbox rendered for the user."""

    launch_id: int
    campaign_id: str
    campaign: str
    kind: str
    step: str
    channel: str
    position: int
    sent_at: str
    message: str


@dataclass(frozen=True)
class UserProfile:
    """A user's profile, as the dashboard's user page shows it."""

    braze_id: int
    external_id: str | None
    created_at: str
    aliases: list[dict[str, str]]
    device_ids: list[str]
    attributes: dict[str, Any]
    cohorts: list[dict[str, str]]
    segments: list[dict[str, str]]
    messages: list[ReceivedMessage]
    profile_fields: dict[str, Any] = field(default_factory=dict)
    events: list[TrackedEvent] = field(default_factory=list)
    purchases: list[TrackedPurchase] = field(default_factory=list)

    @property
    def anonymous(self) -> bool:
        return self.external_id is None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "anonymous": self.anonymous}


def find_users(
    store: Store,
    workspace_id: int,
    *,
    external_id: str | None = None,
    alias: Alias | None = None,
    device_id: str | None = None,
) -> list[FoundUser]:
    """The workspace's users holding the one identifier given, by braze id.

    Exactly one of ``external_id``, ``alias`` (``(label, name)``) and
    ``device_id`` must be given and non-empty; an identifier nobody holds
    finds an empty list.
    """
    given = {
        kind: value
        for kind, value in (
            ("external_id", external_id),
            ("alias", alias),
            ("device_id", device_id),
        )
        if value is not None
    }
    if len(given) != 1:
        raise ConfigError(
            f"a user lookup takes one identifier, not {len(given)}",
            hint="give an external id, an alias (label and name) or a device id",
        )
    with store.read() as conn:
        if alias is not None:
            label, name = alias
            if not label.strip() or not name.strip():
                raise ConfigError(
                    "an alias lookup needs both the alias label and the alias name",
                    hint="e.g. label 'email' and name 'someone@example.com'",
                )
            row = user_queries.user_by_alias(conn, workspace_id, (label, name))
            ids = [] if row is None else [int(row.id)]
        elif external_id is not None:
            _require_text(external_id, "external id")
            row = user_queries.user_by_external_id(conn, workspace_id, external_id)
            ids = [] if row is None else [int(row.id)]
        else:
            assert device_id is not None
            _require_text(device_id, "device id")
            ids = user_queries.user_ids_by_device_id(conn, workspace_id, device_id)
        rows = profile_queries.user_rows(conn, workspace_id, ids)
        described = user_queries.members_by_id(
            conn, user_queries.users_with_ids([row.id for row in rows])
        )
    return [
        FoundUser(
            braze_id=int(row.id),
            external_id=row.external_id,
            created_at=row.created_at,
            aliases=described[row.id]["aliases"],
            device_ids=described[row.id]["device_ids"],
        )
        for row in rows
    ]


def _require_text(value: str, what: str) -> None:
    if not value.strip():
        raise ConfigError(f"the {what} to look up is empty", hint=f"type the user's {what}")


def user_profile(
    store: Store,
    workspace_id: int,
    braze_id: int,
    *,
    launches: int = RECENT_LAUNCHES,
    messages: int = 20,
) -> UserProfile | None:
    """The profile of the workspace's user ``braze_id``, or None when it has no such user.

    ``messages`` caps the messages listed, newest launch first, taken from
    the workspace's ``launches`` most recent launches.
    """
    with store.read() as conn:
        row = profile_queries.user_row(conn, workspace_id, braze_id)
        if row is None:
            return None
        member = user_queries.members_by_id(conn, user_queries.users_with_ids([row.id]))[row.id]
        cohorts = [
            dict(cohort._mapping)
            for cohort in profile_queries.cohorts_of_user(conn, workspace_id, row.id)
        ]
        segments = segment_queries.segments_of_user(conn, workspace_id, row.id)
        received = _received_messages(conn, workspace_id, row.id, launches)[: max(0, messages)]
        events = [
            TrackedEvent(
                e.name, e.time, e.app_id, orjson.loads(e.properties) if e.properties else {}
            )
            for e in track_queries.recent_events(conn, row.id, RECENT_ACTIVITY)
        ]
        purchases = [
            TrackedPurchase(p.product_id, p.currency, float(p.price), int(p.quantity), p.time)
            for p in track_queries.recent_purchases(conn, row.id, RECENT_ACTIVITY)
        ]
    fields = orjson.loads(row.standard) if row.standard else {}
    fields.update({k: getattr(row, k) for k in ("email", "phone") if getattr(row, k)})
    return UserProfile(
        braze_id=int(row.id),
        external_id=row.external_id,
        created_at=row.created_at,
        aliases=member["aliases"],
        device_ids=member["device_ids"],
        attributes=orjson.loads(row.attributes) if row.attributes else {},
        cohorts=cohorts,
        segments=segments,
        messages=received,
        profile_fields=dict(sorted(fields.items())),
        events=events,
        purchases=purchases,
    )


def _received_messages(
    conn: sa.Connection, workspace_id: int, user_id: int, launches: int
) -> list[ReceivedMessage]:
    recent = profile_queries.recent_launches(conn, workspace_id, max(0, launches))
    steps: dict[str, list[Any]] = {}
    for step in profile_queries.steps_of(conn, [launch.campaign_id for launch in recent]):
        steps.setdefault(step.campaign_id, []).append(step)
    keys = [
        (int(launch.launch_id), int(step.position))
        for launch in recent
        for step in steps.get(launch.campaign_id, [])
    ]
    sent = profile_queries.sends_to_user(conn, user_id, keys)
    return [
        ReceivedMessage(
            launch_id=int(launch.launch_id),
            campaign_id=launch.campaign_id,
            campaign=launch.campaign,
            kind=launch.kind,
            step=step.name,
            channel=step.channel,
            position=int(step.position),
            sent_at=launch.started_at,
            message=sent[(int(launch.launch_id), int(step.position))],
        )
        for launch in recent
        for step in steps.get(launch.campaign_id, [])
        if (int(launch.launch_id), int(step.position)) in sent
    ]
