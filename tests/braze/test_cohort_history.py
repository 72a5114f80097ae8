"""A cohort's change history: one row per import request that changed members.

Each row says when, how many members were added and removed (exactly: an
identifier that matches nobody or a user already in counts nothing), and
the fingerprint of the data import key that sent it. It is written in the
import's own transaction, so a request refused or rolled back leaves
neither members nor history.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa

from cohortsync.braze import admin, cohort_views, matching
from cohortsync.braze.keys import authenticate_partner, key_fingerprint
from cohortsync.braze.sandbox import Sandbox
from cohortsync.braze.validation import CohortChange, MembershipChanges
from cohortsync.errors import ConfigError

from .support import PartnerClient, email, member_ids, unique


def history(sandbox: Sandbox, cohort_id: str = "vip") -> list[tuple[int, int, str]]:
    """``(added, removed, key fingerprint)`` of each change, newest first."""
    page = cohort_views.cohort_history(
        sandbox.store, cohort_id, workspace=sandbox.workspace, limit=cohort_views.MAX_PAGE_SIZE
    )
    assert page["next_before"] is None
    return [(c["added"], c["removed"], c["key_fingerprint"]) for c in page["changes"]]


def test_the_fingerprint_is_the_first_12_hex_digits_of_the_keys_sha256() -> None:
    key = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
    assert key_fingerprint(key) == hashlib.sha256(key.encode()).hexdigest()[:12]
    assert len(key_fingerprint(key)) == 12
    assert key_fingerprint(key) != key_fingerprint(key + "x")


def test_added_and_removed_are_counted_exactly(partner: PartnerClient, sandbox: Sandbox) -> None:
    sandbox.load_users(
        [
            {"external_id": "u1"},
            {"external_id": "u2", "aliases": [email("u2@x.io")]},
            {"external_id": "u3"},
            {"external_id": "u4"},
            {"device_ids": ["d-anon"]},
        ]
    )
    fingerprint = key_fingerprint(sandbox.data_import_key)
    # Three members; an unknown external id and an unknown device id add nobody.
    partner.add("vip", user_ids=["u1", "u2", "nobody"], device_ids=["d-anon", "d-unknown"])
    # u1 and u2 (by alias) are in already: only u3 counts.
    partner.add("vip", user_ids=["u1", "u3"], aliases=[email("u2@x.io")])
    # Nothing changes: members re-added, unknown identifiers. No row.
    partner.add("vip", user_ids=["u1", "u2"])
    partner.add("vip", user_ids=["ghost"], aliases=[email("ghost@x.io")])
    # u4 is no member: only u2 is removed.
    partner.remove("vip", user_ids=["u2", "u4", "nobody"])
    # One request adding and removing; u1 named twice, the last change wins.
    response = partner.change(
        "vip",
        {"user_ids": ["u4", "u1"]},
        {"user_ids": ["u1"], "should_remove": True},
    )
    assert response.status_code == 200
    assert history(sandbox) == [
        (1, 1, fingerprint),
        (0, 1, fingerprint),
        (1, 0, fingerprint),
        (3, 0, fingerprint),
    ]
    members = sandbox.members("vip")
    assert member_ids(members) == ["u3", "u4", None]
    assert sum(a - r for a, r, _ in history(sandbox)) == len(members)


def test_each_change_names_the_key_that_sent_it(partner: PartnerClient, sandbox: Sandbox) -> None:
    sandbox.load_users([{"external_id": "u1"}, {"external_id": "u2"}])
    second = sandbox.generate_key()
    partner.add("vip", user_ids=["u1"])
    PartnerClient(sandbox, client_secret=second).add("vip", user_ids=["u2"])
    expected = [
        hashlib.sha256(k.encode()).hexdigest()[:12] for k in (second, sandbox.data_import_key)
    ]
    assert [fingerprint for _, _, fingerprint in history(sandbox)] == expected
    listed = admin.list_keys(sandbox.store, workspace=sandbox.workspace)
    assert {key["fingerprint"] for key in listed} == set(expected)


def test_refused_requests_record_nothing(partner: PartnerClient, sandbox: Sandbox) -> None:
    sandbox.load_users([{"external_id": "u1"}, {"external_id": "u2"}])
    partner.add("vip", user_ids=["u1"])
    before = history(sandbox)
    assert len(before) == 1
    sandbox.lock("vip")
    assert partner.change("vip", {"user_ids": ["u2"]}).status_code == 423
    sandbox.unlock("vip")
    stale = sandbox.generate_key()
    sandbox.invalidate_key(stale)
    refused = PartnerClient(sandbox, client_secret=stale).change("vip", {"user_ids": ["u2"]})
    assert refused.status_code == 401
    bad_body = partner.change("vip", {"user_ids": ["u2"]}, {"user_ids": [7]})
    assert bad_body.status_code == 400
    assert partner.change("vip").status_code == 200  # no identifiers: a credentials check
    assert history(sandbox) == before
    assert member_ids(sandbox.members("vip")) == ["u1"]


@contextmanager
def failing_history_writes() -> Iterator[None]:
    """Make every INSERT into the history fail, on any engine, while in use."""

    def refuse(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO BRAZE_COHORT_CHANGES"):
            raise RuntimeError("history write refused by the test")

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", refuse)
    try:
        yield
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", refuse)


def test_a_rolled_back_import_leaves_neither_members_nor_history(sandbox: Sandbox) -> None:
    """The history row is the last write of the import: when it fails, the members
    written before it roll back with it."""
    sandbox.load_users([{"external_id": "u1"}, {"external_id": "u2"}])
    PartnerClient(sandbox).add("vip", user_ids=["u1"])
    with sandbox.store.read() as conn:
        caller = authenticate_partner(
            conn, sandbox.partner, sandbox.partner_api_key, sandbox.data_import_key
        )
    assert caller.key_fingerprint == key_fingerprint(sandbox.data_import_key)
    request = MembershipChanges(
        cohort_id="vip",
        changes=(CohortChange(user_ids=("u2",), aliases=(), device_ids=(), should_remove=False),),
    )
    with sandbox.store.read() as conn:
        resolved = matching.resolve_request(sandbox.store, conn, caller, request)
    with failing_history_writes(), pytest.raises(Exception, match="history write refused"):
        matching.write_changes(sandbox.store, caller, request, resolved)
    assert member_ids(sandbox.members("vip")) == ["u1"]
    assert len(history(sandbox)) == 1
    [cohort] = sandbox.cohorts()
    assert cohort["identifiers"]["external_id"]["received"] == 1  # the counters rolled back too
    assert matching.write_changes(sandbox.store, caller, request, resolved).added == 1
    assert [added for added, _, _ in history(sandbox)] == [1, 1]


def test_concurrent_imports_of_one_cohort_each_leave_their_row(sandbox: Sandbox) -> None:
    sandbox.load_users([{"external_id": f"u{i}"} for i in range(200)])
    gate = threading.Event()

    def send(n: int) -> int:
        client = PartnerClient(sandbox)
        gate.wait()
        # Each request names its own ten users and the previous request's first:
        # whichever of the two runs second finds that one in already.
        names = [f"u{i}" for i in range(n * 10, n * 10 + 10)] + [f"u{max(n - 1, 0) * 10}"]
        return client.change("vip", {"user_ids": names}).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(send, n) for n in range(20)]
        gate.set()
        assert [future.result() for future in futures] == [200] * 20
    rows = history(sandbox)
    assert len(rows) == 20
    assert all(9 <= added <= 11 and removed == 0 for added, removed, _ in rows), rows
    assert sum(added for added, _, _ in rows) == len(sandbox.members("vip")) == 200


def test_history_pages_newest_first_and_stays_in_its_workspace(
    partner: PartnerClient, sandbox: Sandbox
) -> None:
    sandbox.load_users([{"external_id": f"u{i}"} for i in range(7)])
    for i in range(7):
        partner.add("vip", user_ids=[f"u{j}" for j in range(i + 1)])  # adds one each time
    pages, before = [], None
    while True:
        page = cohort_views.cohort_history(
            sandbox.store, "vip", workspace=sandbox.workspace, before=before, limit=3
        )
        pages.append([change["id"] for change in page["changes"]])
        assert all(change["added"] == 1 for change in page["changes"])
        before = page["next_before"]
        if before is None:
            break
    ids = [change_id for page_ids in pages for change_id in page_ids]
    assert [len(p) for p in pages] == [3, 3, 1]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 7
    times = [
        c["at"]
        for c in cohort_views.cohort_history(sandbox.store, "vip", workspace=sandbox.workspace)[
            "changes"
        ]
    ]
    assert times == sorted(times, reverse=True)
    other = admin.create_workspace(sandbox.store, unique("ws"))
    with pytest.raises(ConfigError, match="no cohort 'vip'"):
        cohort_views.cohort_history(sandbox.store, "vip", workspace=other["id"])
    with pytest.raises(ConfigError, match="1 to 500"):
        cohort_views.cohort_history(sandbox.store, "vip", workspace=sandbox.workspace, limit=0)
