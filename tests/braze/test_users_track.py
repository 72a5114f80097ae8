"""``POST /users/track`` as Braze documents it: attributes, events and purchases.

Every test names the Braze page whose rule it checks. The sandbox is served
for real (tests/braze/conftest.py) on SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from cohortsync.braze.profiles import tracking
from cohortsync.braze.sandbox import Sandbox
from cohortsync.braze.store import track_queries

from .rest_client import RestClient
from .support import email

TRACK_DOC = "https://www.braze.com/docs/api/endpoints/user_data/post_user_track/"


@pytest.fixture
def rest(sandbox: Sandbox) -> RestClient:
    return RestClient(sandbox)


def braze_id(rest: RestClient, external_id: str) -> str:
    return str(rest.profile(external_id)["braze_id"])


# ---------------------------------------------------------------- the body as a whole


def test_each_array_is_optional_and_the_answer_counts_only_those_sent(rest: RestClient) -> None:
    """https://www.braze.com/docs/api/endpoints/user_data/post_user_track/ : attributes,
    events and purchases are each optional; ``*_processed`` is present when that array
    was sent."""
    only_events = rest.track(
        events=[{"external_id": "e1", "name": "login", "time": "2026-01-05T10:00:00Z"}]
    )
    assert only_events == {"events_processed": 1, "message": "success"}
    all_three = rest.track(
        attributes=[{"external_id": "e1", "plan": "gold"}],
        events=[],
        purchases=[
            {
                "external_id": "e1",
                "product_id": "p",
                "currency": "EUR",
                "price": 2,
                "time": "2026-01-05",
            }
        ],
    )
    assert all_three == {
        "attributes_processed": 1,
        "events_processed": 0,
        "purchases_processed": 1,
        "message": "success",
    }


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"partner": "treasuredata"},
        {"events": {"name": "x"}},
        {"purchases": [{"external_id": "u"}] * 76},
    ],
    ids=["empty", "none-of-the-three", "events-not-an-array", "76-purchases"],
)
def test_a_body_of_the_wrong_shape_is_refused(rest: RestClient, body: dict[str, Any]) -> None:
    """https://www.braze.com/docs/api/endpoints/user_data/post_user_track/ : at most 75
    objects of each kind; a request with none of the three arrays is a fatal error (400)."""
    response = rest.post("/users/track", body)
    assert response.status_code == 400, response.text
    assert response.json()["message"]


def test_invalid_objects_are_non_fatal_errors_and_the_others_are_processed(
    rest: RestClient,
) -> None:
    """https://www.braze.com/docs/api/endpoints/user_data/post_user_track/ : "successful
    message with non-fatal errors" (status 201): each invalid object is an error
    ``{"type", "input_array", "index"}``; the valid ones are processed."""
    answer = rest.track(
        201,
        attributes=[
            {"external_id": "ok-1", "plan": "gold"},
            {"plan": "no identifier"},
            {"external_id": "ok-2", "gender": "X"},
            "not an object",
            {"external_id": "ok-3", "user_alias": email("both@x.io")},
        ],
        events=[
            {"external_id": "ok-1", "name": "opened"},
            {"external_id": "ok-1", "name": "opened", "time": "2026-02-01T08:00:00+01:00"},
        ],
        purchases=[
            {"external_id": "ok-1", "product_id": "shoe", "currency": "dollars", "price": 1,
             "time": "2026-02-01T08:00:00Z"},
        ],
    )  # fmt: skip
    assert answer["message"] == "success"
    assert (answer["attributes_processed"], answer["events_processed"]) == (1, 1)
    assert answer["purchases_processed"] == 0
    located = [(e["input_array"], e["index"]) for e in answer["errors"]]
    assert located == [
        ("attributes", 1),
        ("attributes", 2),
        ("attributes", 3),
        ("attributes", 4),
        ("events", 0),
        ("purchases", 0),
    ]
    assert all(set(e) == {"type", "input_array", "index"} and e["type"] for e in answer["errors"])
    assert "'external_id' or 'braze_id' or 'user_alias'" in answer["errors"][0]["type"]
    assert "gender" in answer["errors"][1]["type"]
    assert "currency" in answer["errors"][5]["type"]
    assert rest.profile("ok-1")["custom_attributes"] == {"plan": "gold"}
    assert rest.export(external_ids=["ok-2"]) == []  # its only object was invalid


# ---------------------------------------------------------------- who is created


def test_an_alias_does_not_create_a_profile_unless_update_only_is_false(rest: RestClient) -> None:
    """https://www.braze.com/docs/api/objects_filters/user_attributes_object/ : "When using
    a user_alias, 'Update Only' defaults to true"; an alias-only profile is created only
    when ``_update_existing_only`` is explicitly false."""
    answer = rest.track(201, attributes=[{"user_alias": email("visitor@x.io"), "visits": 1}])
    assert answer["attributes_processed"] == 0
    assert answer["errors"][0]["input_array"] == "attributes"
    assert rest.export(user_aliases=[email("visitor@x.io")]) == []

    rest.track(
        attributes=[
            {"user_alias": email("visitor@x.io"), "visits": 1, "_update_existing_only": False}
        ]
    )
    [made] = rest.export(user_aliases=[email("visitor@x.io")])
    assert made["custom_attributes"] == {"visits": 1} and "external_id" not in made
    rest.track(attributes=[{"user_alias": email("visitor@x.io"), "visits": 2}])  # now it exists
    assert rest.export(user_aliases=[email("visitor@x.io")])[0]["custom_attributes"] == {
        "visits": 2
    }


def test_an_external_id_creates_its_profile_unless_update_only(rest: RestClient) -> None:
    """https://www.braze.com/docs/api/objects_filters/user_attributes_object/ : "If this
    value is omitted, Braze will create a new user profile if the external_id does not
    already exist"; with ``_update_existing_only`` true it is not created."""
    rest.track(attributes=[{"external_id": "new-1", "plan": "gold"}])
    assert rest.profile("new-1")["custom_attributes"] == {"plan": "gold"}
    answer = rest.track(201, attributes=[{"external_id": "new-2", "_update_existing_only": True}])
    assert answer["attributes_processed"] == 0
    assert rest.export(external_ids=["new-2"]) == []
    events = rest.track(
        events=[{"external_id": "new-3", "name": "signup", "time": "2026-03-01T00:00:00Z"}]
    )
    assert events["events_processed"] == 1
    assert rest.profile("new-3")["custom_events"][0]["name"] == "signup"


