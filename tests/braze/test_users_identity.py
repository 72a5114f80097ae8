"""The identity endpoints, rule by rule as Braze documents them: alias/new, identify, delete.

Each test names the Braze page its rule comes from; every test runs on
SQLite and PostgreSQL (the ``sandbox`` fixture).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import requests

from cohortsync.braze.profiles import lookup
from cohortsync.braze.sandbox import Sandbox
from cohortsync.braze.store import track_queries

from .support import PartnerClient, email, member_ids

ALIAS_NEW_DOC = "https://www.braze.com/docs/api/endpoints/user_data/post_user_alias/"
IDENTIFY_DOC = "https://www.braze.com/docs/api/endpoints/user_data/post_user_identify/"
DELETE_DOC = "https://www.braze.com/docs/api/endpoints/user_data/post_user_delete/"
ALIAS_OBJECT_DOC = "https://www.braze.com/docs/api/objects_filters/user_alias_object/"


class Rest:
    """The workspace's REST API, as a Braze customer calls it."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {sandbox.rest_api_key}"

    def post(self, path: str, body: Any) -> requests.Response:
        return self.session.post(f"{self.sandbox.base_url}{path}", json=body, timeout=30)

    def ok(self, path: str, body: Any) -> dict[str, Any]:
        response = self.post(path, body)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        assert answer["message"] == "success"
        return answer

    def track(self, *attributes: dict[str, Any]) -> None:
        self.ok("/users/track", {"attributes": list(attributes)})

    def alias_new(self, *user_aliases: dict[str, Any]) -> dict[str, Any]:
        return self.ok("/users/alias/new", {"user_aliases": list(user_aliases)})

    def identify(self, *objects: dict[str, Any], **fields: Any) -> dict[str, Any]:
        return self.ok("/users/identify", {"aliases_to_identify": list(objects), **fields})


@pytest.fixture
def rest(sandbox: Sandbox) -> Rest:
    return Rest(sandbox)


def holder(sandbox: Sandbox, **identifier: Any) -> lookup.FoundUser | None:
    """The one user holding the identifier, or None."""
    found = lookup.find_users(sandbox.store, sandbox.workspace, **identifier)
    assert len(found) <= 1
    return found[0] if found else None


def profile(sandbox: Sandbox, **identifier: Any) -> lookup.UserProfile:
    user = holder(sandbox, **identifier)
    assert user is not None, identifier
    found = lookup.user_profile(sandbox.store, sandbox.workspace, user.braze_id)
    assert found is not None
    return found


def alias(label: str, name: str) -> dict[str, str]:
    return {"alias_label": label, "alias_name": name}


def to_identify(external_id: str, label: str, name: str) -> dict[str, Any]:
    return {"external_id": external_id, "user_alias": alias(label, name)}


def visit_event(**who: Any) -> dict[str, Any]:
    return {**who, "name": "visited", "time": "2026-11-30T10:00:00Z"}


# ---------------------------------------------------------------- /users/alias/new


def test_alias_new_adds_the_alias_to_the_user_with_that_external_id(
    rest: Rest, sandbox: Sandbox
) -> None:
    """An alias object with an external_id adds the alias to that existing user.

    https://www.braze.com/docs/api/endpoints/user_data/post_user_alias/
    """
    rest.track({"external_id": "ann"})
    answer = rest.alias_new({"external_id": "ann", **alias("crm", "A-1")})
    assert answer == {"aliases_processed": 1, "message": "success"}
    user = holder(sandbox, alias=("crm", "A-1"))
    assert user is not None and user.external_id == "ann"


def test_alias_new_with_an_unknown_external_id_adds_the_alias_to_nobody(
    rest: Rest, sandbox: Sandbox
) -> None:
    """ "If the external_id is present in the object but there is no user with that
    external_id, the alias will not be added to any users": no user is created.

    https://www.braze.com/docs/api/endpoints/user_data/post_user_alias/
    """
    answer = rest.alias_new({"external_id": "ghost", **alias("crm", "G-1")})
    assert answer["aliases_processed"] == 1
    assert holder(sandbox, alias=("crm", "G-1")) is None
    assert holder(sandbox, external_id="ghost") is None


