"""braze.matching called directly, without HTTP (spec section 1, "Who can be matched").

Identified users match by external id or alias, anonymous users by device id;
a device id of an identified user matches nobody; unknown identifiers are
dropped and counted, never creating a user; adds and removes are idempotent.
Each test runs on a real SQLite store file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from cohortsync.braze import admin, matching
from cohortsync.braze.keys import PartnerCaller
from cohortsync.braze.profiles import identity_operations
from cohortsync.braze.store import IDENTIFIER_KINDS, Store, open_store, partners, users
from cohortsync.braze.validation import ApiError, CohortChange, MembershipChanges

ALICE = ("alice", ("email", "alice@example.com"), "dev-alice")  # identified, with a device
BOB = ("bob", ("email", "bob@example.com"), None)  # identified
ANON = (None, ("email", "anon@example.com"), "dev-anon")  # anonymous, alias and device
GHOST_DEVICE = "dev-ghost"  # an anonymous user with a device only


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    made = open_store(f"sqlite:///{tmp_path / 'braze.db'}")
    yield made
    made.close()


@pytest.fixture
def caller(store: Store) -> PartnerCaller:
    workspace = admin.create_workspace(store, "matching")
    admin.create_partner(store, "treasuredata", api_key="pk-matching")
    admin.enable_partner(store, "treasuredata", workspace=workspace["id"])
    with store.read() as conn:
        partner_id = conn.execute(
            sa.select(partners.c.id).where(partners.c.name == "treasuredata")
        ).scalar_one()
    rows: list[dict[str, Any]] = []
    for external_id, (label, name), device in (ALICE, BOB, ANON):
        row: dict[str, Any] = {"aliases": [{"alias_label": label, "alias_name": name}]}
        if external_id is not None:
            row["external_id"] = external_id
        if device is not None:
            row["device_ids"] = [device]
        rows.append(row)
    rows.append({"device_ids": [GHOST_DEVICE]})
    admin.load_users(store, workspace=workspace["id"], rows=rows)
    return PartnerCaller(workspace_id=workspace["id"], partner_id=partner_id)


def change(
    *,
    user_ids: tuple[str, ...] = (),
    aliases: tuple[tuple[str, str], ...] = (),
    device_ids: tuple[str, ...] = (),
    remove: bool = False,
) -> CohortChange:
    return CohortChange(
        user_ids=user_ids, aliases=aliases, device_ids=device_ids, should_remove=remove
    )


def apply(
    store: Store, caller: PartnerCaller, *changes: CohortChange, cohort: str = "c"
) -> matching.ChangeReport:
    """What the partner endpoint does: resolve on a read snapshot, then write."""
    request = MembershipChanges(cohort_id=cohort, changes=changes)
    with store.read() as conn:
        resolved = matching.resolve_request(store, conn, caller, request)
    return matching.write_changes(store, caller, request, resolved)


def members(store: Store, caller: PartnerCaller, cohort: str = "c") -> list[Any]:
    """Each member as its external id, or its device ids when anonymous."""
    listed = admin.cohort_members(store, cohort, workspace=caller.workspace_id)
    return sorted(m["external_id"] or f"anon:{','.join(m['device_ids'])}" for m in listed)


def counts(report: matching.ChangeReport) -> dict[str, tuple[int, int]]:
    return {kind: (c.received, c.matched) for kind, c in report.counts.items()}


def users_count(store: Store) -> int:
    with store.read() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(users)).scalar_one())


def test_identified_users_match_by_external_id(store: Store, caller: PartnerCaller) -> None:
    report = apply(store, caller, change(user_ids=("alice", "bob")))
    assert members(store, caller) == ["alice", "bob"]
    assert report.added == 2
    assert counts(report)["external_id"] == (2, 2)


def test_identified_users_match_by_alias(store: Store, caller: PartnerCaller) -> None:
    report = apply(store, caller, change(aliases=(ALICE[1], BOB[1])))
    assert members(store, caller) == ["alice", "bob"]
    assert counts(report)["alias"] == (2, 2)


def test_an_alias_needs_its_label_too(store: Store, caller: PartnerCaller) -> None:
    report = apply(store, caller, change(aliases=(("phone", "alice@example.com"),)))
    assert members(store, caller) == []
    assert counts(report)["alias"] == (1, 0)


def test_anonymous_users_match_by_device_id(store: Store, caller: PartnerCaller) -> None:
    report = apply(store, caller, change(device_ids=("dev-anon", GHOST_DEVICE)))
    assert members(store, caller) == ["anon:dev-anon", f"anon:{GHOST_DEVICE}"]
    assert counts(report)["device_id"] == (2, 2)


def test_anonymous_users_match_by_alias(store: Store, caller: PartnerCaller) -> None:
    apply(store, caller, change(aliases=(ANON[1],)))
    assert members(store, caller) == ["anon:dev-anon"]


def test_a_device_id_of_an_identified_user_matches_nobody(
    store: Store, caller: PartnerCaller
) -> None:
    report = apply(store, caller, change(device_ids=("dev-alice",)))
    assert members(store, caller) == []
    assert (report.added, counts(report)["device_id"]) == (0, (1, 0))
    apply(store, caller, change(user_ids=("alice",)))
    report = apply(store, caller, change(device_ids=("dev-alice",), remove=True))
    assert members(store, caller) == ["alice"]  # nor removes anybody
    assert report.removed == 0


def test_an_anonymous_user_identified_later_no_longer_matches_by_device(
    store: Store, caller: PartnerCaller
) -> None:
    assert (
        identity_operations.identify_users(store, caller.workspace_id, [("carol", ANON[1])]) == []
    )
    report = apply(store, caller, change(device_ids=("dev-anon",)))
    assert members(store, caller) == []
    assert counts(report)["device_id"] == (1, 0)
    apply(store, caller, change(user_ids=("carol",)))
    assert members(store, caller) == ["carol"]


def test_unknown_identifiers_are_dropped_and_create_nobody(
    store: Store, caller: PartnerCaller
) -> None:
    before = users_count(store)
    report = apply(
        store,
        caller,
        change(
            user_ids=("alice", "nobody"),
            aliases=(("email", "nobody@example.com"),),
            device_ids=("dev-nobody",),
        ),
    )
    assert members(store, caller) == ["alice"]
    assert counts(report) == {"external_id": (2, 1), "alias": (1, 0), "device_id": (1, 0)}
    assert [report.counts[k].dropped for k in IDENTIFIER_KINDS] == [1, 1, 1]
    assert users_count(store) == before


def test_adds_are_idempotent(store: Store, caller: PartnerCaller) -> None:
    first = apply(store, caller, change(user_ids=("alice",), aliases=(BOB[1],)))
    again = apply(store, caller, change(user_ids=("alice",), aliases=(BOB[1],)))
    assert (first.added, again.added) == (2, 0)
    assert members(store, caller) == ["alice", "bob"]
    # one user named twice in a request, by external id and alias, is added once
    both = apply(store, caller, change(user_ids=("bob",), aliases=(BOB[1],)), cohort="d")
    assert both.added == 1 and members(store, caller, "d") == ["bob"]


def test_removes_are_idempotent(store: Store, caller: PartnerCaller) -> None:
    apply(store, caller, change(user_ids=("alice", "bob"), device_ids=("dev-anon",)))
    first = apply(store, caller, change(aliases=(ALICE[1],), device_ids=("dev-anon",), remove=True))
    again = apply(store, caller, change(aliases=(ALICE[1],), device_ids=("dev-anon",), remove=True))
    assert (first.removed, again.removed) == (2, 0)
    assert members(store, caller) == ["bob"]
    never = apply(store, caller, change(user_ids=("alice",), remove=True), cohort="empty")
    assert never.removed == 0 and members(store, caller, "empty") == []


def test_the_last_change_of_a_user_wins(store: Store, caller: PartnerCaller) -> None:
    report = apply(
        store,
        caller,
        change(user_ids=("alice", "bob")),
        change(aliases=(ALICE[1],), remove=True),
    )
    assert members(store, caller) == ["bob"]
    assert (report.added, report.removed) == (1, 0)


def test_a_request_without_identifiers_touches_nothing(store: Store, caller: PartnerCaller) -> None:
    request = MembershipChanges(cohort_id="unknown", changes=())
    with store.read() as conn:
        assert matching.resolve_request(store, conn, caller, request) is None
    assert counts(matching.write_changes(store, caller, request, None)) == {
        kind: (0, 0) for kind in IDENTIFIER_KINDS
    }
    assert admin.list_cohorts(store, workspace=caller.workspace_id) == []


def test_a_locked_cohort_refuses_changes(store: Store, caller: PartnerCaller) -> None:
    apply(store, caller, change(user_ids=("alice",)))
    admin.lock_cohort(store, "c", workspace=caller.workspace_id)
    with pytest.raises(ApiError, match=r"^Resource locked$") as raised:
        apply(store, caller, change(user_ids=("bob",)))
    assert raised.value.status == 423
    assert members(store, caller) == ["alice"]


def test_resolve_finds_users_by_each_kind(store: Store, caller: PartnerCaller) -> None:
    with store.read() as conn:
        resolved = matching.resolve(
            store,
            conn,
            caller.workspace_id,
            ["alice", "alice", "nobody"],
            [ANON[1], ("email", "nobody@example.com")],
            ["dev-alice", "dev-anon"],
        )
    assert set(resolved.by_external_id) == {"alice"}
    assert set(resolved.by_alias) == {ANON[1]}
    assert set(resolved.by_device_id) == {"dev-anon"}  # dev-alice is an identified user's
    assert resolved.by_alias[ANON[1]] == resolved.by_device_id["dev-anon"]  # one user