def test_profiles_addressed_by_braze_id_email_or_phone(rest: RestClient) -> None:
    """https://www.braze.com/docs/api/objects_filters/user_attributes_object/ : one of
    external_id, user_alias, braze_id, email or phone addresses the profile; a braze_id
    never creates one."""
    rest.track(
        attributes=[{"external_id": "ann", "email": "Ann@Example.com", "phone": "+33612345678"}]
    )
    ann = braze_id(rest, "ann")
    rest.track(
        attributes=[
            {"braze_id": ann, "by_braze_id": True},
            {"email": "ann@example.com", "by_email": True},
            {"phone": "+33612345678", "by_phone": True},
        ]
    )
    assert rest.profile("ann")["custom_attributes"] == {
        "by_braze_id": True,
        "by_email": True,
        "by_phone": True,
    }
    answer = rest.track(
        201, attributes=[{"braze_id": "999999999", "x": 1, "_update_existing_only": False}]
    )
    assert "braze_id" in answer["errors"][0]["type"]
    rest.track(
        events=[{"email": "new@example.com", "name": "newsletter", "time": "2026-03-01T00:00:00Z"}]
    )
    [by_email] = rest.export(email_address="new@example.com")
    assert by_email["email"] == "new@example.com" and "external_id" not in by_email


# ---------------------------------------------------------------- attribute values


def test_operators_are_applied_not_stored(rest: RestClient) -> None:
    """https://www.braze.com/docs/api/objects_filters/user_attributes_object/ : ``{"inc":
    n}`` increments, ``{"add": [...]}`` / ``{"remove": [...]}`` change an array, null
    removes the attribute; nested objects stay as sent and dates are ISO strings."""
    rest.track(
        attributes=[
            {
                "external_id": "op",
                "visits": 1,
                "tags": ["a", "b"],
                "gone": "soon",
                "address": {"city": "Lyon", "zip": "69001"},
                "signed_up": "2025-11-03T10:15:00Z",
            }
        ]
    )
    rest.track(
        attributes=[
            {"external_id": "op", "visits": {"inc": 2}, "score": {"inc": 1.5}},
            {"external_id": "op", "tags": {"add": ["c", "a"]}, "gone": None},
            {"external_id": "op", "tags": {"remove": ["b"]}, "fresh": {"add": ["x"]}},
        ]
    )
    assert rest.profile("op")["custom_attributes"] == {
        "visits": 3,
        "score": 1.5,
        "tags": ["c", "a"],
        "fresh": ["x"],
        "address": {"city": "Lyon", "zip": "69001"},
        "signed_up": "2025-11-03T10:15:00Z",
    }
    answer = rest.track(201, attributes=[{"external_id": "op", "tags": {"inc": 1}, "visits": 9}])
    assert "not a number" in answer["errors"][0]["type"]
    assert rest.profile("op")["custom_attributes"]["visits"] == 3  # the whole object failed


