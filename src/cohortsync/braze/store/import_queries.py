"""The hot path of cohort imports: identifier lookups and membership writes.

Each ``/cohorts/users`` request costs one lookup per identifier kind (not one
per identifier) and then one ``INSERT ... SELECT`` and one ``DELETE``: a list
of a thousand identifiers is one bound parameter (:func:`values_table`).
Matching rules follow Braze: a device id finds only an anonymous user. A
request that changed members adds one row to the cohort's change history
(:func:`record_change`), in the same transaction as the membership writes.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from cohortsync.braze.store.database import Store, values_table
from cohortsync.braze.store.tables import (
    IDENTIFIER_KINDS,
    Alias,
    cohort_changes,
    cohort_members,
    cohorts,
    user_aliases,
    user_devices,
    users,
    utc_now,
)


@dataclass(frozen=True)
class _Statements:
    """The hot path's statements, built once per dialect with named parameters.

    Building SQLAlchemy constructs costs more than running them on a warm
    SQLite file, so each request only binds values.
    """

    by_external_id: sa.Select[Any]
    by_alias_name: sa.Select[Any]
    by_device_id: sa.Select[Any]
    add_members: Any
    remove_members: sa.Delete
    count_changes: sa.Update
    record_change: sa.Insert


def _as_rows(query: sa.Select[Any]) -> sa.Select[Any]:
    return query


def _as_one_json_row(query: sa.Select[Any]) -> sa.Select[Any]:
    """SQLite: the rows of ``query`` as one JSON array of arrays, in one row.

    pysqlite hands the GIL back and forth on every row it steps through; with
    requests resolving on several threads at once, a thousand rows cost a
    thousand contended GIL switches (and as many Row objects). Aggregated in
    SQLite, a lookup returns one string that orjson reads in one call.
    """
    rows = query.subquery()
    return sa.select(sa.func.json_group_array(sa.func.json_array(*rows.c)))


def _lookup(
    store: Store, conn: sa.Connection, lookup: str, workspace_id: int, **values: Sequence[str]
) -> list[Any]:
    """The rows of the lookup ``lookup`` of :class:`_Statements`, as sequences.

    ``values`` binds the lookup's list parameter (see :func:`values_table`).
    """
    statement = getattr(_statements(store.engine.dialect.name), lookup)
    params: dict[str, Any] = {"workspace_id": workspace_id}
    params.update((name, store.values_param(items)) for name, items in values.items())
    if conn.dialect.name == "sqlite":
        rows: list[Any] = orjson.loads(conn.execute(statement, params).scalar_one())
        return rows
    return list(conn.execute(statement, params).all())


@functools.cache
def _statements(dialect: str) -> _Statements:
    ids, names, devices = (
        values_table(dialect, key, sa.String()) for key in ("ids", "names", "devices")
    )
    added, removed = (values_table(dialect, key, sa.BigInteger()) for key in ("added", "removed"))
    workspace = sa.bindparam("workspace_id", type_=sa.Integer)
    cohort_pk = sa.bindparam("cohort_pk", type_=sa.Integer)
    insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
    lookup = _as_one_json_row if dialect == "sqlite" else _as_rows
    return _Statements(
        by_external_id=lookup(
            sa.select(users.c.external_id, users.c.id).where(
                users.c.workspace_id == workspace, users.c.external_id.in_(sa.select(ids.c.value))
            )
        ),
        by_alias_name=lookup(
            sa.select(
                user_aliases.c.alias_label, user_aliases.c.alias_name, user_aliases.c.user_id
            ).where(
                user_aliases.c.workspace_id == workspace,
                user_aliases.c.alias_name.in_(sa.select(names.c.value)),
            )
        ),
        by_device_id=lookup(
            sa.select(user_devices.c.device_id, user_devices.c.user_id)
            .join(users, users.c.id == user_devices.c.user_id)
            .where(
                user_devices.c.workspace_id == workspace,
                user_devices.c.device_id.in_(sa.select(devices.c.value)),
                users.c.external_id.is_(None),
            )
        ),
        # SQLAlchemy keeps an INSERT's rowcount only when asked (psycopg's cursor is
        # closed by then): it is the number of members added, for the history.
        add_members=insert(cohort_members)
        .from_select(
            ["cohort_pk", "user_id"],
            sa.select(cohort_pk, added.c.value).where(sa.true()),
        )
        .on_conflict_do_nothing()
        .execution_options(preserve_rowcount=True),
        remove_members=sa.delete(cohort_members).where(
            cohort_members.c.cohort_pk == cohort_pk,
            cohort_members.c.user_id.in_(sa.select(removed.c.value)),
        ),
        count_changes=sa.update(cohorts)
        .where(cohorts.c.id == sa.bindparam("pk", type_=sa.Integer))
        .values(
            updated_at=sa.bindparam("now", type_=sa.String),
            **{
                f"{kind}_{count}": cohorts.c[f"{kind}_{count}"]
                + sa.bindparam(f"add_{kind}_{count}", type_=sa.BigInteger)
                for kind in IDENTIFIER_KINDS
                for count in ("received", "matched")
            },
        ),
        record_change=sa.insert(cohort_changes).values(
            cohort_pk=sa.bindparam("pk", type_=sa.Integer),
            at=sa.bindparam("at", type_=sa.String),
            key_fingerprint=sa.bindparam("key_fingerprint", type_=sa.String),
            added=sa.bindparam("added", type_=sa.BigInteger),
            removed=sa.bindparam("removed", type_=sa.BigInteger),
        ),
    )


def ids_by_external_id(
    store: Store, conn: sa.Connection, workspace_id: int, external_ids: Sequence[str]
) -> dict[str, int]:
    """The user id of each external id known in the workspace."""
    rows = _lookup(store, conn, "by_external_id", workspace_id, ids=external_ids)
    return {row[0]: row[1] for row in rows}


def ids_by_alias(
    store: Store, conn: sa.Connection, workspace_id: int, aliases: set[Alias]
) -> dict[Alias, int]:
    """The user id of each alias known in the workspace."""
    names = sorted({name for _, name in aliases})
    rows = _lookup(store, conn, "by_alias_name", workspace_id, names=names)
    return {(row[0], row[1]): row[2] for row in rows if (row[0], row[1]) in aliases}


def anonymous_ids_by_device_id(
    store: Store, conn: sa.Connection, workspace_id: int, device_ids: Sequence[str]
) -> dict[str, int]:
    """The user id of each device id held by an anonymous user of the workspace."""
    rows = _lookup(store, conn, "by_device_id", workspace_id, devices=device_ids)
    return {row[0]: row[1] for row in rows}


def add_members(store: Store, conn: sa.Connection, cohort_pk: int, user_ids: Sequence[int]) -> int:
    """Make users members (those already in stay); how many were added."""
    params = {"cohort_pk": cohort_pk, "added": store.values_param(user_ids)}
    return int(conn.execute(_statements(store.engine.dialect.name).add_members, params).rowcount)


def remove_members(
    store: Store, conn: sa.Connection, cohort_pk: int, user_ids: Sequence[int]
) -> int:
    """Remove users from the cohort; how many were members."""
    params = {"cohort_pk": cohort_pk, "removed": store.values_param(user_ids)}
    statement = _statements(store.engine.dialect.name).remove_members
    return int(conn.execute(statement, params).rowcount)


def count_identifiers(
    store: Store,
    conn: sa.Connection,
    cohort_pk: int,
    counts: Mapping[str, tuple[int, int]],
    *,
    now: str | None = None,
) -> None:
    """Add a request's ``(received, matched)`` per identifier kind to the cohort's counters.

    ``now`` (default: the current time) becomes the cohort's ``updated_at``.
    """
    params: dict[str, Any] = {"pk": cohort_pk, "now": now or utc_now()}
    for kind, (received, matched) in counts.items():
        params[f"add_{kind}_received"] = received
        params[f"add_{kind}_matched"] = matched
    conn.execute(_statements(store.engine.dialect.name).count_changes, params)


def record_change(
    store: Store,
    conn: sa.Connection,
    cohort_pk: int,
    *,
    at: str,
    key_fingerprint: str,
    added: int,
    removed: int,
) -> None:
    """One row of the cohort's change history: a request's members added and removed."""
    params = {
        "pk": cohort_pk,
        "at": at,
        "key_fingerprint": key_fingerprint,
        "added": added,
        "removed": removed,
    }
    conn.execute(_statements(store.engine.dialect.name).record_change, params)