def test_alias_new_without_an_external_id_creates_an_alias_only_user(
    rest: Rest, sandbox: Sandbox
) -> None:
    """ "If an external_id is not present, a user will still be created but will need
    to be identified later": an alias-only user.

    https://www.braze.com/docs/api/endpoints/user_data/post_user_alias/
    """
    answer = rest.alias_new(alias("email", "walk-in@x.io"))
    assert answer["aliases_processed"] == 1
    user = holder(sandbox, alias=("email", "walk-in@x.io"))
    assert user is not None
    assert user.external_id is None
    assert user.aliases == [email("walk-in@x.io")]


def test_alias_new_with_a_pair_already_in_use_succeeds_and_changes_nothing(
    rest: Rest, sandbox: Sandbox
) -> None:
    """A label and name pair already held (by the same user or another) answers
    success with the object counted, and adds nothing.

    https://www.braze.com/docs/api/endpoints/user_data/post_user_alias/
    """
    rest.track({"external_id": "ann"}, {"external_id": "bob"})
    rest.alias_new({"external_id": "ann", **alias("crm", "A-1")})
    answer = rest.alias_new(
        {"external_id": "bob", **alias("crm", "A-1")},
        {"external_id": "ann", **alias("crm", "A-1")},
        alias("crm", "A-1"),
    )
    assert answer == {"aliases_processed": 3, "message": "success"}
    user = holder(sandbox, alias=("crm", "A-1"))
    assert user is not None and user.external_id == "ann"
    assert profile(sandbox, external_id="bob").aliases == []


def test_a_user_keeps_one_alias_per_label(rest: Rest, sandbox: Sandbox) -> None:
    """ "Users can have multiple aliases with different labels, but only one
    alias_name per alias_label": a second name under a label the user has is not added.

    https://www.braze.com/docs/api/objects_filters/user_alias_object/
    """
    rest.track({"external_id": "ann"})
    answer = rest.alias_new(
        {"external_id": "ann", **alias("crm", "A-1")},
        {"external_id": "ann", **alias("crm", "A-2")},
        {"external_id": "ann", **alias("loyalty", "L-9")},
    )
    assert answer["aliases_processed"] == 3
    assert profile(sandbox, external_id="ann").aliases == [
        alias("crm", "A-1"),
        alias("loyalty", "L-9"),
    ]
    assert holder(sandbox, alias=("crm", "A-2")) is None


