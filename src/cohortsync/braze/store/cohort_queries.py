"""Queries about cohorts: their rows, locks, listings, members and change history.

On PostgreSQL a write holding a cohort reads its row ``FOR UPDATE``
(:func:`cohort_for_update`), so concurrent imports of one cohort queue; on
SQLite the store's single writer does that already.

The dashboard reads members and history a page at a time, by keyset (the
user id, the change id), so a page costs the same however deep it lies.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from cohortsync.braze.store.database import Store
from cohortsync.braze.store.tables import (
    cohort_changes,
    cohort_members,
    cohorts,
    partners,
    user_aliases,
    user_devices,
    users,
    utc_now,
)


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


def cohorts_with_sizes(
    conn: sa.Connection, workspace_id: int, cohort_id: str | None = None
) -> list[tuple[Any, int]]:
    """Every cohort row of the workspace (with its ``partner`` name and
    ``partner_display_name``) and its member count, by cohort id; only the
    cohort ``cohort_id`` when given."""
    scope = [cohorts.c.workspace_id == workspace_id]
    if cohort_id is not None:
        scope.append(cohorts.c.cohort_id == cohort_id)
    sizes: dict[int, int] = dict(
        conn.execute(
            sa.select(cohort_members.c.cohort_pk, sa.func.count())
            .join(cohorts, cohorts.c.id == cohort_members.c.cohort_pk)
            .where(*scope)
            .group_by(cohort_members.c.cohort_pk)
        ).all()
    )
    rows = conn.execute(
        sa.select(
            cohorts,
            partners.c.name.label("partner"),
            partners.c.display_name.label("partner_display_name"),
        )
        .join(partners, partners.c.id == cohorts.c.partner_id)
        .where(*scope)
        .order_by(cohorts.c.cohort_id)
    ).all()
    return [(row, int(sizes.get(row.id, 0))) for row in rows]


def member_ids(cohort_pk: int) -> sa.Select[Any]:
    """``SELECT user_id`` of the cohort's members."""
    return sa.select(cohort_members.c.user_id).where(cohort_members.c.cohort_pk == cohort_pk)


# ---------------------------------------------------------------- pages for the dashboard


def _next_string(text: str) -> str | None:
    """The least string greater than every string starting with ``text`` (code point
    order), or None when there is none."""
    while text:
        last = ord(text[-1])
        if last < 0x10FFFF:
            following = 0xE000 if 0xD800 <= last + 1 <= 0xDFFF else last + 1
            return text[:-1] + chr(following)
        text = text[:-1]
    return None


def _identifier_matches(
    store: Store, column: sa.Column[Any], text: str, *, prefix: bool
) -> sa.ColumnElement[bool]:
    """``column`` equal to ``text``, or starting with it (case-sensitive on both dialects).

    SQLite compares text bytewise, so a prefix is a range its index serves
    (its ``LIKE`` ignores case). PostgreSQL's ``LIKE`` is case-sensitive, and
    a range would follow the database's collation rather than the characters.
    """
    if not prefix:
        return column == text
    if not store.is_sqlite:
        return column.startswith(text, autoescape=True)
    upper = _next_string(text)
    return column >= text if upper is None else sa.and_(column >= text, column < upper)


def _users_with_identifier(
    store: Store, workspace_id: int, text: str, *, prefix: bool
) -> sa.CompoundSelect:
    """``SELECT user_id`` of the workspace's users holding an external id, alias name
    or device id equal to (or starting with) ``text``."""
    return sa.union(
        sa.select(users.c.id.label("user_id")).where(
            users.c.workspace_id == workspace_id,
            _identifier_matches(store, users.c.external_id, text, prefix=prefix),
        ),
        sa.select(user_aliases.c.user_id).where(
            user_aliases.c.workspace_id == workspace_id,
            _identifier_matches(store, user_aliases.c.alias_name, text, prefix=prefix),
        ),
        sa.select(user_devices.c.user_id).where(
            user_devices.c.workspace_id == workspace_id,
            _identifier_matches(store, user_devices.c.device_id, text, prefix=prefix),
        ),
    )


def member_id_page(
    store: Store,
    conn: sa.Connection,
    workspace_id: int,
    cohort_pk: int,
    *,
    after: int | None,
    limit: int,
    search: str | None = None,
    prefix: bool = False,
) -> list[int]:
    """Up to ``limit`` user ids of the cohort's members past ``after``, in id order.

    Only users that exist in the workspace are listed (see :mod:`.matching`
    on merged users); with ``search``, only those holding a matching
    identifier (:func:`_identifier_matches`).
    """
    query = (
        sa.select(cohort_members.c.user_id)
        .join(users, users.c.id == cohort_members.c.user_id)
        .where(cohort_members.c.cohort_pk == cohort_pk, users.c.workspace_id == workspace_id)
        .order_by(cohort_members.c.user_id)
        .limit(limit)
    )
    if after is not None:
        query = query.where(cohort_members.c.user_id > after)
    if search:
        matching = _users_with_identifier(store, workspace_id, search, prefix=prefix).subquery()
        query = query.where(cohort_members.c.user_id.in_(sa.select(matching.c.user_id)))
    return [int(user_id) for user_id in conn.execute(query).scalars()]


def change_page(
    conn: sa.Connection, cohort_pk: int, *, before: int | None, limit: int
) -> list[Any]:
    """Up to ``limit`` rows of the cohort's change history older than the change
    ``before``, newest first."""
    query = (
        sa.select(cohort_changes)
        .where(cohort_changes.c.cohort_pk == cohort_pk)
        .order_by(cohort_changes.c.id.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(cohort_changes.c.id < before)
    return list(conn.execute(query).all())
