"""Applying a partner's cohort changes to the store: matching and membership.

Matching follows Braze (spec, section 1, "Who can be matched"): an external id
or an alias finds any user that holds it; a device id finds only an anonymous
user (one without an external id), so a device id of an identified user adds
or removes nobody. Unknown identifiers are dropped and counted: no user is
ever created here.

Each request costs one lookup per identifier kind (not one per identifier),
run on a read snapshot so that concurrent requests resolve in parallel, then
one ``INSERT ... SELECT`` and one ``DELETE`` in a write transaction holding
the cohort: on SQLite the store's single writer, on PostgreSQL the cohort row
``FOR UPDATE``. Concurrent requests on one cohort therefore queue and all
succeed. A user merged away (``/users/identify``) between the lookup and the
write may leave a membership row for a user id that no longer exists; every
listing reads members through the users table, so such a row shows nowhere.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from cohortsync.braze import messages
from cohortsync.braze.keys import PartnerCaller
from cohortsync.braze.store import (
    Store,
    cohort_members,
    cohorts,
    user_aliases,
    user_devices,
    users,
    utc_now,
    values_table,
)
from cohortsync.braze.validation import (
    Alias,
    ApiError,
    CohortDefinition,
    MembershipChanges,
)

KINDS = ("external_id", "alias", "device_id")


@dataclass
class KindCounts:
    """Identifiers of one kind received by a cohort, and how many found a user."""

    received: int = 0
    matched: int = 0

    @property
    def dropped(self) -> int:
        return self.received - self.matched


@dataclass
class ChangeReport:
    """What one ``/cohorts/users`` request did."""

    counts: dict[str, KindCounts] = field(default_factory=lambda: {k: KindCounts() for k in KINDS})
    added: int = 0
    removed: int = 0


@dataclass(frozen=True)
class Resolved:
    """Identifier-to-user maps for the identifiers of one request."""

    by_external_id: dict[str, int]
    by_alias: dict[Alias, int]
    by_device_id: dict[str, int]


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


def _lookup(conn: sa.Connection, statement: sa.Select[Any], params: dict[str, Any]) -> list[Any]:
    """The rows of a lookup built by :func:`_statements`, as sequences."""
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
        add_members=insert(cohort_members)
        .from_select(
            ["cohort_pk", "user_id"],
            sa.select(cohort_pk, added.c.value).where(sa.true()),
        )
        .on_conflict_do_nothing(),
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
                for kind in KINDS
                for count in ("received", "matched")
            },
        ),
    )


def resolve(
    store: Store,
    conn: sa.Connection,
    workspace_id: int,
    external_ids: Iterable[str],
    aliases: Iterable[Alias],
    device_ids: Iterable[str],
) -> Resolved:
    """Find the users behind identifiers, one query per kind."""
    statements = _statements(store.engine.dialect.name)
    ext_list = sorted(set(external_ids))
    alias_set = set(aliases)
    device_list = sorted(set(device_ids))
    by_external_id: dict[str, int] = {}
    if ext_list:
        rows = _lookup(
            conn,
            statements.by_external_id,
            {"workspace_id": workspace_id, "ids": store.values_param(ext_list)},
        )
        by_external_id = {row[0]: row[1] for row in rows}
    by_alias: dict[Alias, int] = {}
    if alias_set:
        names = sorted({name for _, name in alias_set})
        rows = _lookup(
            conn,
            statements.by_alias_name,
            {"workspace_id": workspace_id, "names": store.values_param(names)},
        )
        by_alias = {(row[0], row[1]): row[2] for row in rows if (row[0], row[1]) in alias_set}
    by_device_id: dict[str, int] = {}
    if device_list:
        rows = _lookup(
            conn,
            statements.by_device_id,
            {"workspace_id": workspace_id, "devices": store.values_param(device_list)},
        )
        by_device_id = {row[0]: row[1] for row in rows}
    return Resolved(by_external_id, by_alias, by_device_id)


def _cohort_for_update(
    store: Store, conn: sa.Connection, workspace_id: int, cohort_id: str, *, lock: bool = True
) -> Any:
    """The cohort's id and lock flag; on PostgreSQL its row stays locked with ``lock``."""
    query = sa.select(cohorts.c.id, cohorts.c.locked).where(
        cohorts.c.workspace_id == workspace_id, cohorts.c.cohort_id == cohort_id
    )
    if lock and not store.is_sqlite:
        query = query.with_for_update()
    return conn.execute(query).first()


def _create_cohort(
    store: Store,
    conn: sa.Connection,
    caller: PartnerCaller,
    cohort_id: str,
    name: str,
    created_at: str,
) -> None:
    now = utc_now()
    conn.execute(
        store.insert_ignore(cohorts).values(
            workspace_id=caller.workspace_id,
            partner_id=caller.partner_id,
            cohort_id=cohort_id,
            name=name,
            created_at=created_at,
            updated_at=now,
            locked=False,
        )
    )


