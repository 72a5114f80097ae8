"""Queries about the dashboard's users: accounts, workspace memberships, login links, secrets.

A dashboard user is named by email. Memberships decide which workspaces a
user sees; every dashboard page checks one before it reads anything.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from cohortsync.braze.store.tables import (
    campaigns,
    cohorts,
    dashboard_login_links,
    dashboard_memberships,
    dashboard_secrets,
    dashboard_users,
    data_import_keys,
    segments,
    users,
    utc_now,
    workspace_partners,
    workspaces,
)


def user_row(conn: sa.Connection, email: str) -> Any:
    """The dashboard user with that email, or None."""
    return conn.execute(sa.select(dashboard_users).where(dashboard_users.c.email == email)).first()


def insert_user(conn: sa.Connection, email: str, password_hash: str | None) -> int:
    return int(
        conn.execute(
            sa.insert(dashboard_users)
            .values(email=email, password_hash=password_hash, created_at=utc_now())
            .returning(dashboard_users.c.id)
        ).scalar_one()
    )


def set_password_hash(conn: sa.Connection, email: str, password_hash: str) -> None:
    conn.execute(
        sa.update(dashboard_users)
        .where(dashboard_users.c.email == email)
        .values(password_hash=password_hash)
    )


def add_membership(conn: sa.Connection, user_id: int, workspace_id: int) -> bool:
    """Give the user the workspace; False when they had it already."""
    present = conn.execute(
        sa.select(dashboard_memberships.c.user_id).where(
            dashboard_memberships.c.user_id == user_id,
            dashboard_memberships.c.workspace_id == workspace_id,
        )
    ).first()
    if present is not None:
        return False
    conn.execute(
        sa.insert(dashboard_memberships).values(user_id=user_id, workspace_id=workspace_id)
    )
    return True


def user_workspaces(conn: sa.Connection, email: str) -> list[Any]:
    """The workspaces (id, name) the user belongs to, by name."""
    return list(
        conn.execute(
            sa.select(workspaces.c.id, workspaces.c.name)
            .join(dashboard_memberships, dashboard_memberships.c.workspace_id == workspaces.c.id)
            .join(dashboard_users, dashboard_users.c.id == dashboard_memberships.c.user_id)
            .where(dashboard_users.c.email == email)
            .order_by(workspaces.c.name)
        ).all()
    )


def users_with_workspaces(conn: sa.Connection) -> list[tuple[Any, list[str]]]:
    """Every dashboard user, by email, with the names of their workspaces."""
    found: dict[int, tuple[Any, list[str]]] = {}
    for row in conn.execute(sa.select(dashboard_users).order_by(dashboard_users.c.email)):
        found[row.id] = (row, [])
    names = conn.execute(
        sa.select(dashboard_memberships.c.user_id, workspaces.c.name)
        .join(workspaces, workspaces.c.id == dashboard_memberships.c.workspace_id)
        .order_by(workspaces.c.name)
    )
    for user_id, name in names:
        found[user_id][1].append(name)
    return list(found.values())


def insert_login_link(conn: sa.Connection, digest: str, user_id: int, expires_at: str) -> None:
    conn.execute(
        sa.insert(dashboard_login_links).values(
            token_digest=digest, user_id=user_id, expires_at=expires_at
        )
    )


def take_login_link(conn: sa.Connection, digest: str, now: str) -> str | None:
    """The email a link logs in, deleting the link (so it works once); None if unknown or expired.

    Expired links are deleted on the way.
    """
    conn.execute(sa.delete(dashboard_login_links).where(dashboard_login_links.c.expires_at < now))
    email = conn.execute(
        sa.select(dashboard_users.c.email)
        .join(dashboard_login_links, dashboard_login_links.c.user_id == dashboard_users.c.id)
        .where(dashboard_login_links.c.token_digest == digest)
    ).scalar()
    deleted = conn.execute(
        sa.delete(dashboard_login_links).where(dashboard_login_links.c.token_digest == digest)
    )
    # Two requests with one link: only the one whose DELETE removed the row logs in.
    return None if email is None or deleted.rowcount != 1 else str(email)


def secret(conn: sa.Connection, name: str) -> str | None:
    found = conn.execute(
        sa.select(dashboard_secrets.c.value).where(dashboard_secrets.c.name == name)
    ).scalar()
    return None if found is None else str(found)


def insert_secret(conn: sa.Connection, name: str, value: str) -> None:
    conn.execute(sa.insert(dashboard_secrets).values(name=name, value=value))


def replace_secret(conn: sa.Connection, name: str, value: str) -> None:
    """Set the secret ``name`` to ``value``, whether it existed or not."""
    updated = conn.execute(
        sa.update(dashboard_secrets).where(dashboard_secrets.c.name == name).values(value=value)
    )
    if updated.rowcount == 0:
        insert_secret(conn, name, value)


def workspace_counts(conn: sa.Connection, workspace_id: int) -> dict[str, int]:
    """How much of each thing the workspace has, for its home page."""

    def count(table: sa.Table, *conditions: Any) -> int:
        query = sa.select(sa.func.count()).select_from(table)
        return int(
            conn.execute(
                query.where(table.c.workspace_id == workspace_id, *conditions)
            ).scalar_one()
        )

    return {
        "partners": count(workspace_partners),
        "active_keys": count(data_import_keys, data_import_keys.c.invalidated_at.is_(None)),
        "cohorts": count(cohorts),
        "segments": count(segments),
        "campaigns": count(campaigns, campaigns.c.kind == "campaign"),
        "canvases": count(campaigns, campaigns.c.kind == "canvas"),
        "users": count(users),
    }
