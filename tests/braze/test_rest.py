"""Braze REST endpoints around cohort import: users, aliases, identify, export, segments."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from cohortsync.braze import admin, messages
from cohortsync.braze.sandbox import Sandbox
from cohortsync.errors import ConfigError

from .support import PartnerClient, email, member_ids


class Rest:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.headers = {"Authorization": f"Bearer {sandbox.rest_api_key}"}

    def post(self, path: str, body: Any) -> requests.Response:
        return requests.post(
            f"{self.sandbox.base_url}{path}", json=body, headers=self.headers, timeout=10
        )

    def get(self, path: str, **params: Any) -> requests.Response:
        return requests.get(
            f"{self.sandbox.base_url}{path}", params=params, headers=self.headers, timeout=10
        )

    def export(self, **body: Any) -> list[dict[str, Any]]:
        response = self.post("/users/export/ids", body)
        assert response.status_code == 200, response.text
        return list(response.json()["users"])


@pytest.fixture
def rest(sandbox: Sandbox) -> Rest:
    return Rest(sandbox)


def test_rest_endpoints_need_the_workspace_rest_api_key(sandbox: Sandbox) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": sandbox.rest_api_key}):
        response = requests.post(
            f"{sandbox.base_url}/users/track", json={"attributes": []}, headers=headers, timeout=10
        )
        assert response.status_code == 401
        assert response.json()["message"] == messages.UNAUTHORIZED
        assert "X-RateLimit-Remaining" in response.headers
    response = requests.get(f"{sandbox.base_url}/segments/list", timeout=10)
    assert response.status_code == 401


def test_track_creates_and_updates_users(rest: Rest) -> None:
    """https://www.braze.com/docs/api/objects_filters/user_attributes_object/ : an alias
    creates an alias-only profile only with ``_update_existing_only`` false; unknown
    profiles in update-only mode are non-fatal errors (201)."""
    response = rest.post(
        "/users/track",
        {
            "attributes": [
                {"external_id": "u1", "plan": "gold"},
                {"user_alias": email("anon@x.io"), "visits": 3, "_update_existing_only": False},
                {"external_id": "ghost", "_update_existing_only": True},
            ]
        },
    )
    assert response.status_code == 201, response.text
    assert response.json()["attributes_processed"] == 2
    assert [e["index"] for e in response.json()["errors"]] == [2]
    assert rest.post(
        "/users/track", {"attributes": [{"external_id": "u1", "plan": "platinum", "age": 40}]}
    ).ok
    [user] = rest.export(external_ids=["u1", "ghost"])
    assert user["custom_attributes"] == {"plan": "platinum", "age": 40}
    [anon] = rest.export(user_aliases=[email("anon@x.io")])
    assert "external_id" not in anon and anon["custom_attributes"] == {"visits": 3}


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"attributes": "x"},
        {"attributes": [{"external_id": "u1"}] * 76},
    ],
    ids=["none", "string", "too-many"],
)
def test_track_refuses_malformed_bodies(rest: Rest, body: dict[str, Any]) -> None:
    """https://www.braze.com/docs/api/endpoints/user_data/post_user_track/ : a body of the
    wrong shape as a whole is refused (objects of a wrong shape are non-fatal errors, see
    tests/braze/test_users_track.py)."""
    response = rest.post("/users/track", body)
    assert response.status_code == 400
    assert response.json()["message"]


def test_alias_new_and_identify_merge(rest: Rest, sandbox: Sandbox) -> None:
    partner = PartnerClient(sandbox)
    assert rest.post("/users/track", {"attributes": [{"external_id": "known", "tier": 1}]}).ok
    response = rest.post(
        "/users/alias/new",
        {
            "user_aliases": [
                {"alias_label": "email", "alias_name": "visitor@x.io"},
                {"alias_label": "crm", "alias_name": "K-1", "external_id": "known"},
            ]
        },
    )
    assert response.status_code == 200, response.text
    sandbox.load_users([{"aliases": [email("visitor@x.io")], "device_ids": ["ipad"]}])
    partner.add("vip", aliases=[email("visitor@x.io")])
    assert member_ids(sandbox.members("vip")) == [None]
    response = rest.post(
        "/users/identify",
        {"aliases_to_identify": [{"external_id": "known", "user_alias": email("visitor@x.io")}]},
    )
    assert response.status_code == 200, response.text
    assert sandbox.members("vip") == [
        {
            "external_id": "known",
            "aliases": [{"alias_label": "crm", "alias_name": "K-1"}, email("visitor@x.io")],
            "device_ids": ["ipad"],
        }
    ]
    [user] = rest.export(external_ids=["known"])
    assert user["cohorts"] == ["vip"]
    assert user["devices"] == [{"device_id": "ipad"}]
    assert rest.export(device_id="ipad") == [user]
    only = rest.export(external_ids=["known"], fields_to_export=["external_id"])
    assert only == [{"external_id": "known"}]


def test_identify_without_an_existing_user_gives_the_id(rest: Rest, sandbox: Sandbox) -> None:
    sandbox.load_users([{"aliases": [email("new@x.io")]}])
    response = rest.post(
        "/users/identify",
        {"aliases_to_identify": [{"external_id": "fresh", "user_alias": email("new@x.io")}]},
    )
    assert response.status_code == 200
    [user] = rest.export(external_ids=["fresh"])
    assert user["user_aliases"] == [email("new@x.io")]
    bad = rest.post("/users/identify", {"aliases_to_identify": [{"external_id": "x"}]})
    assert bad.status_code == 400


def test_export_needs_an_identifier(rest: Rest) -> None:
    assert rest.post("/users/export/ids", {}).status_code == 400
    assert rest.post("/users/export/ids", {"external_ids": "u1"}).status_code == 400
    response = rest.post("/users/export/ids", {"external_ids": ["nobody"]})
    assert response.json()["invalid_user_ids"] == ["nobody"]


def test_segments_from_cohort_filters(rest: Rest, sandbox: Sandbox) -> None:
    sandbox.load_users(
        [
            {"external_id": "a"},
            {"external_id": "b"},
            {"external_id": "c"},
            {"device_ids": ["anon-1"]},
        ]
    )
    partner = PartnerClient(sandbox)
    partner.define("buyers", "Buyers")
    partner.add("buyers", user_ids=["a", "b", "c"], device_ids=["anon-1"])
    partner.add("churned", user_ids=["b"])
    store, ws = sandbox.store, sandbox.workspace
    made = admin.create_segment(
        store,
        "active buyers",
        workspace=ws,
        includes_cohorts=["buyers"],
        excludes_cohorts=["churned"],
    )
    assert member_ids(sandbox.segment_members("active buyers")) == ["a", "c", None]
    admin.create_segment(
        store, "known buyers", workspace=ws, includes_cohorts=["buyers"], external_id=True
    )
    assert member_ids(sandbox.segment_members("known buyers")) == ["a", "b", "c"]
    admin.create_segment(store, "anonymous", workspace=ws, includes_cohorts=[], external_id=False)
    assert member_ids(sandbox.segment_members("anonymous")) == [None]
    admin.create_segment(
        store, "either", workspace=ws, excludes_cohorts=["buyers"], external_id=False, match="any"
    )
    assert member_ids(sandbox.segment_members("either")) == [None]
    tree = {
        "type": "or",
        "filters": [
            {"type": "cohort", "cohort_id": "churned", "includes": True},
            {
                "type": "and",
                "filters": [
                    {"type": "cohort", "cohort_id": "buyers", "includes": True},
                    {"type": "external_id", "present": False},
                ],
            },
        ],
    }
    admin.create_segment(store, "nested", workspace=ws, filter=tree)
    assert member_ids(sandbox.segment_members("nested")) == ["b", None]
    with pytest.raises(ConfigError, match="no cohort 'missing'"):
        admin.create_segment(store, "bad", workspace=ws, includes_cohorts=["missing"])
    with pytest.raises(ConfigError, match="exists already"):
        admin.create_segment(store, "nested", workspace=ws, filter=tree)

    listing = rest.get("/segments/list")
    assert listing.status_code == 200
    names = [s["name"] for s in listing.json()["segments"]]
    assert sorted(names) == ["active buyers", "anonymous", "either", "known buyers", "nested"]
    newest_first = rest.get("/segments/list", sort_direction="desc").json()["segments"]
    assert [s["name"] for s in newest_first] == names[::-1]
    assert rest.get("/segments/list", page=1).json()["segments"] == []
    assert rest.get("/segments/list", page="x").status_code == 400
    details = rest.get("/segments/details", segment_id=made["id"])
    assert details.status_code == 200
    text = details.json()["text_description"]
    assert "Treasure Data Cohorts includes 'Buyers'" in text
    assert "excludes 'churned'" in text
    assert rest.get("/segments/details", segment_id="nope").status_code == 404
    assert rest.get("/segments/details").status_code == 400


def test_openapi_document_is_published(sandbox: Sandbox) -> None:
    document = requests.get(f"{sandbox.base_url}/openapi.json", timeout=10).json()
    paths = document["paths"]
    for path in (
        "/partners/{partner}/cohorts",
        "/partners/{partner}/cohorts/users",
        "/users/track",
        "/users/alias/new",
        "/users/identify",
        "/users/export/ids",
    ):
        schema = paths[path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert schema["type"] == "object"
    assert {"/segments/list", "/segments/details"} <= set(paths)
    changes = paths["/partners/{partner}/cohorts/users"]["post"]["requestBody"]["content"]
    assert "cohort_changes" in changes["application/json"]["schema"]["required"]


def test_concurrent_tracks_of_one_new_user_make_one_user(rest: Rest, sandbox: Sandbox) -> None:
    """Racing creations never answer 500: SQLite queues them, PostgreSQL may say 409."""
    from concurrent.futures import ThreadPoolExecutor

    def track(n: int) -> int:
        body = {"attributes": [{"external_id": "racer", f"a{n}": n}]}
        return rest.post("/users/track", body).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(track, range(16)))
    assert set(statuses) <= {200, 409} and 200 in statuses
    [user] = rest.export(external_ids=["racer"])
    assert len(user["custom_attributes"]) == statuses.count(200)
