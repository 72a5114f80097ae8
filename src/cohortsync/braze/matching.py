"""Applying a partner's cohort changes to the store: matching and membership.

Matching follows Braze (spec, section 1, "Who can be matched"): an external id
or an alias finds any user that holds it; a device id finds only an anonymous
user (one without an external id), so a device id of an identified user adds
or removes nobody. Unknown identifiers are dropped and counted: no user is
ever created here.

Each request costs one lookup per identifier kind (not one per identifier),
one membership read and at most one insert and one delete, all in one write
transaction holding the cohort: on SQLite the store's single writer, on
PostgreSQL the cohort row ``FOR UPDATE``. Concurrent requests on one cohort
therefore queue and all succeed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from cohortsync.braze import messages
from cohortsync.braze.keys import PartnerCaller
from cohortsync.braze.store import (
    Store,
    cohort_counts,
    cohort_members,
    cohorts,
    user_aliases,
    user_devices,
    users,
    utc_now,
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


def resolve(
    conn: sa.Connection,
    workspace_id: int,
    external_ids: Iterable[str],
    aliases: Iterable[Alias],
    device_ids: Iterable[str],
) -> Resolved:
    """Find the users behind identifiers, one query per kind."""
    ext_list = sorted(set(external_ids))
    alias_set = set(aliases)
    device_list = sorted(set(device_ids))
    by_external_id: dict[str, int] = {}
    if ext_list:
        ext_rows = conn.execute(
            sa.select(users.c.external_id, users.c.id).where(
                users.c.workspace_id == workspace_id, users.c.external_id.in_(ext_list)
            )
        )
        by_external_id = {row[0]: row[1] for row in ext_rows}
    by_alias: dict[Alias, int] = {}
    if alias_set:
        alias_rows = conn.execute(
            sa.select(
                user_aliases.c.alias_label, user_aliases.c.alias_name, user_aliases.c.user_id
            ).where(
                user_aliases.c.workspace_id == workspace_id,
                user_aliases.c.alias_name.in_(sorted({name for _, name in alias_set})),
            )
        )
        by_alias = {(row[0], row[1]): row[2] for row in alias_rows if (row[0], row[1]) in alias_set}
    by_device_id: dict[str, int] = {}
    if device_list:
        device_rows = conn.execute(
            sa.select(user_devices.c.device_id, user_devices.c.user_id)
            .join(users, users.c.id == user_devices.c.user_id)
            .where(
                user_devices.c.workspace_id == workspace_id,
                user_devices.c.device_id.in_(device_list),
                users.c.external_id.is_(None),
            )
        )
        by_device_id = {row[0]: row[1] for row in device_rows}
    return Resolved(by_external_id, by_alias, by_device_id)


def _cohort_for_update(store: Store, conn: sa.Connection, workspace_id: int, cohort_id: str) -> Any:
    query = sa.select(cohorts.c.id, cohorts.c.locked).where(
        cohorts.c.workspace_id == workspace_id, cohorts.c.cohort_id == cohort_id
    )
    if not store.is_sqlite:
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
    report = ChangeReport()
    if request.size == 0:
        return report
    with store.write() as conn:
        cohort = _cohort_for_update(store, conn, caller.workspace_id, request.cohort_id)
        if cohort is None:
            _create_cohort(store, conn, caller, request.cohort_id, request.cohort_id, utc_now())
            cohort = _cohort_for_update(store, conn, caller.workspace_id, request.cohort_id)
        if cohort.locked:
            raise ApiError(423, messages.RESOURCE_LOCKED)
        resolved = resolve(
            conn,
            caller.workspace_id,
            (uid for change in request.changes for uid in change.user_ids),
            (alias for change in request.changes for alias in change.aliases),
            (device for change in request.changes for device in change.device_ids),
        )
        wanted = _final_membership(request, resolved, report)
        _write_membership(conn, cohort.id, wanted, report)
        _record_counts(store, conn, cohort.id, report)
        conn.execute(
            sa.update(cohorts).where(cohorts.c.id == cohort.id).values(updated_at=utc_now())
        )
    return report


def _final_membership(
    request: MembershipChanges, resolved: Resolved, report: ChangeReport
) -> dict[int, bool]:
    """user id -> member afterwards, following the changes in request order."""
    wanted: dict[int, bool] = {}
    for change in request.changes:
        member = not change.should_remove
        pairs: list[tuple[str, list[int | None]]] = [
            ("external_id", [resolved.by_external_id.get(uid) for uid in change.user_ids]),
            ("alias", [resolved.by_alias.get(alias) for alias in change.aliases]),
            ("device_id", [resolved.by_device_id.get(dev) for dev in change.device_ids]),
        ]
        for kind, user_ids in pairs:
            counts = report.counts[kind]
            counts.received += len(user_ids)
            for user_id in user_ids:
                if user_id is not None:
                    counts.matched += 1
                    wanted[user_id] = member
    return wanted


def _write_membership(
    conn: sa.Connection, cohort_pk: int, wanted: dict[int, bool], report: ChangeReport
) -> None:
    if not wanted:
        return
    current = set(
        conn.execute(
            sa.select(cohort_members.c.user_id).where(
                cohort_members.c.cohort_pk == cohort_pk,
                cohort_members.c.user_id.in_(sorted(wanted)),
            )
        ).scalars()
    )
    to_add = [uid for uid, member in wanted.items() if member and uid not in current]
    to_remove = [uid for uid, member in wanted.items() if not member and uid in current]
    if to_add:
        conn.execute(
            sa.insert(cohort_members), [{"cohort_pk": cohort_pk, "user_id": uid} for uid in to_add]
        )
    if to_remove:
        conn.execute(
            sa.delete(cohort_members).where(
                cohort_members.c.cohort_pk == cohort_pk, cohort_members.c.user_id.in_(to_remove)
            )
        )
    report.added, report.removed = len(to_add), len(to_remove)


def _record_counts(store: Store, conn: sa.Connection, cohort_pk: int, report: ChangeReport) -> None:
    for kind, counts in report.counts.items():
        if not counts.received:
            continue
        conn.execute(
            store.insert_ignore(cohort_counts).values(
                cohort_pk=cohort_pk, kind=kind, received=0, matched=0, dropped=0
            )
        )
        conn.execute(
            sa.update(cohort_counts)
            .where(cohort_counts.c.cohort_pk == cohort_pk, cohort_counts.c.kind == kind)
            .values(
                received=cohort_counts.c.received + counts.received,
                matched=cohort_counts.c.matched + counts.matched,
                dropped=cohort_counts.c.dropped + counts.dropped,
            )
        )