def test_profile_fields_are_kept_apart_from_custom_attributes(rest: RestClient) -> None:
    """https://www.braze.com/docs/api/objects_filters/user_attributes_object/ : Braze user
    profile fields (first_name, email, country, dob, gender, ...) set the profile itself,
    not custom attributes; null removes one."""
    rest.track(
        attributes=[
            {
                "external_id": "pf",
                "first_name": "Ada",
                "last_name": "Lovelace",
                "email": "ada@example.com",
                "country": "FR",
                "dob": "1815-12-10",
                "gender": "F",
                "time_zone": "Europe/Paris",
                "email_subscribe": "opted_in",
                "plan": "gold",
            }
        ]
    )
    profile = rest.profile("pf")
    assert profile["custom_attributes"] == {"plan": "gold"}
    assert {k: profile[k] for k in ("first_name", "last_name", "email", "country", "dob")} == {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada@example.com",
        "country": "FR",
        "dob": "1815-12-10",
    }
    assert (profile["gender"], profile["time_zone"], profile["email_subscribe"]) == (
        "F",
        "Europe/Paris",
        "opted_in",
    )
    rest.track(attributes=[{"external_id": "pf", "first_name": None, "email": None}])
    profile = rest.profile("pf")
    assert (
        "first_name" not in profile
        and "email" not in profile
        and profile["last_name"] == "Lovelace"
    )
    for bad in ({"dob": "10/12/1815"}, {"email": "not-an-email"}, {"time_zone": "Mars/Olympus"}):
        answer = rest.track(201, attributes=[{"external_id": "pf", **bad}])
        assert next(iter(bad)) in answer["errors"][0]["type"]


# ---------------------------------------------------------------- events and purchases


def test_events_and_purchases_are_recorded_on_the_profile(rest: RestClient) -> None:
    """https://www.braze.com/docs/api/objects_filters/event_object/ and
    https://www.braze.com/docs/api/objects_filters/purchase_object/ : an event has a name
    and a time (ISO 8601), a purchase a product_id, an ISO 4217 currency, a price, a
    quantity (default 1, at most 100) and a time; both may carry properties."""
    answer = rest.track(
        events=[
            {"external_id": "shopper", "name": "viewed", "time": "2026-04-01T10:00:00Z",
             "properties": {"page": "home"}},
            {"external_id": "shopper", "name": "viewed", "time": "2026-04-02T12:00:00+02:00"},
            {"external_id": "shopper", "name": "carted", "time": "2026-04-02T11:00:00Z",
             "app_id": "web"},
        ],
        purchases=[
            {"external_id": "shopper", "product_id": "shoe", "currency": "usd", "price": 30.5,
             "quantity": 2, "time": "2026-04-03T09:00:00Z", "properties": {"size": 42}},
            {"external_id": "shopper", "product_id": "sock", "currency": "USD", "price": 4,
             "time": "2026-04-04T09:00:00Z"},
        ],
    )  # fmt: skip
    assert (answer["events_processed"], answer["purchases_processed"]) == (3, 2)
    profile = rest.profile("shopper")
    assert profile["custom_events"] == [
        {"name": "carted", "first": "2026-04-02T11:00:00.000+00:00",
         "last": "2026-04-02T11:00:00.000+00:00", "count": 1},
        {"name": "viewed", "first": "2026-04-01T10:00:00.000+00:00",
         "last": "2026-04-02T10:00:00.000+00:00", "count": 2},
    ]  # fmt: skip
    assert [(p["name"], p["count"]) for p in profile["purchases"]] == [("shoe", 2), ("sock", 1)]
    assert profile["total_revenue"] == 65.0
    refused = rest.track(
        201,
        events=[{"external_id": "shopper", "name": "", "time": "2026-04-01T10:00:00Z"}],
        purchases=[
            {"external_id": "shopper", "product_id": "x", "currency": "USD", "price": 1,
             "quantity": 101, "time": "2026-04-01T10:00:00Z"},
            {"external_id": "shopper", "product_id": "x", "currency": "USD", "price": "1",
             "time": "2026-04-01T10:00:00Z"},
        ],
    )  # fmt: skip
    assert [(e["input_array"], e["index"]) for e in refused["errors"]] == [
        ("events", 0),
        ("purchases", 0),
        ("purchases", 1),
    ]


# ---------------------------------------------------------------- cost of a request


def test_a_request_costs_a_fixed_number_of_statements(sandbox: Sandbox) -> None:
    """https://www.braze.com/docs/api/endpoints/user_data/post_user_track/ : a request holds
    up to 75 objects of each kind; the store looks each identifier kind up once for all of
    them, so 75 updates cost the statements of one."""
    sandbox.load_users([{"external_id": f"u{n}"} for n in range(75)])
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    def track(n: int) -> int:
        objects = [
            tracking.TrackObject(
                "attributes", i, ("external_id", f"u{i}"), False, custom=(("n", "set", i),)
            )
            for i in range(n)
        ]
        statements.clear()
        assert tracking.track(sandbox.store, sandbox.workspace, objects) == []
        return len(
            [s for s in statements if not s.lstrip().upper().startswith(("SAVEPOINT", "RELEASE"))]
        )

    engines = {sandbox.store.engine, getattr(sandbox.store, "_write_engine", None)} - {None}
    for engine in engines:
        sa.event.listen(engine, "before_cursor_execute", count)
    try:
        one, many = track(1), track(75)
    finally:
        for engine in engines:
            sa.event.remove(engine, "before_cursor_execute", count)
    assert one > 0 and many == one
    with sandbox.store.read() as conn:
        found = track_queries.owners(
            conn, sandbox.workspace, "external_id", [f"u{n}" for n in range(75)]
        )
    assert len(found) == 75
