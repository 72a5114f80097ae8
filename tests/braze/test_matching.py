"""Matching rules, idempotency, cohort creation and match counts (spec, section 1)."""

from __future__ import annotations

import requests

from cohortsync.braze.sandbox import Sandbox

from .support import PartnerClient, email, member_ids

EXAMPLE_COHORT_TABLE = [
    ("TDCohort1", "TDCohort1@gmail.com", "1a2b3c"),
    ("TDCohort2", "TDCohort2@gmail.com", "4d5f6g"),
    ("TDCohort3", "TDCohort3@gmail.com", "7h8j9k"),
    ("TDCohort4", "TDCohort4@gmail.com", "1ab2cd"),
]


def users_count(sandbox: Sandbox) -> int:
    response = requests.post(
        f"{sandbox.base_url}/users/export/ids",
        json={"external_ids": ["nobody"], "device_id": "nobody"},
        headers={"Authorization": f"Bearer {sandbox.rest_api_key}"},
        timeout=10,
    )
    assert response.status_code == 200
    with sandbox.store.read() as conn:
        return int(conn.exec_driver_sql("SELECT count(*) FROM braze_users").scalar_one())


def test_seed_example_by_external_id_alias_and_device_id(
    partner: PartnerClient, sandbox: Sandbox
) -> None:
    """example_cohort_table: identified users by id and email, then the same people anonymous."""
    sandbox.load_users(
        {"external_id": ext, "aliases": [email(mail)]} for ext, mail, _ in EXAMPLE_COHORT_TABLE
    )
    sandbox.load_users({"device_ids": [device]} for _, _, device in EXAMPLE_COHORT_TABLE)
    assert partner.define("td_by_id", "By id").status_code == 200
    partner.add("td_by_id", user_ids=[ext for ext, _, _ in EXAMPLE_COHORT_TABLE])
    partner.add("td_by_email", aliases=[email(mail) for _, mail, _ in EXAMPLE_COHORT_TABLE])
    partner.add("td_by_device", device_ids=[device for _, _, device in EXAMPLE_COHORT_TABLE])
    identified = [
        {"external_id": ext, "aliases": [email(mail)], "device_ids": []}
        for ext, mail, _ in EXAMPLE_COHORT_TABLE
    ]
    assert sandbox.members("td_by_id") == identified
    assert sandbox.members("td_by_email") == identified
    assert sandbox.members("td_by_device") == sorted(
        (
            {"external_id": None, "aliases": [], "device_ids": [d]}
            for _, _, d in EXAMPLE_COHORT_TABLE
        ),
        key=lambda m: m["device_ids"],
    )
    names = {c["cohort_id"]: c["name"] for c in sandbox.cohorts()}
    assert names == {
        "td_by_id": "By id",
        "td_by_email": "td_by_email",
        "td_by_device": "td_by_device",
    }


def test_device_id_of_an_identified_user_adds_nobody(
    partner: PartnerClient, sandbox: Sandbox
) -> None:
    sandbox.load_users(
        [{"external_id": "known", "device_ids": ["phone-1"]}, {"device_ids": ["phone-2"]}]
    )
    partner.add("vip", device_ids=["phone-1", "phone-2"])
    assert sandbox.members("vip") == [
        {"external_id": None, "aliases": [], "device_ids": ["phone-2"]}
    ]
    partner.add("vip", user_ids=["known"])
    partner.remove("vip", device_ids=["phone-1"])  # removes nobody either
    assert member_ids(sandbox.members("vip")) == ["known", None]
    [cohort] = sandbox.cohorts()
    assert cohort["identifiers"]["device_id"] == {"received": 3, "matched": 1, "dropped": 2}


def test_identified_users_match_by_alias_even_without_external_id_in_request(
    partner: PartnerClient, sandbox: Sandbox
) -> None:
    sandbox.load_users(
        [
            {"external_id": "u1", "aliases": [email("a@x.io")]},
            {"aliases": [email("anon@x.io")]},  # alias-only, anonymous
        ]
    )
    partner.add(
        "vip",
        aliases=[
            email("a@x.io"),
            email("anon@x.io"),
            {"alias_label": "phone", "alias_name": "a@x.io"},
        ],
    )
    assert sandbox.members("vip") == [
        {"external_id": "u1", "aliases": [email("a@x.io")], "device_ids": []},
        {"external_id": None, "aliases": [email("anon@x.io")], "device_ids": []},
    ]