def test_concurrent_alias_requests_leave_one_alias_per_label(rest: Rest, sandbox: Sandbox) -> None:
    """Two requests giving one user two names under one label, at once: one wins.

    https://www.braze.com/docs/api/objects_filters/user_alias_object/
    """
    users = [f"racer-{n}" for n in range(8)]
    rest.track(*({"external_id": user} for user in users))
    answers: list[int] = []

    def send(name: str) -> None:
        bodies = [{"external_id": user, **alias("crm", f"{user}-{name}")} for user in users]
        answers.append(Rest(sandbox).post("/users/alias/new", {"user_aliases": bodies}).status_code)

    threads = [threading.Thread(target=send, args=(name,)) for name in ("a", "b", "c")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [200, 200, 200]
    for user in users:
        labels = [a["alias_label"] for a in profile(sandbox, external_id=user).aliases]
        assert labels == ["crm"], user


def test_alias_new_refuses_malformed_bodies(rest: Rest) -> None:
    """An alias object needs a string alias_name and alias_label; at most 50 per request.

    https://www.braze.com/docs/api/endpoints/user_data/post_user_alias/
    """
    for body in (
        {},
        {"user_aliases": [{"alias_label": "crm"}]},
        {"user_aliases": ["crm"]},
        {"user_aliases": [{"external_id": 7, **alias("crm", "x")}]},
        {"user_aliases": [alias("crm", f"n{i}") for i in range(51)]},
    ):
        response = rest.post("/users/alias/new", body)
        assert response.status_code == 400, body
        assert "user_aliases" in response.json()["message"]


# ---------------------------------------------------------------- /users/identify


def test_identify_without_a_user_of_that_id_gives_the_alias_only_user_the_id(
    rest: Rest, sandbox: Sandbox
) -> None:
    """ "If there isn't a user with that external_id, the external_id is added to the
    aliased user's record, and the user is considered identified."

    https://www.braze.com/docs/api/endpoints/user_data/post_user_identify/
    """
    rest.alias_new(alias("email", "new@x.io"))
    before = holder(sandbox, alias=("email", "new@x.io"))
    answer = rest.identify(to_identify("fresh", "email", "new@x.io"))
    assert answer == {"aliases_processed": 1, "message": "success"}
    after = holder(sandbox, external_id="fresh")
    assert before is not None and after is not None
    assert after.braze_id == before.braze_id
    assert after.aliases == [email("new@x.io")]


def test_identify_combines_the_alias_only_profile_into_the_identified_one(
    rest: Rest, sandbox: Sandbox
) -> None:
    """By default the fields found only on the anonymous profile are merged into the
    identified one (custom attributes among them), and the alias-only profile is removed.
    Its device ids then match no cohort import, as for any identified user.

    https://www.braze.com/docs/api/endpoints/user_data/post_user_identify/
    """
    rest.track({"external_id": "known", "plan": "gold", "first_name": "Kim"})
    rest.alias_new({"external_id": "known", **alias("crm", "K-1")})
    sandbox.load_users([{"aliases": [email("visitor@x.io")], "device_ids": ["ipad"]}])
    rest.track(
        {
            "user_alias": email("visitor@x.io"),
            "plan": "trial",
            "city": "Lyon",
            "first_name": "Vi",
            "country": "FR",
            "email": "visitor@x.io",
        }
    )
    rest.ok("/users/track", {"events": [visit_event(user_alias=email("visitor@x.io"))]})
    partner = PartnerClient(sandbox)
    partner.add("vip", aliases=[email("visitor@x.io")])
    visitor = holder(sandbox, alias=("email", "visitor@x.io"))
    assert visitor is not None and visitor.external_id is None

    answer = rest.identify(to_identify("known", "email", "visitor@x.io"))
    assert answer == {"aliases_processed": 1, "message": "success"}
    known = profile(sandbox, external_id="known")
    assert known.aliases == [alias("crm", "K-1"), email("visitor@x.io")]
    assert known.device_ids == ["ipad"]
    assert known.attributes == {"plan": "gold", "city": "Lyon"}
    assert known.profile_fields == {"country": "FR", "email": "visitor@x.io", "first_name": "Kim"}
    assert [event.name for event in known.events] == ["visited"]
    assert [cohort["cohort_id"] for cohort in known.cohorts] == ["vip"]
    assert lookup.user_profile(sandbox.store, sandbox.workspace, visitor.braze_id) is None
    partner.add("tablets", device_ids=["ipad"])
    assert sandbox.members("tablets") == []


def test_identify_does_not_combine_when_the_user_has_an_alias_of_that_label(
    rest: Rest, sandbox: Sandbox
) -> None:
    """ "Users can have only one alias for a specific label. If a user already exists with
    the external_id and has an existing alias with the same label as the alias-only
    profile, then the user profiles are not combined." Both profiles stay as they were.

    https://www.braze.com/docs/api/endpoints/user_data/post_user_identify/
    """
    rest.track({"external_id": "known"})
    rest.alias_new({"external_id": "known", **alias("email", "known@x.io")})
    rest.alias_new(alias("email", "other@x.io"))
    answer = rest.identify(to_identify("known", "email", "other@x.io"))
    assert answer["aliases_processed"] == 0
    [error] = answer["errors"]
    assert error.startswith("aliases_to_identify[0]: ")
    assert "'email'" in error and "not combined" in error
    other = holder(sandbox, alias=("email", "other@x.io"))
    assert other is not None and other.external_id is None
    assert profile(sandbox, external_id="known").aliases == [email("known@x.io")]


def test_identify_with_merge_behavior_none_keeps_only_aliases_and_devices(
    rest: Rest, sandbox: Sandbox
) -> None:
    """``merge_behavior: "none"``: only the push tokens (the devices) and the aliases go
    to the identified user; attributes, profile fields, events (and cohort memberships)
    are orphaned and removed with the alias-only profile.

    https://www.braze.com/docs/api/endpoints/user_data/post_user_identify/
    """
    rest.track({"external_id": "known", "plan": "gold"})
    sandbox.load_users([{"aliases": [email("visitor@x.io")], "device_ids": ["ipad"]}])
    rest.track({"user_alias": email("visitor@x.io"), "city": "Lyon", "country": "FR"})
    rest.ok("/users/track", {"events": [visit_event(user_alias=email("visitor@x.io"))]})
    PartnerClient(sandbox).add("vip", aliases=[email("visitor@x.io")])

    answer = rest.identify(to_identify("known", "email", "visitor@x.io"), merge_behavior="none")
    assert answer["aliases_processed"] == 1
    known = profile(sandbox, external_id="known")
    assert known.aliases == [email("visitor@x.io")]
    assert known.device_ids == ["ipad"]
    assert known.attributes == {"plan": "gold"}
    assert known.profile_fields == {} and known.events == []
    assert known.cohorts == []
    assert sandbox.members("vip") == []


def test_identify_reports_objects_that_identify_nobody(rest: Rest, sandbox: Sandbox) -> None:
    """An alias nobody holds, or one of a user identified as someone else, identifies
    nobody: a non-fatal error of that object, the others still processed.

    https://www.braze.com/docs/api/endpoints/user_data/post_user_identify/
    """
    rest.track({"external_id": "ann"})
    rest.alias_new({"external_id": "ann", **alias("crm", "A-1")})
    rest.alias_new(alias("crm", "B-1"))
    answer = rest.identify(
        to_identify("zed", "crm", "nobody"),
        to_identify("bob", "crm", "A-1"),
        to_identify("ann", "crm", "A-1"),
        to_identify("bob", "crm", "B-1"),
    )
    assert answer["aliases_processed"] == 2
    assert [error.split(":")[0] for error in answer["errors"]] == [
        "aliases_to_identify[0]",
        "aliases_to_identify[1]",
    ]
    bob = holder(sandbox, external_id="bob")
    assert bob is not None and bob.aliases == [alias("crm", "B-1")]


def test_identify_by_email_picks_the_profile_by_prioritization(
    rest: Rest, sandbox: Sandbox
) -> None:
    """``emails_to_identify`` identifies the email-only profile with that email;
    ``prioritization`` picks among several, and "if more than one user matches from a
    prioritization, then merging does not occur".

    https://www.braze.com/docs/api/endpoints/user_data/post_user_identify/
    """
    rest.track({"external_id": "known"})
    new = {"_update_existing_only": False, "email": "pat@x.io"}
    rest.track({"user_alias": alias("visit", "v1"), "city": "Lyon", **new})
    time.sleep(0.01)
    rest.track({"user_alias": alias("visit2", "v2"), **new})

    def by_email(*prioritization: str) -> dict[str, Any]:
        item = {"external_id": "known", "email": "pat@x.io", "prioritization": list(prioritization)}
        return rest.ok("/users/identify", {"emails_to_identify": [item]})

    ambiguous = by_email("unidentified")
    assert ambiguous["aliases_processed"] == 0
    assert "2 profiles" in ambiguous["errors"][0]
    assert profile(sandbox, external_id="known").aliases == []

    answer = by_email("unidentified", "least_recently_updated")
    assert answer == {"aliases_processed": 1, "message": "success"}
    known = profile(sandbox, external_id="known")
    assert known.aliases == [alias("visit", "v1")]
    assert known.attributes["city"] == "Lyon"
    assert known.profile_fields["email"] == "pat@x.io"
    assert holder(sandbox, alias=("visit", "v1")) is not None
    assert by_email("unidentified")["aliases_processed"] == 1  # one email-only profile left
    assert profile(sandbox, external_id="known").aliases == [
        alias("visit", "v1"),
        alias("visit2", "v2"),
    ]


def test_identify_by_phone_number_identifies_the_phone_only_profile(
    rest: Rest, sandbox: Sandbox
) -> None:
    """``phone_numbers_to_identify`` works as ``emails_to_identify`` does, by phone.

    https://www.braze.com/docs/api/endpoints/user_data/post_user_identify/
    """
    rest.track({"external_id": "known"})
    rest.track(
        {"user_alias": alias("visit", "v1"), "_update_existing_only": False, "phone": "+15550100"}
    )
    item = {"external_id": "known", "phone": "+15550100", "prioritization": ["unidentified"]}
    answer = rest.ok("/users/identify", {"phone_numbers_to_identify": [item]})
    assert answer == {"aliases_processed": 1, "message": "success"}
    assert profile(sandbox, external_id="known").aliases == [alias("visit", "v1")]
    again = rest.ok("/users/identify", {"phone_numbers_to_identify": [item]})
    assert again["errors"][0].startswith("phone_numbers_to_identify[0]")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"merge_behavior": "merge"},
        {"aliases_to_identify": [to_identify("x", "crm", "y")], "merge_behavior": "sometimes"},
        {"aliases_to_identify": [{"external_id": "x"}]},
        {"aliases_to_identify": [to_identify("x", "crm", f"n{i}") for i in range(51)]},
        {
            "aliases_to_identify": [to_identify("x", "crm", f"n{i}") for i in range(30)],
            "emails_to_identify": [
                {"external_id": "x", "email": f"{i}@x.io", "prioritization": ["unidentified"]}
                for i in range(21)
            ],
        },
        {"emails_to_identify": [{"external_id": "x", "email": "a@x.io"}]},
        {
            "emails_to_identify": [
                {"external_id": "x", "email": "a@x.io", "prioritization": ["newest"]}
            ]
        },
        {
            "emails_to_identify": [
                {
                    "external_id": "x",
                    "email": "a@x.io",
                    "prioritization": ["identified", "unidentified"],
                }
            ]
        },
    ],
)
def test_identify_refuses_malformed_bodies(rest: Rest, body: dict[str, Any]) -> None:
    """One of aliases_to_identify and emails_to_identify is required, 50 objects at most;
    merge_behavior is "none" or "merge"; an email needs a prioritization of the allowed
    values, with at most one of identified and unidentified.

    https://www.braze.com/docs/api/endpoints/user_data/post_user_identify/
    """
    response = rest.post("/users/identify", body)
    assert response.status_code == 400, response.text
    assert response.json()["message"]


