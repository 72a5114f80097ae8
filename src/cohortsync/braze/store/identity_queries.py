"""Queries of the identity endpoints: aliases per label, identify's merges, deletion.

A user holds at most one alias per label (Braze's rule). The schema cannot
say so without a migration, so the writers lock the user's row
(:func:`lock_users`, ``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite has one
writer) before they read its labels and add an alias, and concurrent writers
of one user take turns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa

from cohortsync.braze.store.tables import (
    cohort_members,
    cohorts,
    user_aliases,
    user_devices,
    user_events,
    user_purchases,
    users,
)
from cohortsync.braze.store.user_queries import merge_attributes


def lock_users(conn: sa.Connection, user_ids: Sequence[int]) -> None:
    """Lock the users' rows until the transaction ends, in id order (no deadlock)."""
    for user_id in sorted(set(user_ids)):
        conn.execute(sa.select(users.c.id).where(users.c.id == user_id).with_for_update()).all()


def alias_labels(conn: sa.Connection, user_id: int) -> set[str]:
    """The labels of the user's aliases."""
    return set(
        conn.execute(
            sa.select(user_aliases.c.alias_label).where(user_aliases.c.user_id == user_id)
        ).scalars()
    )


def users_with_email(conn: sa.Connection, workspace_id: int, email: str) -> list[Any]:
    """The workspace's user rows whose ``email`` profile field is ``email``, oldest first."""
    return list(
        conn.execute(
            sa.select(users)
            .where(users.c.workspace_id == workspace_id, users.c.email == email)
            .order_by(users.c.id)
        ).all()
    )


def users_with(conn: sa.Connection, workspace_id: int, kind: str, value: str) -> list[Any]:
    """The workspace's user rows whose ``email`` or ``phone`` (``kind``) is ``value``."""
    column = users.c["phone" if kind == "phone" else "email"]
    return list(
        conn.execute(
            sa.select(users)
            .where(users.c.workspace_id == workspace_id, column == value)
            .order_by(users.c.id)
        ).all()
    )


def user_ids_by_braze_id(
    conn: sa.Connection, workspace_id: int, braze_ids: Sequence[int]
) -> set[int]:
    """The braze ids (user ids) that name a user of the workspace."""
    if not braze_ids:
        return set()
    return set(
        conn.execute(
            sa.select(users.c.id).where(
                users.c.workspace_id == workspace_id, users.c.id.in_(sorted(set(braze_ids)))
            )
        ).scalars()
    )


def _workspace_cohorts(conn: sa.Connection, workspace_id: int) -> list[int]:
    return list(
        conn.execute(
            sa.select(cohorts.c.id).where(cohorts.c.workspace_id == workspace_id)
        ).scalars()
    )


def _cohorts_of(conn: sa.Connection, workspace_cohorts: list[int], user_id: int) -> set[int]:
    # Memberships are keyed (cohort, user), with no index on the user alone.
    return set(
        conn.execute(
            sa.select(cohort_members.c.cohort_pk).where(
                cohort_members.c.cohort_pk.in_(workspace_cohorts),
                cohort_members.c.user_id == user_id,
            )
        ).scalars()
    )


def absorb_user(
    conn: sa.Connection, workspace_id: int, source: Any, target_id: int, *, merge_data: bool
) -> None:
    """Combine the user row ``source`` into the user ``target_id``, then delete ``source``.

    Aliases and device ids always move. With ``merge_data``, cohort
    memberships, events and purchases move too, and the profile fields and
    custom attributes the target lacks are copied; without it they stay
    behind and go with ``source``.
    """
    for table in (user_aliases, user_devices):
        conn.execute(sa.update(table).where(table.c.user_id == source.id).values(user_id=target_id))
    workspace_cohorts = _workspace_cohorts(conn, workspace_id)
    source_cohorts = _cohorts_of(conn, workspace_cohorts, source.id)
    if merge_data:
        missing = source_cohorts - _cohorts_of(conn, workspace_cohorts, target_id)
        if missing:
            conn.execute(
                sa.insert(cohort_members),
                [{"cohort_pk": pk, "user_id": target_id} for pk in sorted(missing)],
            )
        for table in (user_events, user_purchases):
            conn.execute(
                sa.update(table).where(table.c.user_id == source.id).values(user_id=target_id)
            )
        _copy_missing_fields(conn, source, target_id)
    _delete_held(conn, [source.id], sorted(source_cohorts))
    conn.execute(sa.delete(users).where(users.c.id == source.id))


def _copy_missing_fields(conn: sa.Connection, source: Any, target_id: int) -> None:
    """Give the target the email, phone, profile fields and custom attributes it lacks."""
    target = conn.execute(
        sa.select(users.c.email, users.c.phone, users.c.standard)
        .where(users.c.id == target_id)
        .with_for_update()
    ).one()
    values: dict[str, Any] = {
        column: getattr(source, column)
        for column in ("email", "phone")
        if getattr(target, column) is None and getattr(source, column) is not None
    }
    if source.standard:
        own = orjson.loads(target.standard) if target.standard else {}
        merged = {**orjson.loads(source.standard), **own}
        if merged != own:
            values["standard"] = orjson.dumps(merged).decode()
    if values:
        conn.execute(sa.update(users).where(users.c.id == target_id).values(**values))
    if source.attributes:
        merge_attributes(conn, target_id, orjson.loads(source.attributes), keep=True)


def _delete_held(conn: sa.Connection, ids: list[int], cohort_pks: list[int]) -> None:
    """Delete what the users hold: memberships (of these cohorts), identifiers, activity."""
    if cohort_pks:
        conn.execute(
            sa.delete(cohort_members).where(
                cohort_members.c.cohort_pk.in_(cohort_pks),
                cohort_members.c.user_id.in_(ids),
            )
        )
    for table in (user_aliases, user_devices, user_events, user_purchases):
        conn.execute(sa.delete(table).where(table.c.user_id.in_(ids)))


def delete_users(conn: sa.Connection, workspace_id: int, user_ids: Sequence[int]) -> int:
    """Delete the users with their aliases, devices, cohort memberships, profile fields,
    attributes, events and purchases; how many were deleted."""
    ids = sorted(set(user_ids))
    if not ids:
        return 0
    _delete_held(conn, ids, _workspace_cohorts(conn, workspace_id))
    deleted = conn.execute(
        sa.delete(users).where(users.c.workspace_id == workspace_id, users.c.id.in_(ids))
    )
    return int(deleted.rowcount)
