"""``POST /users/export/ids`` as Braze documents it, on profiles set by ``/users/track``.

https://www.braze.com/docs/api/endpoints/export/user_data/post_users_identifier/
"""

from __future__ import annotations

from typing import Any

import pytest

from cohortsync.braze.sandbox import Sandbox

from .rest_client import RestClient
from .support import email


@pytest.fixture
def rest(sandbox: Sandbox) -> RestClient:
    """Ann (identified, profile fields, custom attributes, an event, a purchase, a
    device), an alias-only visitor and an anonymous device user."""
    client = RestClient(sandbox)
    sandbox.load_users(
        [
            {"external_id": "ann", "aliases": [email("ann@crm")], "device_ids": ["ios-ann"]},
            {"device_ids": ["kiosk"]},
        ]
    )
    client.track(
        attributes=[
            {
                "external_id": "ann",
                "first_name": "Ann",
                "email": "ann@example.com",
                "phone": "+33612345678",
                "country": "FR",
                "plan": "gold",
                "address": {"city": "Lyon"},
            },
            {"user_alias": email("visitor@x.io"), "_update_existing_only": False, "visits": 2},
        ],
        events=[{"external_id": "ann", "name": "login", "time": "2026-05-01T08:00:00Z"}],
        purchases=[
            {"external_id": "ann", "product_id": "book", "currency": "EUR", "price": 12.5,
             "time": "2026-05-02T08:00:00Z"},
        ],
    )  # fmt: skip
    return client


def no_nulls(value: Any) -> bool:
    if isinstance(value, dict):
        return all(v is not None and no_nulls(v) for v in value.values())
    if isinstance(value, list):
        return all(no_nulls(v) for v in value)
    return True


def test_profile_fields_at_the_top_custom_attributes_apart_and_no_nulls(rest: RestClient) -> None:
    """https://www.braze.com/docs/api/endpoints/export/user_data/post_users_identifier/ :
    the profile fields (first_name, email, phone, country, ...) are top-level fields of
    each user, custom attributes are under ``custom_attributes``, events under
    ``custom_events`` and purchases under ``purchases`` (name, first, last, count), with
    ``total_revenue``; a field the profile lacks is absent, not null."""
    ann = rest.profile("ann")
    assert ann["braze_id"].isdigit()
    assert (ann["first_name"], ann["email"], ann["phone"], ann["country"]) == (
        "Ann",
        "ann@example.com",
        "+33612345678",
        "FR",
    )
    assert ann["custom_attributes"] == {"plan": "gold", "address": {"city": "Lyon"}}
    assert ann["user_aliases"] == [email("ann@crm")]
    assert ann["devices"] == [{"device_id": "ios-ann"}]
    assert ann["custom_events"] == [
        {"name": "login", "first": "2026-05-01T08:00:00.000+00:00",
         "last": "2026-05-01T08:00:00.000+00:00", "count": 1}
    ]  # fmt: skip
    assert ann["purchases"][0]["name"] == "book" and ann["total_revenue"] == 12.5
    assert "last_name" not in ann and "dob" not in ann
    [kiosk] = rest.export(device_id="kiosk")
    assert set(kiosk) == {
        "created_at",
        "braze_id",
        "user_aliases",
        "custom_attributes",
        "devices",
        "cohorts",
    }
    assert kiosk["braze_id"] != ann["braze_id"]
    assert no_nulls(ann) and no_nulls(kiosk)


def test_users_by_email_address_braze_id_and_phone(rest: RestClient) -> None:
    """https://www.braze.com/docs/api/endpoints/export/user_data/post_users_identifier/ :
    users may be named by ``external_ids``, ``user_aliases``, ``device_id``, ``braze_id``,
    ``email_address`` or ``phone``."""
    ann = rest.profile("ann")
    assert rest.export(email_address="ann@example.com") == [ann]
    assert rest.export(email_address="ANN@example.com") == [ann]
    assert rest.export(phone="+33612345678") == [ann]
    assert rest.export(braze_id=ann["braze_id"]) == [ann]
    assert rest.export(braze_id="424242424242") == []
    [visitor] = rest.export(user_aliases=[email("visitor@x.io")])
    assert rest.export(braze_id=visitor["braze_id"]) == [visitor]
    both = rest.export(email_address="ann@example.com", user_aliases=[email("visitor@x.io")])
    assert [user["braze_id"] for user in both] == [ann["braze_id"], visitor["braze_id"]]


def test_fields_to_export_keeps_only_the_named_fields(rest: RestClient) -> None:
    """https://www.braze.com/docs/api/endpoints/export/user_data/post_users_identifier/ :
    ``fields_to_export`` names the fields to export (all when absent)."""
    only = rest.export(
        external_ids=["ann"], fields_to_export=["braze_id", "first_name", "custom_events"]
    )
    assert list(only[0]) == ["braze_id", "first_name", "custom_events"]
    response = rest.post(
        "/users/export/ids", {"external_ids": ["ann"], "fields_to_export": ["shoe_size"]}
    )
    assert response.status_code == 400
    assert "shoe_size" in response.json()["message"]


def test_unknown_external_ids_are_listed_and_a_request_needs_an_identifier(
    rest: RestClient,
) -> None:
    """https://www.braze.com/docs/api/endpoints/export/user_data/post_users_identifier/ :
    ``invalid_user_ids`` lists the external ids no user has."""
    response = rest.post("/users/export/ids", {"external_ids": ["ann", "nobody"]})
    assert response.status_code == 200
    assert response.json()["invalid_user_ids"] == ["nobody"]
    assert response.json()["message"] == "success"
    for body in ({}, {"fields_to_export": ["email"]}, {"email_address": ""}, {"braze_id": 5}):
        assert rest.post("/users/export/ids", body).status_code == 400