# ---------------------------------------------------------------- /users/delete


def test_delete_removes_the_profiles_and_all_they_hold(rest: Rest, sandbox: Sandbox) -> None:
    """Up to 50 external_ids, user_aliases or braze_ids; the profiles go with their
    aliases, devices, cohort memberships and attributes; the answer counts them.

    https://www.braze.com/docs/api/endpoints/user_data/post_user_delete/
    """
    sandbox.load_users(
        [
            {"external_id": "ann", "aliases": [email("ann@x.io")], "device_ids": ["d-ann"]},
            {"external_id": "bob"},
            {"aliases": [email("anon@x.io")], "device_ids": ["d-anon"]},
            {"external_id": "cat"},
        ]
    )
    rest.track({"external_id": "ann", "plan": "gold", "first_name": "Ann"})
    rest.ok("/users/track", {"events": [visit_event(external_id="ann")]})
    ann = holder(sandbox, external_id="ann")
    assert ann is not None
    partner = PartnerClient(sandbox)
    partner.add("vip", user_ids=["ann", "bob", "cat"], device_ids=["d-anon"])
    cat = holder(sandbox, external_id="cat")
    assert cat is not None

    assert rest.ok("/users/delete", {"external_ids": ["ann", "nobody"]}) == {
        "deleted": 1,
        "message": "success",
    }
    assert rest.ok("/users/delete", {"user_aliases": [email("anon@x.io")]})["deleted"] == 1
    assert rest.ok("/users/delete", {"braze_ids": [str(cat.braze_id), "no-such"]})["deleted"] == 1
    assert member_ids(sandbox.members("vip")) == ["bob"]
    for identifier in (
        {"external_id": "ann"},
        {"alias": ("email", "ann@x.io")},
        {"device_id": "d-ann"},
        {"device_id": "d-anon"},
        {"external_id": "cat"},
    ):
        assert holder(sandbox, **identifier) is None, identifier
    # The identifiers are free again: a new user takes them, with nothing of the old one.
    rest.track({"external_id": "ann"})
    rest.alias_new({"external_id": "ann", **email("ann@x.io")})
    again = profile(sandbox, external_id="ann")
    assert again.aliases == [email("ann@x.io")]
    assert again.attributes == {} and again.cohorts == [] and again.device_ids == []
    assert again.profile_fields == {} and again.events == []
    with sandbox.store.read() as conn:
        assert track_queries.recent_events(conn, ann.braze_id, 10) == []


