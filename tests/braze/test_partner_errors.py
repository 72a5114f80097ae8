"""Every row of the spec's error table, and the order in which checks run."""

from __future__ import annotations

import sqlite3
import threading
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from cohortsync.braze import admin, messages
from cohortsync.braze.sandbox import Sandbox, running_sandbox
from cohortsync.braze.store import open_store

from .support import PartnerClient, email, unique


def assert_error(response: requests.Response, status: int, message: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["message"] == message
    return dict(body)


def test_cohort_id_must_be_a_valid_string(partner: PartnerClient, sandbox: Sandbox) -> None:
    for path in ("/cohorts", "/cohorts/users"):
        for cohort_id in (None, "", 42, ["vip"], {"id": "vip"}, "x" * 600):
            body: dict[str, Any] = {
                **partner.keys(),
                "name": "VIP",
                "created_at": "2021-01-21T19:20:30+05:00",
                "cohort_changes": [],
            }
            if cohort_id is not None:
                body["cohort_id"] = cohort_id
            assert_error(partner.post(path, body), 400, messages.INVALID_COHORT_ID)
    assert sandbox.cohorts() == []


INVALID_CHANGES: list[Any] = [
    None,
    "user_ids",
    {"user_ids": ["u1"]},
    ["u1"],
    [{}],
    [{"should_remove": True}],
    [{"user_ids": "u1"}],
    [{"user_ids": [1, 2]}],
    [{"user_ids": ["u1", None]}],
    [{"device_ids": [["d1"]]}],
    [{"aliases": {"alias_label": "email", "alias_name": "a@x.io"}}],
    [{"aliases": [{"alias_label": "email"}]}],
    [{"aliases": [{"alias_label": "email", "alias_name": 7}]}],
    [{"user_ids": ["u1"], "should_remove": "yes"}],
    [{"user_ids": ["nul\x00byte"]}],
    [{"user_ids": ["u1"]}, "u2"],
]


def test_cohort_changes_must_be_objects_of_identifier_arrays(
    partner: PartnerClient, sandbox: Sandbox
) -> None:
    sandbox.load_users([{"external_id": "u1"}])
    for changes in INVALID_CHANGES:
        body = {**partner.keys(), "cohort_id": "vip"}
        if changes is not None:
            body["cohort_changes"] = changes
        response = partner.post("/cohorts/users", body)
        assert response.status_code == 400, changes
        assert response.json()["message"] == messages.INVALID_COHORT_CHANGES, changes
    assert sandbox.cohorts() == []


def test_one_thousand_identifiers_pass_and_one_more_is_refused(
    partner: PartnerClient, sandbox: Sandbox
) -> None:
    """The limit counts every kind in every object of one request together."""
    sandbox.load_users({"external_id": f"u{i}"} for i in range(1000))
    user_ids = [f"u{i}" for i in range(600)]
    more_ids = [f"u{i}" for i in range(600, 1000)]
    devices = [f"d{i}" for i in range(200)]
    aliases = [email(f"{i}@x.io") for i in range(200)]
    at_limit = [
        {"user_ids": user_ids[:400], "device_ids": devices},
        {"aliases": aliases},
        {"user_ids": user_ids[400:]},
    ]
    assert partner.change("big", *at_limit).status_code == 200
    over = [*at_limit, {"user_ids": more_ids[:1]}]
    body = assert_error(partner.change("big", *over), 400, messages.TOO_MANY_IDENTIFIERS)
    assert "1001" in body["errors"][0]
    [cohort] = sandbox.cohorts()
    assert cohort["size"] == 600  # the refused request added nothing
    assert cohort["identifiers"]["external_id"]["received"] == 600


def test_name_must_be_a_non_empty_string(partner: PartnerClient, sandbox: Sandbox) -> None:
    for name in (None, "", "   ", 5, ["VIP"]):
        body = {**partner.keys(), "cohort_id": "vip", "created_at": "2021-01-21T19:20:30+05:00"}
        if name is not None:
            body["name"] = name
        assert_error(partner.post("/cohorts", body), 400, messages.INVALID_NAME)
    assert sandbox.cohorts() == []


def test_created_at_must_be_iso_8601(partner: PartnerClient, sandbox: Sandbox) -> None:
    invalid = (None, "", "yesterday", "2021-13-40T00:00:00Z", 1611242430, "2021-01-21T25:00")
    for created_at in invalid:
        body = {**partner.keys(), "cohort_id": "vip", "name": "VIP"}
        if created_at is not None:
            body["created_at"] = created_at
        assert_error(partner.post("/cohorts", body), 400, messages.INVALID_CREATED_AT)
    assert sandbox.cohorts() == []


def test_cohort_definition_creates_then_renames(partner: PartnerClient, sandbox: Sandbox) -> None:
    response = partner.define("vip", "VIP", created_at="2021-01-21T19:20:30+05:00")
    assert response.status_code == 200
    assert response.json() == {"message": "success"}
    assert (
        partner.define("vip", "Very important", created_at="2022-02-02T00:00:00Z").status_code
        == 200
    )
    [cohort] = sandbox.cohorts()
    assert cohort["name"] == "Very important"
    assert cohort["created_at"].startswith("2021-01-21T14:20:30")  # first creation kept, in UTC


@pytest.mark.parametrize("path", ["/cohorts", "/cohorts/users"])
def test_invalid_partner_api_key(partner: PartnerClient, path: str) -> None:
    body = {"client_secret": partner.client_secret, "cohort_id": "vip", "cohort_changes": []}
    for key in (None, "", "wrong", 12):
        sent = dict(body) if key is None else {**body, "partner_api_key": key}
        assert_error(partner.post(path, sent), 401, messages.INVALID_PARTNER_API_KEY)
    # A valid key of treasuredata is no key for a partner of another name.
    assert_error(
        partner.post(path, {**partner.keys(), **body}, partner="segment"),
        401,
        messages.INVALID_PARTNER_API_KEY,
    )


def test_partner_key_of_another_partner_is_refused(
    sandbox: Sandbox, partner: PartnerClient
) -> None:
    other_key = unique("other")
    admin.create_partner(sandbox.store, unique("other").lower(), api_key=other_key)
    body = {
        **partner.keys(),
        "partner_api_key": other_key,
        "cohort_id": "vip",
        "cohort_changes": [],
    }
    assert_error(partner.post("/cohorts/users", body), 401, messages.INVALID_PARTNER_API_KEY)


@pytest.mark.parametrize("path", ["/cohorts", "/cohorts/users"])
def test_invalid_client_secret(partner: PartnerClient, path: str) -> None:
    for secret in (None, "", "not-a-key", 3.5):
        body: dict[str, Any] = {
            "partner_api_key": partner.sandbox.partner_api_key,
            "cohort_id": "vip",
        }
        if secret is not None:
            body["client_secret"] = secret
        assert_error(
            partner.post(path, {**body, "cohort_changes": []}), 401, messages.INVALID_CLIENT_SECRET
        )


def test_partner_not_enabled(sandbox: Sandbox) -> None:
    """A workspace that has a key but has not enabled the partner is refused."""
    other = admin.create_workspace(sandbox.store, unique("ws"))
    key = admin.generate_key(sandbox.store, workspace=other["id"], partner=sandbox.partner)[
        "data_import_key"
    ]
    client = PartnerClient(sandbox, client_secret=key)
    response = client.change("vip", {"user_ids": ["u1"]})
    assert_error(response, 401, messages.partner_not_enabled(key))
    assert f"client secret: {key}" in response.json()["message"]
    admin.enable_partner(sandbox.store, sandbox.partner, workspace=other["id"])
    assert client.change("vip", {"user_ids": ["u1"]}).status_code == 200


def test_unauthorized_access_for_a_key_of_another_partner(sandbox: Sandbox) -> None:
    """A live data import key issued for another partner's integration."""
    other_partner = unique("p").lower()
    admin.create_partner(sandbox.store, other_partner, api_key=unique("pk"))
    admin.enable_partner(sandbox.store, other_partner, workspace=sandbox.workspace)
    key = admin.generate_key(sandbox.store, workspace=sandbox.workspace, partner=other_partner)
    client = PartnerClient(sandbox, client_secret=key["data_import_key"])
    assert_error(client.change("vip", {"user_ids": ["u1"]}), 401, messages.UNAUTHORIZED)


def test_checks_run_in_the_spec_order(sandbox: Sandbox, partner: PartnerClient) -> None:
    """Partner key, then client secret, then enablement, then the body."""
    bad_body = {"cohort_id": 5, "cohort_changes": "x"}
    good_partner = {"partner_api_key": sandbox.partner_api_key}
    assert_error(
        partner.post(
            "/cohorts/users", {"partner_api_key": "no", "client_secret": "no", **bad_body}
        ),
        401,
        messages.INVALID_PARTNER_API_KEY,
    )
    assert_error(
        partner.post("/cohorts/users", {**good_partner, "client_secret": "no", **bad_body}),
        401,
        messages.INVALID_CLIENT_SECRET,
    )
    other = admin.create_workspace(sandbox.store, unique("ws"))
    key = admin.generate_key(sandbox.store, workspace=other["id"])["data_import_key"]
    assert_error(
        partner.post("/cohorts/users", {**good_partner, "client_secret": key, **bad_body}),
        401,
        messages.partner_not_enabled(key),
    )
    assert_error(
        partner.post("/cohorts/users", {**partner.keys(), **bad_body}),
        400,
        messages.INVALID_COHORT_ID,
    )


def test_locked_cohort_answers_423_until_unlocked(partner: PartnerClient, sandbox: Sandbox) -> None:
    sandbox.load_users([{"external_id": "u1"}, {"external_id": "u2"}])
    partner.add("vip", user_ids=["u1"])
    sandbox.lock("vip")
    assert_error(partner.change("vip", {"user_ids": ["u2"]}), 423, messages.RESOURCE_LOCKED)
    assert_error(partner.define("vip", "Renamed"), 423, messages.RESOURCE_LOCKED)
    assert [c["locked"] for c in sandbox.cohorts()] == [True]
    sandbox.unlock("vip")
    partner.add("vip", user_ids=["u2"])
    assert [m["external_id"] for m in sandbox.members("vip")] == ["u1", "u2"]


def test_rate_limited_with_retry_after(db_url: str) -> None:
    with running_sandbox(
        db_url, workspace_name=unique("ws"), partner_api_key=unique("pk"), rate_limit="3/hour"
    ) as sandbox:
        client = PartnerClient(sandbox)
        for _ in range(3):
            assert client.change("vip", {"user_ids": ["u1"]}).status_code == 200
        response = client.change("vip", {"user_ids": ["u1"]})
        assert_error(response, 429, messages.RATE_LIMITED)
        assert int(response.headers["Retry-After"]) >= 1
        assert response.headers["X-RateLimit-Remaining"] == "0"


def test_busy_store_answers_503_for_a_retry(db_url: str) -> None:
    """A write that cannot get the store's lock in time fails retryably, not with 500."""
    workspace = unique("ws")
    with running_sandbox(
        db_url, workspace_name=workspace, partner_api_key=unique("pk"), busy_timeout=0.3
    ) as sandbox:
        sandbox.load_users([{"external_id": "u1"}])
        client = PartnerClient(sandbox)
        partner_ok = client.change("vip", {"user_ids": ["u1"]})
        assert partner_ok.status_code == 200
        release = threading.Event()
        locked = threading.Event()

        def hold_lock() -> None:
            """Hold the store's write lock as another process would."""
            if db_url.startswith("sqlite"):
                conn = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None)
                conn.execute("BEGIN EXCLUSIVE")
                locked.set()
                release.wait(10)
                conn.execute("ROLLBACK")
                conn.close()
                return
            holder = open_store(db_url)
            with holder.engine.connect() as sa_conn:
                sa_conn.exec_driver_sql("LOCK TABLE braze_cohorts IN ACCESS EXCLUSIVE MODE")
                locked.set()
                release.wait(10)
                sa_conn.rollback()
            holder.close()

        thread = threading.Thread(target=hold_lock)
        thread.start()
        try:
            assert locked.wait(10)
            response = client.change("vip", {"user_ids": ["u1"]})
            assert_error(response, 503, messages.STORE_UNAVAILABLE)
            assert response.headers["Retry-After"] == "1"
        finally:
            release.set()
            thread.join()
        assert client.change("vip", {"user_ids": ["u1"]}).status_code == 200


