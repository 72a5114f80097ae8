"""Queries about users: lookups by identifier, creation, attributes, merges, listings.

User ids come from :func:`allocate_ids` rather than autoincrement so that a
bulk load can insert a million users and their identifiers with plain
``executemany`` and no round trip per user.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import orjson
import sqlalchemy as sa

from cohortsync.braze.store.database import Store
from cohortsync.braze.store.tables import (
    Alias,
    cohort_members,
    cohorts,
    id_counters,
    user_aliases,
    user_devices,
    users,
    utc_now,
)

LOOKUP_CHUNK = 5_000
"""Identifiers per ``IN`` list of a bulk load's lookups."""


def allocate_ids(conn: sa.Connection, name: str, count: int) -> int:
    """Reserve ``count`` consecutive ids of the counter ``name``; return the first.

    The counter row stays locked until the transaction ends, so concurrent
    allocations (PostgreSQL) never overlap.
    """
    result = conn.execute(
        sa.update(id_counters)
        .where(id_counters.c.name == name)
        .values(next_value=id_counters.c.next_value + count)
        .returning(id_counters.c.next_value)
    ).scalar_one()
    return int(result) - count


# ---------------------------------------------------------------- bulk lookups and inserts


def _chunks(values: Sequence[Any], size: int = LOOKUP_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _owners(
    conn: sa.Connection,
    workspace: sa.Column[Any],
    workspace_id: int,
    key: sa.Column[Any],
    owner: sa.Column[Any],
    wanted: Sequence[str],
) -> dict[str, int]:
    """``key -> owner`` for the wanted keys of a workspace, by chunks of IN lists."""
    found: dict[str, int] = {}
    for part in _chunks(wanted):
        rows = conn.execute(
            sa.select(key, owner).where(workspace == workspace_id, key.in_(part))
        ).all()
        found.update((row[0], row[1]) for row in rows)
    return found


def ids_by_external_id(
    conn: sa.Connection, workspace_id: int, external_ids: Sequence[str]
) -> dict[str, int]:
    """The user id of each external id that exists in the workspace."""
    return _owners(
        conn, users.c.workspace_id, workspace_id, users.c.external_id, users.c.id, external_ids
    )


def owners_by_device_id(
    conn: sa.Connection, workspace_id: int, device_ids: Sequence[str]
) -> dict[str, int]:
    """The user holding each device id that exists in the workspace."""
    return _owners(
        conn,
        user_devices.c.workspace_id,
        workspace_id,
        user_devices.c.device_id,
        user_devices.c.user_id,
        device_ids,
    )


def owners_by_alias(
    conn: sa.Connection, workspace_id: int, aliases: set[Alias]
) -> dict[Alias, int]:
    """The user holding each alias that exists in the workspace."""
    found: dict[Alias, int] = {}
    for part in _chunks(sorted({name for _, name in aliases})):
        for label, name, user_id in conn.execute(
            sa.select(
                user_aliases.c.alias_label, user_aliases.c.alias_name, user_aliases.c.user_id
            ).where(
                user_aliases.c.workspace_id == workspace_id, user_aliases.c.alias_name.in_(part)
            )
        ):
            if (label, name) in aliases:
                found[(label, name)] = user_id
    return found


def alias_names_by_user_and_label(
    conn: sa.Connection, user_ids: Sequence[int]
) -> dict[tuple[int, str], str]:
    """The alias name each of these users holds, by ``(user id, alias label)``."""
    held: dict[tuple[int, str], str] = {}
    for part in _chunks(sorted(set(user_ids))):
        for user_id, label, name in conn.execute(
            sa.select(
                user_aliases.c.user_id, user_aliases.c.alias_label, user_aliases.c.alias_name
            ).where(user_aliases.c.user_id.in_(part))
        ):
            held[(user_id, label)] = name
    return held


def insert_users(conn: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert users (``id``, ``workspace_id``, ``external_id``, ``attributes``, ``created_at``)."""
    conn.execute(sa.insert(users), list(rows))


def insert_identifiers(
    store: Store,
    conn: sa.Connection,
    aliases: Sequence[Mapping[str, Any]],
    devices: Sequence[Mapping[str, Any]],
) -> None:
    """Give users aliases and device ids; one already held by another user stays there."""
    if aliases:
        conn.execute(store.insert_ignore(user_aliases), list(aliases))
    if devices:
        conn.execute(store.insert_ignore(user_devices), list(devices))


# ---------------------------------------------------------------- one user at a time


def user_by_external_id(conn: sa.Connection, workspace_id: int, external_id: str) -> Any:
    """The user row with that external id, or None."""
    query = sa.select(users).filter_by(workspace_id=workspace_id, external_id=external_id)
    return conn.execute(query).first()


def user_by_alias(conn: sa.Connection, workspace_id: int, alias: Alias) -> Any:
    """The user row holding that alias, or None."""
    return conn.execute(
        sa.select(users)
        .join(user_aliases, user_aliases.c.user_id == users.c.id)
        .where(
            user_aliases.c.workspace_id == workspace_id,
            user_aliases.c.alias_label == alias[0],
            user_aliases.c.alias_name == alias[1],
        )
    ).first()


def user_ids_by_device_id(conn: sa.Connection, workspace_id: int, device_id: str) -> list[int]:
    """The users holding a device id (any user, identified or not)."""
    return list(
        conn.execute(
            sa.select(user_devices.c.user_id).where(
                user_devices.c.workspace_id == workspace_id,
                user_devices.c.device_id == device_id,
            )
        ).scalars()
    )


def add_alias(conn: sa.Connection, workspace_id: int, alias: Alias, user_id: int) -> None:
    conn.execute(
        sa.insert(user_aliases).values(
            workspace_id=workspace_id, alias_label=alias[0], alias_name=alias[1], user_id=user_id
        )
    )


def create_user(
    conn: sa.Connection, workspace_id: int, external_id: str | None, alias: Alias | None
) -> int:
    """A new user with an external id, an alias or both; its id."""
    user_id = allocate_ids(conn, "users", 1)
    conn.execute(
        sa.insert(users).values(
            id=user_id, workspace_id=workspace_id, external_id=external_id, created_at=utc_now()
        )
    )
    if alias is not None:
        add_alias(conn, workspace_id, alias, user_id)
    return user_id


def set_external_id(conn: sa.Connection, user_id: int, external_id: str) -> None:
    conn.execute(sa.update(users).where(users.c.id == user_id).values(external_id=external_id))


def merge_attributes(
    conn: sa.Connection, user_id: int, custom: dict[str, Any], *, keep: bool = False
) -> None:
    """Write custom attributes onto a user; with ``keep``, the user's own values win.

    The row is re-read ``FOR UPDATE`` (PostgreSQL; SQLite has one writer) so
    that concurrent updates of one user merge instead of overwriting each other.
    """
    if not custom:
        return
    stored = conn.execute(
        sa.select(users.c.attributes).where(users.c.id == user_id).with_for_update()
    ).scalar()
    current = orjson.loads(stored) if stored else {}
    merged = {**custom, **current} if keep else {**current, **custom}
    conn.execute(
        sa.update(users)
        .where(users.c.id == user_id)
        .values(attributes=orjson.dumps(merged).decode())
    )


# ---------------------------------------------------------------- listings


def members_by_id(conn: sa.Connection, user_ids: sa.Select[Any]) -> dict[int, dict[str, Any]]:
    """``{"external_id", "aliases", "device_ids"}`` of each selected user, keyed by user id.

    Aliases sort by label then name, device ids by id.
    """
    members: dict[int, dict[str, Any]] = {
        row.id: {"external_id": row.external_id, "aliases": [], "device_ids": []}
        for row in conn.execute(
            sa.select(users.c.id, users.c.external_id).where(users.c.id.in_(user_ids))
        )
    }
    for user_id, label, name in conn.execute(
        sa.select(user_aliases.c.user_id, user_aliases.c.alias_label, user_aliases.c.alias_name)
        .where(user_aliases.c.user_id.in_(user_ids))
        .order_by(user_aliases.c.alias_label, user_aliases.c.alias_name)
    ):
        members[user_id]["aliases"].append({"alias_label": label, "alias_name": name})
    for user_id, device_id in conn.execute(
        sa.select(user_devices.c.user_id, user_devices.c.device_id)
        .where(user_devices.c.user_id.in_(user_ids))
        .order_by(user_devices.c.device_id)
    ):
        members[user_id]["device_ids"].append(device_id)
    return members


def users_with_ids(ids: Sequence[int]) -> sa.Select[Any]:
    """``SELECT users.id`` of the given ids (for :func:`members_by_id`)."""
    return sa.select(users.c.id).where(users.c.id.in_(ids))


def attributes_by_id(conn: sa.Connection, ids: Sequence[int]) -> dict[int, Any]:
    """Each user's row of ``attributes`` (JSON text or None) and ``created_at``."""
    return {
        row.id: row
        for row in conn.execute(
            sa.select(users.c.id, users.c.attributes, users.c.created_at).where(users.c.id.in_(ids))
        )
    }


def cohort_ids_by_user(
    conn: sa.Connection, workspace_id: int, ids: Sequence[int]
) -> dict[int, list[str]]:
    """The cohort ids each user belongs to, sorted."""
    memberships: dict[int, list[str]] = {}
    for user_id, cohort_id in conn.execute(
        sa.select(cohort_members.c.user_id, cohorts.c.cohort_id)
        .select_from(cohorts)
        .join(cohort_members, cohorts.c.id == cohort_members.c.cohort_pk)
        .where(cohorts.c.workspace_id == workspace_id, cohort_members.c.user_id.in_(ids))
        .order_by(cohorts.c.cohort_id)
    ):
        memberships.setdefault(user_id, []).append(cohort_id)
    return memberships