def test_delete_by_email_or_phone_deletes_the_one_profile_prioritization_picks(
    rest: Rest, sandbox: Sandbox
) -> None:
    """``email_addresses`` and ``phone_numbers`` name users by contact with a
    ``prioritization``: "deleting users will not occur if more than one user matches a
    prioritization".

    https://www.braze.com/docs/api/endpoints/user_data/post_user_delete/
    """
    rest.track({"external_id": "ann", "email": "pat@x.io", "phone": "+15550100"})
    new = {"_update_existing_only": False, "email": "pat@x.io", "phone": "+15550100"}
    rest.track({"user_alias": alias("visit", "v1"), **new})
    time.sleep(0.01)
    rest.track({"user_alias": alias("visit2", "v2"), **new})

    def delete(key: str, kind: str, *prioritization: str) -> int:
        item = {kind: new[kind], "prioritization": list(prioritization)}
        return int(rest.ok("/users/delete", {key: [item]})["deleted"])

    assert delete("email_addresses", "email", "unidentified") == 0
    assert delete("phone_numbers", "phone", "most_recently_updated") == 1
    assert holder(sandbox, alias=("visit2", "v2")) is None
    assert delete("email_addresses", "email", "identified") == 1
    assert holder(sandbox, external_id="ann") is None
    assert holder(sandbox, alias=("visit", "v1")) is not None
    assert delete("phone_numbers", "phone", "unidentified") == 1
    assert holder(sandbox, alias=("visit", "v1")) is None


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"external_ids": ["a"], "braze_ids": ["1"]},
        {"external_ids": [f"u{i}" for i in range(51)]},
        {"external_ids": "ann"},
        {"external_ids": [7]},
        {"user_aliases": [{"alias_label": "email"}]},
        {"email_addresses": ["a@x.io"]},
        {"email_addresses": [{"email": "a@x.io"}]},
        {
            "phone_numbers": [
                {"phone": "+15550100", "prioritization": ["identified", "unidentified"]}
            ]
        },
    ],
)
def test_delete_refuses_malformed_bodies(rest: Rest, body: dict[str, Any]) -> None:
    """ "Only one of external_ids, user_aliases, braze_ids ... can be included in a single
    request", up to 50 of them.

    https://www.braze.com/docs/api/endpoints/user_data/post_user_delete/
    """
    response = rest.post("/users/delete", body)
    assert response.status_code == 400, response.text
    assert response.json()["message"]


def test_delete_is_published_and_needs_the_rest_api_key(sandbox: Sandbox) -> None:
    """The endpoint authenticates with the workspace's REST API key, as Braze's do.

    https://www.braze.com/docs/api/endpoints/user_data/post_user_delete/
    """
    document = requests.get(f"{sandbox.base_url}/openapi.json", timeout=10).json()
    schema = document["paths"]["/users/delete"]["post"]["requestBody"]["content"]
    assert set(schema["application/json"]["schema"]["properties"]) == {
        "external_ids",
        "user_aliases",
        "braze_ids",
        "email_addresses",
        "phone_numbers",
    }
    response = requests.post(
        f"{sandbox.base_url}/users/delete", json={"external_ids": ["a"]}, timeout=10
    )
    assert response.status_code == 401