@pytest.mark.parametrize(
    ("data", "headers", "status", "fragment"),
    [
        (b'{"cohort_id": "vip", ', {"Content-Type": "application/json"}, 400, "not valid JSON"),
        (b"", {"Content-Type": "application/json"}, 400, "not valid JSON"),
        (b"[1, 2]", {"Content-Type": "application/json"}, 400, "must be a JSON object"),
        (b'"text"', {"Content-Type": "application/json"}, 400, "must be a JSON object"),
        (
            b"cohort_id=vip",
            {"Content-Type": "application/x-www-form-urlencoded"},
            415,
            "application/json",
        ),
        (b'{"cohort_id": "vip"}', {"Content-Type": "text/plain"}, 415, "application/json"),
        (b'{"cohort_id": "vip"}', {}, 415, "application/json"),
        (b'{"a": "\xff\xfe"}', {"Content-Type": "application/json"}, 400, "not valid JSON"),
    ],
    ids=["truncated", "empty", "array", "string", "form", "text", "no-type", "bad-utf8"],
)
def test_malformed_requests_are_refused_with_a_message(
    sandbox: Sandbox, data: bytes, headers: dict[str, str], status: int, fragment: str
) -> None:
    url = f"{sandbox.base_url}/partners/treasuredata/cohorts/users"
    response = requests.post(url, data=data, headers=headers, timeout=10)
    assert response.status_code == status
    assert fragment in response.json()["message"]
    assert "X-RateLimit-Remaining" in response.headers
    assert sandbox.cohorts() == []


