"""Queries of ``/users/track`` and ``/users/export/ids``: a fixed number per request.

Lookups take every identifier of one kind at once (one ``IN`` list), writes
are single ``executemany`` statements, and export's summaries of events and
purchases are one ``GROUP BY`` each, so a request of 75 objects costs the
same handful of statements as a request of one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from cohortsync.braze.store.tables import (
    user_aliases,
    user_events,
    user_purchases,
    users,
    utc_now,
)
from cohortsync.braze.store.user_queries import allocate_ids, ids_by_external_id, owners_by_alias


def owners(
    conn: sa.Connection, workspace_id: int, kind: str, values: Iterable[Any]
) -> dict[Any, int]:
    """The profile of each identifier of one kind that has one, in one query.

    ``kind`` is ``external_id``, ``user_alias`` (values are ``(label, name)``),
    ``braze_id`` (the profile's id), ``email`` or ``phone``. Several profiles
    may share an email or a phone: the newest one (highest id) is the owner.
    """
    wanted = list(values)
    if kind == "external_id":
        return dict(ids_by_external_id(conn, workspace_id, wanted))
    if kind == "user_alias":
        return dict(owners_by_alias(conn, workspace_id, set(wanted)))
    if kind == "braze_id":
        rows = conn.execute(
            sa.select(users.c.id, users.c.id).where(
                users.c.workspace_id == workspace_id, users.c.id.in_(wanted)
            )
        )
        return {int(key): int(user_id) for key, user_id in rows}
    column = users.c[kind]
    rows = conn.execute(
        sa.select(column, users.c.id)
        .where(users.c.workspace_id == workspace_id, column.in_(wanted))
        .order_by(users.c.id)
    )
    return {key: int(user_id) for key, user_id in rows}


def profiles_with(conn: sa.Connection, workspace_id: int, kind: str, value: str) -> list[int]:
    """Every profile whose ``email`` or ``phone`` is ``value``, oldest first."""
    column = users.c[kind]
    return [
        int(user_id)
        for user_id in conn.execute(
            sa.select(users.c.id)
            .where(users.c.workspace_id == workspace_id, column == value)
            .order_by(users.c.id)
        ).scalars()
    ]


def create_profiles(
    conn: sa.Connection, workspace_id: int, refs: Sequence[tuple[str, Any]]
) -> dict[tuple[str, Any], int]:
    """One new profile per reference (``external_id``, ``user_alias``, ``email``, ``phone``)."""
    if not refs:
        return {}
    first = allocate_ids(conn, "users", len(refs))
    now = utc_now()
    rows, aliases, made = [], [], {}
    for offset, (kind, value) in enumerate(refs):
        user_id = first + offset
        made[(kind, value)] = user_id
        rows.append(
            {
                "id": user_id,
                "workspace_id": workspace_id,
                "external_id": value if kind == "external_id" else None,
                "email": value if kind == "email" else None,
                "phone": value if kind == "phone" else None,
                "attributes": None,
                "standard": None,
                "created_at": now,
            }
        )
        if kind == "user_alias":
            label, name = value
            aliases.append(
                {
                    "workspace_id": workspace_id,
                    "alias_label": label,
                    "alias_name": name,
                    "user_id": user_id,
                }
            )
    conn.execute(sa.insert(users), rows)
    if aliases:
        conn.execute(sa.insert(user_aliases), aliases)
    return made


_PROFILE_COLUMNS = "id, external_id, attributes, standard, email, phone"
_WRITTEN_COLUMNS = frozenset({"attributes", "standard", "email", "phone"})


def _marker(conn: sa.Connection) -> str:
    """The driver's positional parameter marker: ``?`` (sqlite3) or ``%s`` (psycopg)."""
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


def _locking(conn: sa.Connection) -> str:
    """``FOR UPDATE`` where rows can be locked (PostgreSQL); SQLite's writer holds the file."""
    return "" if conn.dialect.name == "sqlite" else " FOR UPDATE"


# /users/track's own statements go to the driver as SQL text: they are the same few
# on every request, and building, caching and binding them through Core expressions
# cost more than SQLite takes to run them (per request of 75 objects, about half).


def profiles_by_external_id(
    conn: sa.Connection, workspace_id: int, external_ids: Iterable[str]
) -> list[Any]:
    """The profiles with these external ids, with the columns attributes change, locked
    (PostgreSQL) until the commit: the lookup and the read of ``/users/track`` in one."""
    wanted = list(external_ids)
    if not wanted:
        return []
    mark = _marker(conn)
    sql = (
        f"SELECT {_PROFILE_COLUMNS} FROM {users.name} WHERE workspace_id = {mark}"
        f" AND external_id IN ({', '.join([mark] * len(wanted))}){_locking(conn)}"
    )
    return list(conn.exec_driver_sql(sql, (workspace_id, *wanted)))


def profiles_for_update(conn: sa.Connection, ids: Sequence[int]) -> dict[int, Any]:
    """The attribute columns of these profiles, locked (PostgreSQL) until the commit."""
    if not ids:
        return {}
    mark = _marker(conn)
    sql = (
        f"SELECT {_PROFILE_COLUMNS} FROM {users.name}"
        f" WHERE id IN ({', '.join([mark] * len(ids))}){_locking(conn)}"
    )
    return {int(row.id): row for row in conn.exec_driver_sql(sql, tuple(ids))}


def write_profiles(conn: sa.Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Write changed columns of profiles: each row is ``{"uid", column: value, ...}``
    with some of ``attributes``, ``standard``, ``email`` and ``phone``.

    One ``executemany`` per set of columns changed (at most a few per request).
    """
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(k for k in row if k != "uid")), []).append(row)
    mark = _marker(conn)
    for columns, group in sorted(groups.items()):
        unknown = set(columns) - _WRITTEN_COLUMNS
        if unknown:
            raise ValueError(f"write_profiles cannot write {', '.join(sorted(unknown))}")
        assignments = ", ".join(f"{name} = {mark}" for name in columns)
        conn.exec_driver_sql(
            f"UPDATE {users.name} SET {assignments} WHERE id = {mark}",
            [(*(row[name] for name in columns), row["uid"]) for row in group],
        )


def insert_events(conn: sa.Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Record custom events (``user_id``, ``name``, ``time``, ``app_id``, ``properties``)."""
    conn.execute(sa.insert(user_events), list(rows))


def insert_purchases(conn: sa.Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Record purchases (``user_id``, ``product_id``, ``currency``, ``price``, ``quantity``,
    ``time``, ``app_id``, ``properties``)."""
    conn.execute(sa.insert(user_purchases), list(rows))


def profile_columns(conn: sa.Connection, ids: Sequence[int]) -> dict[int, Any]:
    """Each profile's ``attributes``, ``standard``, ``email``, ``phone``, ``created_at``."""
    query = sa.select(
        users.c.id,
        users.c.attributes,
        users.c.standard,
        users.c.email,
        users.c.phone,
        users.c.created_at,
    ).where(users.c.id.in_(list(ids)))
    return {int(row.id): row for row in conn.execute(query)}


def event_summaries(conn: sa.Connection, ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    """Per profile, each event name with its first and last time and count, by name."""
    query = (
        sa.select(
            user_events.c.user_id,
            user_events.c.name,
            sa.func.min(user_events.c.time),
            sa.func.max(user_events.c.time),
            sa.func.count(),
        )
        .where(user_events.c.user_id.in_(list(ids)))
        .group_by(user_events.c.user_id, user_events.c.name)
        .order_by(user_events.c.user_id, user_events.c.name)
    )
    summaries: dict[int, list[dict[str, Any]]] = {}
    for user_id, name, first, last, count in conn.execute(query):
        summaries.setdefault(int(user_id), []).append(
            {"name": name, "first": first, "last": last, "count": int(count)}
        )
    return summaries


def purchase_summaries(
    conn: sa.Connection, ids: Sequence[int]
) -> dict[int, tuple[list[dict[str, Any]], float]]:
    """Per profile, each product with its first and last time and count (quantities
    summed), and the profile's total revenue (price times quantity, summed)."""
    query = (
        sa.select(
            user_purchases.c.user_id,
            user_purchases.c.product_id,
            sa.func.min(user_purchases.c.time),
            sa.func.max(user_purchases.c.time),
            sa.func.sum(user_purchases.c.quantity),
            sa.func.sum(user_purchases.c.price * user_purchases.c.quantity),
        )
        .where(user_purchases.c.user_id.in_(list(ids)))
        .group_by(user_purchases.c.user_id, user_purchases.c.product_id)
        .order_by(user_purchases.c.user_id, user_purchases.c.product_id)
    )
    summaries: dict[int, tuple[list[dict[str, Any]], float]] = {}
    for user_id, product, first, last, count, revenue in conn.execute(query):
        products, total = summaries.get(int(user_id), ([], 0.0))
        products.append({"name": product, "first": first, "last": last, "count": int(count)})
        summaries[int(user_id)] = (products, total + float(revenue))
    return summaries


def recent_events(conn: sa.Connection, user_id: int, limit: int) -> list[Any]:
    """A profile's newest events (``name``, ``time``, ``app_id``, ``properties``)."""
    return list(
        conn.execute(
            sa.select(
                user_events.c.name,
                user_events.c.time,
                user_events.c.app_id,
                user_events.c.properties,
            )
            .where(user_events.c.user_id == user_id)
            .order_by(user_events.c.id.desc())
            .limit(limit)
        )
    )


def recent_purchases(conn: sa.Connection, user_id: int, limit: int) -> list[Any]:
    """A profile's newest purchases."""
    return list(
        conn.execute(
            sa.select(
                user_purchases.c.product_id,
                user_purchases.c.currency,
                user_purchases.c.price,
                user_purchases.c.quantity,
                user_purchases.c.time,
            )
            .where(user_purchases.c.user_id == user_id)
            .order_by(user_purchases.c.id.desc())
            .limit(limit)
        )
    )