def test_unknown_identifiers_are_dropped_and_no_user_is_created(
    partner: PartnerClient, sandbox: Sandbox
) -> None:
    sandbox.load_users([{"external_id": "u1"}])
    before = users_count(sandbox)
    partner.add(
        "vip", user_ids=["u1", "ghost"], device_ids=["nowhere"], aliases=[email("ghost@x.io")]
    )
    assert users_count(sandbox) == before
    assert member_ids(sandbox.members("vip")) == ["u1"]
    [cohort] = sandbox.cohorts()
    assert cohort["identifiers"] == {
        "external_id": {"received": 2, "matched": 1, "dropped": 1},
        "alias": {"received": 1, "matched": 0, "dropped": 1},
        "device_id": {"received": 1, "matched": 0, "dropped": 1},
    }
    assert cohort["match_rate"] == 0.25


def test_adds_and_removes_are_idempotent(partner: PartnerClient, sandbox: Sandbox) -> None:
    sandbox.load_users({"external_id": f"u{i}"} for i in range(5))
    for _ in range(3):
        partner.add("vip", user_ids=["u0", "u1", "u2", "u1"])
    assert member_ids(sandbox.members("vip")) == ["u0", "u1", "u2"]
    for _ in range(2):
        partner.remove("vip", user_ids=["u1", "u4"])
    assert member_ids(sandbox.members("vip")) == ["u0", "u2"]


def test_changes_apply_in_order_and_the_last_one_wins(
    partner: PartnerClient, sandbox: Sandbox
) -> None:
    """The same user named by two identifiers in add-then-remove objects ends removed."""
    sandbox.load_users([{"external_id": "u1", "aliases": [email("a@x.io")]}, {"external_id": "u2"}])
    response = partner.change(
        "vip",
        {"user_ids": ["u1", "u2"]},
        {"aliases": [email("a@x.io")], "should_remove": True},
    )
    assert response.status_code == 200
    assert member_ids(sandbox.members("vip")) == ["u2"]
    response = partner.change(
        "vip",
        {"user_ids": ["u2"], "should_remove": True},
        {"user_ids": ["u2"], "should_remove": False},
    )
    assert member_ids(sandbox.members("vip")) == ["u2"]


def test_unknown_cohort_is_created_named_after_its_id(
    partner: PartnerClient, sandbox: Sandbox
) -> None:
    sandbox.load_users([{"external_id": "u1"}])
    partner.add("fresh", user_ids=["u1"])
    [cohort] = sandbox.cohorts()
    assert (cohort["cohort_id"], cohort["name"], cohort["partner"], cohort["size"]) == (
        "fresh",
        "fresh",
        "treasuredata",
        1,
    )


def test_empty_changes_are_a_credentials_check_that_writes_nothing(
    partner: PartnerClient, sandbox: Sandbox
) -> None:
    response = partner.change("never")
    assert response.status_code == 200
    assert response.json() == {"message": "success"}
    assert partner.change("never", {"user_ids": []}).status_code == 200
    assert sandbox.cohorts() == []


def test_identified_later_user_no_longer_matches_by_device(
    partner: PartnerClient, sandbox: Sandbox
) -> None:
    """Created anonymous, identified through /users/identify: its device id stops matching."""
    sandbox.load_users([{"aliases": [email("late@x.io")], "device_ids": ["tablet"]}])
    partner.add("before", device_ids=["tablet"])
    assert member_ids(sandbox.members("before")) == [None]
    response = requests.post(
        f"{sandbox.base_url}/users/identify",
        json={"aliases_to_identify": [{"external_id": "late", "user_alias": email("late@x.io")}]},
        headers={"Authorization": f"Bearer {sandbox.rest_api_key}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    partner.add("after", device_ids=["tablet"])
    assert sandbox.members("after") == []
    partner.add("after", user_ids=["late"])
    assert sandbox.members("after") == [
        {"external_id": "late", "aliases": [email("late@x.io")], "device_ids": ["tablet"]}
    ]
    assert member_ids(sandbox.members("before")) == ["late"]


def test_cohorts_are_per_workspace(partner: PartnerClient, sandbox: Sandbox) -> None:
    from cohortsync.braze import admin

    other = admin.create_workspace(sandbox.store, f"{sandbox.workspace_name}-other")
    admin.load_users(sandbox.store, workspace=other["id"], rows=[{"external_id": "u1"}])
    partner.add("vip", user_ids=["u1"])  # u1 exists only in the other workspace
    assert sandbox.members("vip") == []
    assert admin.list_cohorts(sandbox.store, workspace=other["id"]) == []
