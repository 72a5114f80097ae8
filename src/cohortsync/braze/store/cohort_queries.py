"""Queries about cohorts: their rows, locks, listings and members.

On PostgreSQL a write holding a cohort reads its row ``FOR UPDATE``
(:func:`cohort_for_update`), so concurrent imports of one cohort queue; on
SQLite the store's single writer does that already.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from cohortsync.braze.store.database import Store
from cohortsync.braze.store.tables import cohort_members, cohorts, partners, utc_now


def cohort_for_update(
    store: Store, conn: sa.Connection, workspace_id: int, cohort_id: str, *, lock: bool = True
) -> Any:
    """The cohort's ``id`` and ``locked`` flag, or None; on PostgreSQL its row stays locked
    with ``lock``."""
    query = sa.select(cohorts.c.id, cohorts.c.locked).where(
        cohorts.c.workspace_id == workspace_id, cohorts.c.cohort_id == cohort_id
    )
    if lock and not store.is_sqlite:
        query = query.with_for_update()
    return conn.execute(query).first()


def create_cohort(
    store: Store,
    conn: sa.Connection,
    *,
    workspace_id: int,
    partner_id: int,
    cohort_id: str,
    name: str,
    created_at: str,
) -> None:
    """A new unlocked cohort; nothing when a concurrent request created it first."""
    conn.execute(
        store.insert_ignore(cohorts).values(
            workspace_id=workspace_id,
            partner_id=partner_id,
            cohort_id=cohort_id,
            name=name,
            created_at=created_at,
            updated_at=utc_now(),
            locked=False,
        )
    )


def rename_cohort(conn: sa.Connection, cohort_pk: int, name: str) -> None:
    conn.execute(
        sa.update(cohorts).where(cohorts.c.id == cohort_pk).values(name=name, updated_at=utc_now())
    )


def set_locked(conn: sa.Connection, cohort_pk: int, locked: bool) -> None:
    conn.execute(sa.update(cohorts).where(cohorts.c.id == cohort_pk).values(locked=locked))


def cohort_row(conn: sa.Connection, workspace_id: int, cohort_id: str) -> Any:
    """The cohort's whole row, or None."""
    query = sa.select(cohorts).filter_by(workspace_id=workspace_id, cohort_id=cohort_id)
    return conn.execute(query).first()


def cohort_with_filter_name(conn: sa.Connection, workspace_id: int, cohort_id: str) -> Any:
    """The cohort's ``id`` and ``name`` with its partner's ``filter_name``, or None."""
    return conn.execute(
        sa.select(cohorts.c.id, cohorts.c.name, partners.c.filter_name)
        .join(partners, partners.c.id == cohorts.c.partner_id)
        .where(cohorts.c.workspace_id == workspace_id, cohorts.c.cohort_id == cohort_id)
    ).first()


def cohorts_with_sizes(conn: sa.Connection, workspace_id: int) -> list[tuple[Any, int]]:
    """Every cohort row of the workspace (with its ``partner`` name) and its member count,
    by cohort id."""
    sizes: dict[int, int] = dict(
        conn.execute(
            sa.select(cohort_members.c.cohort_pk, sa.func.count())
            .join(cohorts, cohorts.c.id == cohort_members.c.cohort_pk)
            .where(cohorts.c.workspace_id == workspace_id)
            .group_by(cohort_members.c.cohort_pk)
        ).all()
    )
    rows = conn.execute(
        sa.select(cohorts, partners.c.name.label("partner"))
        .join(partners, partners.c.id == cohorts.c.partner_id)
        .where(cohorts.c.workspace_id == workspace_id)
        .order_by(cohorts.c.cohort_id)
    ).all()
    return [(row, int(sizes.get(row.id, 0))) for row in rows]


def member_ids(cohort_pk: int) -> sa.Select[Any]:
    """``SELECT user_id`` of the cohort's members."""
    return sa.select(cohort_members.c.user_id).where(cohort_members.c.cohort_pk == cohort_pk)