def define_cohort(store: Store, caller: PartnerCaller, definition: CohortDefinition) -> None:
    """Create a cohort, or rename it when it exists (its ``created_at`` stays)."""
    with store.write() as conn:
        cohort = _cohort_for_update(store, conn, caller.workspace_id, definition.cohort_id)
        if cohort is None:
            _create_cohort(
                store, conn, caller, definition.cohort_id, definition.name, definition.created_at
            )
            return
        if cohort.locked:
            raise ApiError(423, messages.RESOURCE_LOCKED)
        conn.execute(
            sa.update(cohorts)
            .where(cohorts.c.id == cohort.id)
            .values(name=definition.name, updated_at=utc_now())
        )


def apply_membership_changes(
    store: Store, caller: PartnerCaller, request: MembershipChanges
) -> ChangeReport:
    """Apply a request's changes in order; the last change of a user wins.

    A request without identifiers (``cohort_changes: []``) touches nothing,
    not even an unknown cohort: clients send it to check their credentials.
    Any other request on an unknown cohort creates it, named after its id, so
    that its identifier counts are kept even when nothing matched.
    """
    with store.read() as conn:
        resolved = resolve_request(store, conn, caller, request)
    return write_changes(store, caller, request, resolved)


def resolve_request(
    store: Store, conn: sa.Connection, caller: PartnerCaller, request: MembershipChanges
) -> Resolved | None:
    """The read half of :func:`apply_membership_changes`, on a read snapshot.

    Lookups run outside the write lock so that concurrent requests resolve in
    parallel and only the membership writes queue. Returns None when the
    request carries no identifier (nothing to do).
    """
    if request.size == 0:
        return None
    known = _cohort_for_update(store, conn, caller.workspace_id, request.cohort_id, lock=False)
    if known is not None and known.locked:
        raise ApiError(423, messages.RESOURCE_LOCKED)
    return resolve(
        store,
        conn,
        caller.workspace_id,
        chain.from_iterable(change.user_ids for change in request.changes),
        chain.from_iterable(change.aliases for change in request.changes),
        chain.from_iterable(change.device_ids for change in request.changes),
    )


def write_changes(
    store: Store, caller: PartnerCaller, request: MembershipChanges, resolved: Resolved | None
) -> ChangeReport:
    """The write half of :func:`apply_membership_changes`, holding the cohort."""
    if resolved is None:
        return ChangeReport()

    def work(conn: sa.Connection) -> ChangeReport:
        report = ChangeReport()
        cohort = _cohort_for_update(store, conn, caller.workspace_id, request.cohort_id)
        if cohort is None:
            _create_cohort(store, conn, caller, request.cohort_id, request.cohort_id, utc_now())
            cohort = _cohort_for_update(store, conn, caller.workspace_id, request.cohort_id)
        if cohort.locked:
            raise ApiError(423, messages.RESOURCE_LOCKED)
        wanted = _final_membership(request, resolved, report)
        _write_membership(store, conn, cohort.id, wanted, report)
        params: dict[str, Any] = {"pk": cohort.id, "now": utc_now()}
        for kind, counts in report.counts.items():
            params[f"add_{kind}_received"] = counts.received
            params[f"add_{kind}_matched"] = counts.matched
        conn.execute(_statements(store.engine.dialect.name).count_changes, params)
        return report

    return store.write_grouped(work)


def _final_membership(
    request: MembershipChanges, resolved: Resolved, report: ChangeReport
) -> dict[int, bool]:
    """user id -> member afterwards, following the changes in request order."""
    wanted: dict[int, bool] = {}
    for change in request.changes:
        member = not change.should_remove
        kinds: tuple[tuple[str, dict[Any, int], tuple[Any, ...]], ...] = (
            ("external_id", resolved.by_external_id, change.user_ids),
            ("alias", resolved.by_alias, change.aliases),
            ("device_id", resolved.by_device_id, change.device_ids),
        )
        for kind, found, identifiers in kinds:
            user_ids = [found[key] for key in identifiers if key in found]
            counts = report.counts[kind]
            counts.received += len(identifiers)
            counts.matched += len(user_ids)
            wanted.update(dict.fromkeys(user_ids, member))
    return wanted


def _write_membership(
    store: Store, conn: sa.Connection, cohort_pk: int, wanted: dict[int, bool], report: ChangeReport
) -> None:
    """One INSERT ... SELECT for the adds, one DELETE for the removes."""
    statements = _statements(store.engine.dialect.name)
    to_add = sorted(uid for uid, member in wanted.items() if member)
    to_remove = sorted(uid for uid, member in wanted.items() if not member)
    if to_add:
        params = {"cohort_pk": cohort_pk, "added": store.values_param(to_add)}
        report.added = conn.execute(statements.add_members, params).rowcount
    if to_remove:
        params = {"cohort_pk": cohort_pk, "removed": store.values_param(to_remove)}
        report.removed = conn.execute(statements.remove_members, params).rowcount