def test_body_over_4_mib_is_refused(partner: PartnerClient, sandbox: Sandbox) -> None:
    url = f"{sandbox.base_url}/partners/treasuredata/cohorts/users"
    padding = "x" * (4 * 1024 * 1024)
    body = f'{{"cohort_id": "vip", "pad": "{padding}"}}'.encode()
    response = requests.post(
        url, data=body, headers={"Content-Type": "application/json"}, timeout=30
    )
    assert response.status_code == 413
    assert "4 MiB" in response.json()["message"]

    def chunks() -> Any:  # no Content-Length: the limit holds while reading
        yield b'{"cohort_id": "vip", "pad": "'
        for _ in range(5):
            yield b"x" * (1024 * 1024)
        yield b'"}'

    response = requests.post(
        url, data=chunks(), headers={"Content-Type": "application/json"}, timeout=30
    )
    assert response.status_code == 413
    assert sandbox.cohorts() == []


def test_nothing_is_written_by_a_refused_request(partner: PartnerClient, sandbox: Sandbox) -> None:
    sandbox.load_users([{"external_id": "u1"}])
    partner.add("vip", user_ids=["u1"])
    bad = partner.change("vip", {"user_ids": ["u1"], "should_remove": True}, {"user_ids": [7]})
    assert bad.status_code == 400
    assert [m["external_id"] for m in sandbox.members("vip")] == ["u1"]
    with sandbox.store.read() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM braze_cohorts")).scalar() >= 1
