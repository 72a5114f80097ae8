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

A request that added or removed members also leaves one row in the cohort's
change history (when, how many added and removed, the fingerprint of the key
that sent it), written in the same transaction as the members: a request
rolled back or refused (a locked cohort) leaves neither.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import sqlalchemy as sa

from cohortsync.braze import messages
from cohortsync.braze.keys import PartnerCaller
from cohortsync.braze.store import (
    IDENTIFIER_KINDS,
    Alias,
    Store,
    cohort_queries,
    import_queries,
    utc_now,
)
from cohortsync.braze.validation import ApiError, CohortDefinition, MembershipChanges


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

    counts: dict[str, KindCounts] = field(
        default_factory=lambda: {k: KindCounts() for k in IDENTIFIER_KINDS}
    )
    added: int = 0
    removed: int = 0


@dataclass(frozen=True)
class Resolved:
    """Identifier-to-user maps for the identifiers of one request."""

    by_external_id: dict[str, int]
    by_alias: dict[Alias, int]
    by_device_id: dict[str, int]


def resolve(
    store: Store,
    conn: sa.Connection,
    workspace_id: int,
    external_ids: Iterable[str],
    aliases: Iterable[Alias],
    device_ids: Iterable[str],
) -> Resolved:
    """Find the users behind identifiers, one query per kind (none for a kind not sent)."""
    ext_list = sorted(set(external_ids))
    alias_set = set(aliases)
    device_list = sorted(set(device_ids))
    return Resolved(
        import_queries.ids_by_external_id(store, conn, workspace_id, ext_list) if ext_list else {},
        import_queries.ids_by_alias(store, conn, workspace_id, alias_set) if alias_set else {},
        import_queries.anonymous_ids_by_device_id(store, conn, workspace_id, device_list)
        if device_list
        else {},
    )


def _create_cohort(
    store: Store,
    conn: sa.Connection,
    caller: PartnerCaller,
    cohort_id: str,
    name: str,
    created_at: str,
) -> None:
    cohort_queries.create_cohort(
        store,
        conn,
        workspace_id=caller.workspace_id,
        partner_id=caller.partner_id,
        cohort_id=cohort_id,
        name=name,
        created_at=created_at,
    )


def define_cohort(store: Store, caller: PartnerCaller, definition: CohortDefinition) -> None:
    """Create a cohort, or rename it when it exists (its ``created_at`` stays)."""
    with store.write() as conn:
        cohort = cohort_queries.cohort_for_update(
            store, conn, caller.workspace_id, definition.cohort_id
        )
        if cohort is None:
            _create_cohort(
                store, conn, caller, definition.cohort_id, definition.name, definition.created_at
            )
            return
        if cohort.locked:
            raise ApiError(423, messages.RESOURCE_LOCKED)
        cohort_queries.rename_cohort(conn, cohort.id, definition.name)


def resolve_request(
    store: Store, conn: sa.Connection, caller: PartnerCaller, request: MembershipChanges
) -> Resolved | None:
    """The read half of a ``/cohorts/users`` request, on a read snapshot.

    Lookups run outside the write lock so that concurrent requests resolve in
    parallel and only the membership writes queue. Returns None when the
    request carries no identifier (nothing to do).
    """
    if request.size == 0:
        return None
    known = cohort_queries.cohort_for_update(
        store, conn, caller.workspace_id, request.cohort_id, lock=False
    )
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
    """The write half of a ``/cohorts/users`` request, holding the cohort.

    Applies the changes in order: the last change of a user wins. A request
    without identifiers (``cohort_changes: []``, ``resolved`` None) touches
    nothing, not even an unknown cohort: clients send it to check their
    credentials. Any other request on an unknown cohort creates it, named
    after its id, so that its identifier counts are kept even when nothing
    matched.
    """
    if resolved is None:
        return ChangeReport()

    def work(conn: sa.Connection) -> ChangeReport:
        report = ChangeReport()
        cohort = cohort_queries.cohort_for_update(
            store, conn, caller.workspace_id, request.cohort_id
        )
        if cohort is None:
            _create_cohort(store, conn, caller, request.cohort_id, request.cohort_id, utc_now())
            cohort = cohort_queries.cohort_for_update(
                store, conn, caller.workspace_id, request.cohort_id
            )
        if cohort.locked:
            raise ApiError(423, messages.RESOURCE_LOCKED)
        wanted = _final_membership(request, resolved, report)
        _write_membership(store, conn, cohort.id, wanted, report)
        now = utc_now()
        import_queries.count_identifiers(
            store,
            conn,
            cohort.id,
            {kind: (counts.received, counts.matched) for kind, counts in report.counts.items()},
            now=now,
        )
        if report.added or report.removed:
            import_queries.record_change(
                store,
                conn,
                cohort.id,
                at=now,
                key_fingerprint=caller.key_fingerprint,
                added=report.added,
                removed=report.removed,
            )
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
    to_add = sorted(uid for uid, member in wanted.items() if member)
    to_remove = sorted(uid for uid, member in wanted.items() if not member)
    if to_add:
        report.added = import_queries.add_members(store, conn, cohort_pk, to_add)
    if to_remove:
        report.removed = import_queries.remove_members(store, conn, cohort_pk, to_remove)
