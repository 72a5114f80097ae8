"""User Search: find a user by external id, alias or device id, and read the profile.

The data comes in the ways the service gets it: users from the bulk load,
attributes through ``/users/track`` with the workspace's REST API key, a
cohort through the partner API with the data import key, a segment and a
launched campaign through the library. A marketer's path runs in Chromium;
isolation and escaping are checked over plain HTTP.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from cohortsync.braze import admin, campaigns
from cohortsync.braze.profiles import lookup
from cohortsync.braze.sandbox import Sandbox
from support.browser import screenshot

from .conftest import Site

ADA_FIELDS: dict[str, Any] = {"first_name": "Ada", "country": "FR", "email": "ada@example.com"}
"""Braze profile fields: /users/track keeps them apart from the custom attributes."""
ADA_ATTRIBUTES: dict[str, Any] = {
    "plan": "gold",
    "vip": True,
    "newsletter": False,
    "visits": 42,
    "signed_up": "2025-11-03T10:15:00Z",
    "tags": ["sports", "news"],
    "address": {"city": "Lyon", "zip": "69001"},
}


def track(sandbox: Sandbox, attributes: list[dict[str, Any]]) -> None:
    """Attributes through ``/users/track``, as the REST API receives them."""
    answer = httpx.post(
        f"{sandbox.base_url}/users/track",
        json={"attributes": attributes},
        headers={"Authorization": f"Bearer {sandbox.rest_api_key}"},
        timeout=30,
    )
    assert answer.status_code in (200, 201), answer.text


def partner_cohort(sandbox: Sandbox, cohort_id: str, name: str, user_ids: list[str]) -> None:
    """A cohort defined and filled through the partner API, as an exporter does."""
    keys = {"partner_api_key": sandbox.partner_api_key, "client_secret": sandbox.data_import_key}
    base = f"{sandbox.base_url}/partners/{sandbox.partner}"
    defined = httpx.post(
        f"{base}/cohorts",
        json={**keys, "cohort_id": cohort_id, "name": name, "created_at": "2026-01-05T10:00:00Z"},
        timeout=30,
    )
    assert defined.status_code in (200, 201), defined.text
    changes = [{"user_ids": user_ids}]
    added = httpx.post(
        f"{base}/cohorts/users",
        json={**keys, "cohort_id": cohort_id, "cohort_changes": changes},
        timeout=30,
    )
    assert added.status_code == 200, added.text


@pytest.fixture
def people(site: Site) -> Site:
    """acme: ada-42 (alias, device, typed attributes, a cohort, a segment, a message),
    bo-7, and an anonymous user of the device ``kiosk-3``; globex: gx-1."""
    acme = site.acme
    acme.load_users(
        [
            {
                "external_id": "ada-42",
                "aliases": [{"alias_label": "email", "alias_name": "ada@example.com"}],
                "device_ids": ["ios-ada"],
            },
            {"external_id": "bo-7", "device_ids": ["android-bo"]},
            {"device_ids": ["kiosk-3"]},
        ]
    )
    track(acme, [{"external_id": "ada-42", **ADA_FIELDS, **ADA_ATTRIBUTES}])
    partner_cohort(acme, "vip-2026", "VIP customers", ["ada-42"])
    admin.create_segment(
        site.store, "VIP segment", workspace=acme.workspace, includes_cohorts=["vip-2026"]
    )
    campaigns.create_campaign(
        site.store,
        "Welcome back",
        workspace=acme.workspace,
        channel="email",
        message="Hi {{${first_name} | default: 'there'}}, your gold plan is waiting.",
        segments=["VIP segment"],
    )
    campaigns.launch_campaign(site.store, "Welcome back", workspace=acme.workspace)
    site.globex.load_users(
        [
            {
                "external_id": "gx-1",
                "aliases": [{"alias_label": "email", "alias_name": "gx@globex.io"}],
                "device_ids": ["gx-phone"],
            }
        ]
    )
    return site


def braze_id(sandbox: Sandbox, external_id: str) -> int:
    [found] = lookup.find_users(sandbox.store, sandbox.workspace, external_id=external_id)
    return found.braze_id


def test_a_marketer_finds_users_by_each_identifier_and_reads_the_profile(
    dashboard_page: Any, people: Site
) -> None:
    page = dashboard_page
    page.get_by_role("link", name="User Search").click()
    page.wait_for_url(people.acme_page("/users"))
    assert page.get_by_label("External ID").is_visible()
    assert not page.get_by_label("Device ID").is_visible()
    screenshot(page, "dashboard-users-search")

    # By device id: an anonymous user, known by its device only.
    page.get_by_label("Search by").select_option("device_id")
    assert not page.get_by_label("External ID").is_visible()
    page.get_by_label("Device ID").fill("kiosk-3")
    page.get_by_role("button", name="Find user").click()
    assert page.locator("table.user-results tbody tr").count() == 1
    assert "1 user has device id 'kiosk-3'." in page.inner_text("main")
    assert page.get_by_role("link", name=re.compile(r"^Anonymous user \d+$")).is_visible()
    screenshot(page, "dashboard-users-results")

    # By alias: label and name.
    page.get_by_label("Search by").select_option("alias")
    page.get_by_label("Alias label").fill("email")
    page.get_by_label("Alias name").fill("ada@example.com")
    page.get_by_role("button", name="Find user").click()
    assert page.locator("table.user-results tbody tr").count() == 1

    # By external id, then the profile.
    page.get_by_label("Search by").select_option("external_id")
    page.get_by_label("External ID").fill("ada-42")
    page.get_by_role("button", name="Find user").click()
    page.get_by_role("link", name="ada-42").click()
    page.wait_for_url(people.acme_page(f"/users/{braze_id(people.acme, 'ada-42')}"))
    main = page.inner_text("main")
    assert page.get_by_role("heading", name="ada-42").is_visible()
    assert "ada@example.com" in main and "ios-ada" in main
    assert "2025-11-03 10:15 UTC" in main
    attributes = page.locator("table.attributes tbody tr")
    assert attributes.count() == len(ADA_ATTRIBUTES)
    vip = page.locator("table.attributes tr", has_text="vip").first.inner_text()
    assert "boolean" in vip and "true" in vip
    tags = page.locator("table.attributes tr", has_text="tags")
    assert tags.locator("ul.values li").all_inner_texts() == ["sports", "news"]
    assert '"city": "Lyon"' in page.locator("pre.json").inner_text()
    cohort = page.get_by_role("link", name="VIP customers")
    assert cohort.get_attribute("href") == f"/dashboard/w/{people.acme.workspace}/cohorts/vip-2026"
    segment = page.get_by_role("link", name="VIP segment")
    assert re.fullmatch(
        rf"/dashboard/w/{people.acme.workspace}/segments/[0-9a-f-]{{36}}",
        segment.get_attribute("href") or "",
    )
    messages = page.locator("table.messages tbody tr")
    assert messages.count() == 1
    sent = messages.inner_text()
    assert "Welcome back" in sent and "Email" in sent
    assert "Hi Ada, your gold plan is waiting." in sent
    fields = page.locator("dl.profile-fields").inner_text()
    assert all(name in fields and value in fields for name, value in ADA_FIELDS.items())
    assert page.locator("table.attributes tr", has_text="first_name").count() == 0
    assert "No event recorded for this user." in main
    screenshot(page, "dashboard-user-profile")

    # A search without its identifier says what to type, next to the field.
    page.goto(people.acme_page("/users"))
    page.get_by_label("Search by").select_option("alias")
    page.get_by_label("Alias label").fill("email")
    page.get_by_role("button", name="Find user").click()
    assert page.locator("#e-alias_name").inner_text() == "Type the alias name."
    assert page.get_by_label("Alias label").input_value() == "email"
    screenshot(page, "dashboard-users-missing-identifier")

    # Nobody holds this external id.
    page.goto(people.acme_page("/users"))
    page.get_by_label("External ID").fill("nobody-99")
    page.get_by_role("button", name="Find user").click()
    status = page.get_by_role("status").inner_text()
    assert "No user with external id 'nobody-99' in this workspace." in status
    screenshot(page, "dashboard-users-not-found")


def test_the_profile_lists_the_latest_events_and_purchases(
    client: httpx.Client, people: Site
) -> None:
    """Events and purchases recorded by /users/track
    (https://www.braze.com/docs/api/endpoints/user_data/post_user_track/) show on the
    profile, newest first, with their properties, quantity, price and currency."""
    acme = people.acme
    answer = httpx.post(
        f"{acme.base_url}/users/track",
        json={
            "events": [
                {"external_id": "ada-42", "name": "opened_app", "time": "2026-03-01T09:00:00Z"},
                {"external_id": "ada-42", "name": "watched_<b>trailer</b>",
                 "time": "2026-03-02T10:30:00Z", "properties": {"title": "Dune"}},
            ],
            "purchases": [
                {"external_id": "ada-42", "product_id": "gold-plan", "currency": "EUR",
                 "price": 9.5, "quantity": 2, "time": "2026-03-03T12:00:00Z"},
            ],
        },
        headers={"Authorization": f"Bearer {acme.rest_api_key}"},
        timeout=30,
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    page = client.get(f"/w/{acme.workspace}/users/{braze_id(acme, 'ada-42')}").text
    events = page[page.index('id="events-heading"') : page.index('id="purchases-heading"')]
    rows = re.findall(r"<tr>\s*<td class=\"when\">.*?</tr>", events, flags=re.S)
    assert len(rows) == 2
    assert "watched_&lt;b&gt;trailer&lt;/b&gt;" in rows[0] and "Dune" in rows[0]
    assert "2026-03-02 10:30 UTC" in rows[0]
    assert "opened_app" in rows[1]
    purchases = page[page.index('id="purchases-heading"') :]
    assert "gold-plan" in purchases and "9.50 EUR" in purchases
    assert "No purchase recorded" not in purchases
    anonymous = lookup.find_users(people.store, acme.workspace, device_id="kiosk-3")[0]
    empty = client.get(f"/w/{acme.workspace}/users/{anonymous.braze_id}").text
    assert "No event recorded for this user." in empty
    assert "No purchase recorded for this user." in empty
    assert "No profile fields" in empty


def test_another_workspaces_users_are_never_reached(client: httpx.Client, people: Site) -> None:
    globex, acme = people.globex.workspace, people.acme.workspace
    gx = braze_id(people.globex, "gx-1")
    for path in (
        f"/w/{globex}/users",
        f"/w/{globex}/users?by=external_id&external_id=gx-1",
        f"/w/{globex}/users/{gx}",
        f"/w/{globex}/users/{braze_id(people.acme, 'ada-42')}",
    ):
        answer = client.get(path)
        assert answer.status_code == 404, path
        assert "gx-1" not in answer.text and "globex" not in answer.text
    refused = client.get(f"/w/{acme}/users/{gx}")
    assert refused.status_code == 404
    assert f"unknown user {gx} in this workspace" in refused.text
    assert "gx-1" not in refused.text
    for query in (
        "by=external_id&external_id=gx-1",
        "by=alias&alias_label=email&alias_name=gx@globex.io",
        "by=device_id&device_id=gx-phone",
    ):
        found = client.get(f"/w/{acme}/users?{query}")
        assert found.status_code == 200
        assert "in this workspace." in found.text and f"/w/{acme}/users/{gx}" not in found.text
    for odd in ("abc", "-1", "1.5"):
        assert client.get(f"/w/{acme}/users/{odd}").status_code == 404


def test_attribute_values_and_identifiers_are_escaped(client: httpx.Client, site: Site) -> None:
    acme = site.acme
    acme.load_users([{"external_id": "<b>x</b>", "device_ids": ["d&<i>"]}])
    track(
        acme,
        [
            {
                "external_id": "<b>x</b>",
                "bio": "<script>alert(1)</script> & <em>",
                "nested": {"html": "<img src=x onerror=alert(1)>"},
                "list": ["<u>one</u>"],
            }
        ],
    )
    admin.create_segment(site.store, "Identified", workspace=acme.workspace, external_id=True)
    campaigns.create_campaign(
        site.store,
        "Bio <i>news</i>",
        workspace=acme.workspace,
        channel="email",
        message="About you: {{${bio}}}",
        segments=["Identified"],
    )
    campaigns.launch_campaign(site.store, "Bio <i>news</i>", workspace=acme.workspace)
    user = braze_id(acme, "<b>x</b>")
    page = client.get(f"/w/{acme.workspace}/users/{user}").text
    assert "About you: &lt;script&gt;" in page and "Bio &lt;i&gt;news&lt;/i&gt;" in page
    assert "<script>alert(1)</script>" not in page and "<img src=x" not in page
    assert "<u>one</u>" not in page and "<b>x</b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;em&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "&lt;u&gt;one&lt;/u&gt;" in page and "d&amp;&lt;i&gt;" in page
    found = client.get(
        f"/w/{acme.workspace}/users", params={"by": "device_id", "device_id": "d&<i>"}
    ).text
    assert "&lt;b&gt;x&lt;/b&gt;" in found and "<b>x</b>" not in found


def test_a_search_missing_its_identifier_says_what_to_type(
    client: httpx.Client, site: Site
) -> None:
    path = f"/w/{site.acme.workspace}/users"
    blank = client.get(path, params={"by": "external_id", "external_id": "  "})
    assert blank.status_code == 400
    assert "Type the external id." in blank.text and 'aria-invalid="true"' in blank.text
    half = client.get(path, params={"by": "alias", "alias_label": "email", "alias_name": ""})
    assert half.status_code == 400
    assert "Type the alias name." in half.text and "Type the alias label" not in half.text
    assert 'value="email"' in half.text  # what was typed stays in the form
    odd = client.get(path, params={"by": "email", "external_id": "x"})
    assert odd.status_code == 400 and "Choose External ID, User alias or Device ID." in odd.text
    assert "Traceback" not in blank.text + half.text + odd.text


def test_a_canvas_and_an_anonymous_user_read_plainly(client: httpx.Client, people: Site) -> None:
    acme = people.acme
    campaigns.create_canvas(
        people.store,
        "VIP journey",
        workspace=acme.workspace,
        steps=[
            campaigns.Step("Welcome", "email", "Welcome, {{${first_name}}}!"),
            campaigns.Step("Nudge", "push", "Your {{${plan}}} perks await"),
        ],
        segments=["VIP segment"],
    )
    campaigns.launch_campaign(people.store, "VIP journey", workspace=acme.workspace, kind="canvas")
    page = client.get(f"/w/{acme.workspace}/users/{braze_id(acme, 'ada-42')}").text
    rows = re.findall(r"<tr>\s*<td class=\"when\">.*?</tr>", page, flags=re.S)
    assert len(rows) == 3
    assert "VIP journey" in rows[0] and "step 1: Welcome" in rows[0]
    assert "Welcome, Ada!" in rows[0]
    assert "step 2: Nudge" in rows[1] and "Push" in rows[1] and "Your gold perks await" in rows[1]
    assert "Welcome back" in rows[2] and "Canvas" not in rows[2]
    [anonymous] = lookup.find_users(people.store, acme.workspace, device_id="kiosk-3")
    seen = client.get(f"/w/{acme.workspace}/users/{anonymous.braze_id}")
    assert seen.status_code == 200
    text = seen.text
    assert f"Anonymous user {anonymous.braze_id}</h1>" in text and "kiosk-3" in text
    assert "none (an anonymous user, known by alias or device)" in text
    assert "No custom attributes." in text
    assert "In no cohort" in text and "In no segment" in text
    assert "No message yet: none of the recent launches reached this user." in text
