"""Campaigns and Canvases in the dashboard: Target Audiences, Launch / Send at, the outbox.

A marketer's path runs in real Chromium against the real service (create a
campaign targeting a segment, watch the reachable count, launch, read the
outbox; a Canvas with an added step). Everything a browser does not add to
(the matrix of mistakes, scheduling, isolation, CSRF) runs over plain HTTP.
The users come from the bulk load and their attributes from ``/users/track``
with the workspace's REST API key, as a customer's would.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from playwright.sync_api import expect

from cohortsync.braze import admin, campaigns
from cohortsync.braze.campaigns import Step
from cohortsync.braze.sandbox import Sandbox
from cohortsync.braze.segments import attribute_filter
from support import wait_for
from support.browser import screenshot

from .conftest import BO, Site, form_token, log_in_client

PROFILES: dict[str, dict[str, Any]] = {
    "ada": {"first_name": "Ada", "plan": "gold"},
    "bob": {"first_name": "Bob", "plan": "silver"},
    "cy": {"plan": "gold"},
}
MESSAGE = "Hi {{${first_name} | default: 'there'}}, your {{${plan}}} plan renews soon."


def track(sandbox: Sandbox, profiles: dict[str, dict[str, Any]]) -> None:
    """Set the profiles' attributes through ``/users/track``, as a customer's backend does."""
    body = {"attributes": [{"external_id": who, **attrs} for who, attrs in profiles.items()]}
    answer = httpx.post(
        f"{sandbox.base_url}/users/track",
        json=body,
        headers={"Authorization": f"Bearer {sandbox.rest_api_key}"},
        timeout=30,
    )
    assert answer.status_code in (200, 201), answer.text


def seed(sandbox: Sandbox, profiles: dict[str, dict[str, Any]] = PROFILES) -> dict[str, str]:
    """The users, their attributes and three segments; the segments' ids by name."""
    sandbox.load_users([{"external_id": who} for who in profiles])
    track(sandbox, profiles)
    store, ws = sandbox.store, sandbox.workspace
    made = [
        admin.create_segment(store, "Identified users", workspace=ws, external_id=True),
        admin.create_segment(
            store, "Gold plan", workspace=ws, filter=attribute_filter("plan", "equals", "gold")
        ),
        admin.create_segment(store, "Anonymous users", workspace=ws, external_id=False),
    ]
    return {segment["name"]: segment["id"] for segment in made}


def area(site: Site, rest: str = "") -> str:
    return f"/w/{site.acme.workspace}{rest}"


def saved(site: Site, kind: str = "campaign", sandbox: Sandbox | None = None) -> list[Any]:
    sandbox = sandbox or site.acme
    return campaigns.list_campaigns(site.store, workspace=sandbox.workspace, kind=kind)


def campaign_form(token: str, **values: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "csrf_token": token,
        "name": "Renewal",
        "channel": "email",
        "message": MESSAGE,
        "action": "save",
    }
    data.update(values)
    return data


# ---------------------------------------------------------------- in the browser


def test_a_campaign_from_the_form_to_its_outbox(dashboard_page: Any, site: Site) -> None:
    page = dashboard_page
    page.goto(site.acme_page("/campaigns"))
    assert page.get_by_text("Segments first.").is_visible()
    screenshot(page, "dashboard-campaigns-empty")
    extra = {f"user{n:02}": {"plan": "trial"} for n in range(30)}  # a second outbox page
    seed(site.acme, {**PROFILES, **extra})
    page.reload()
    assert page.get_by_text("No campaigns yet.").is_visible()
    page.get_by_role("link", name="Create campaign").first.click()
    page.get_by_label("Message").fill("Hi {{first_name}}")
    page.get_by_role("button", name="Save campaign").click()
    assert page.inner_text("#e-name") == "Give the campaign a name."
    assert "Choose at least one segment" in page.inner_text("#e-include")
    assert "'{{first_name}}'" in page.inner_text("#e-message")
    assert page.input_value("#f-message") == "Hi {{first_name}}"  # kept as typed
    screenshot(page, "dashboard-campaign-form-errors")
    # Each error goes as it is corrected, before the form is sent again.
    page.get_by_label("Campaign name").fill("Renewal reminder")
    expect(page.locator("#e-name")).to_have_count(0)
    page.get_by_label("Channel").select_option("push")
    page.get_by_label("Message").fill("Hi {{${first_name}")
    expect(page.locator("#e-message")).to_contain_text("'{{${first_name}'")
    page.get_by_label("Message").fill(MESSAGE)
    expect(page.locator("#e-message")).to_have_count(0)
    assert "{{${first_name}}}" in page.inner_text("#h-message")
    page.get_by_label(re.compile("^Identified users")).first.check()
    expect(page.locator("#e-include")).to_have_count(0)
    expect(page.get_by_text("The campaign was not saved.")).to_be_hidden()
    page.wait_for_selector("#reachable-count")
    assert page.inner_text("#reachable-count") == "33"
    page.locator("#exclude-2").check()  # except the Gold plan: ada, cy
    expect(page.locator("#reachable-count")).to_have_text("31")
    page.locator("#exclude-2").uncheck()
    expect(page.locator("#reachable-count")).to_have_text("33")
    screenshot(page, "dashboard-campaign-form")
    page.get_by_role("button", name="Save campaign").click()
    page.wait_for_url(re.compile(r".*/campaigns/[0-9a-f-]{36}$"))
    assert page.inner_text("#reachable-now") == "33"
    assert page.get_by_text("Draft", exact=True).first.is_visible()
    screenshot(page, "dashboard-campaign-page")
    page.get_by_role("link", name="Launch now").click()
    assert page.get_by_role("heading", name="Launch Renewal reminder now?").is_visible()
    assert "33 users" in page.inner_text("main")
    screenshot(page, "dashboard-campaign-launch")
    page.get_by_role("button", name="Launch now").click()
    page.wait_for_url(re.compile(r".*\?launched=\d+$"))
    assert "Launched: 33 messages written to the outbox." in page.inner_text("[role=status]")
    outbox = page.inner_text("table.outbox")
    assert "Hi Ada, your gold plan renews soon." in outbox
    assert "Hi Bob, your silver plan renews soon." in outbox
    assert "Hi there, your gold plan renews soon." in outbox  # cy has no first name
    assert "Showing 1 to 25 of 33 messages" in page.inner_text("#outbox")
    assert page.get_by_role("link", name="Edit campaign").count() == 0
    screenshot(page, "dashboard-campaign-outbox")
    page.get_by_role("link", name="Next page").click()
    assert "Showing 26 to 33 of 33 messages" in page.inner_text("#outbox")
    assert "Hi there, your trial plan renews soon." in page.inner_text("table.outbox")
    page.get_by_role("link", name="Campaigns", exact=True).first.click()
    row = page.locator("table.campaigns tbody tr").first
    assert "Renewal reminder" in row.inner_text() and "Sent" in row.inner_text()
    assert "Push" in row.inner_text() and "33" in row.inner_text()
    screenshot(page, "dashboard-campaigns-list")


def test_a_canvas_with_an_added_step_reaches_fewer_at_the_narrowed_step(
    dashboard_page: Any, site: Site
) -> None:
    page = dashboard_page
    seed(site.acme)
    page.goto(site.acme_page("/canvases"))
    page.get_by_role("link", name="Create Canvas").first.click()
    page.get_by_label("Canvas name").fill("Onboarding")
    page.get_by_label("Step name").fill("Welcome")
    page.get_by_label("Message").fill("Welcome {{${first_name} | default: 'friend'}}!")
    with page.expect_response(lambda r: r.request.headers.get("hx-request") == "true") as add:
        page.get_by_role("button", name="Add step").click()
    assert add.value.status == 200  # re-rendered by htmx, not a page load
    page.wait_for_selector("#f-step-1-name")
    assert page.input_value("#f-step-0-name") == "Welcome"  # kept while re-rendered
    page.fill("#f-step-1-name", "Gold perks")
    page.select_option("#f-step-1-channel", "email")
    page.fill("#f-step-1-message", "Your gold perks, {{${first_name} | default: 'friend'}}")
    page.select_option("#f-step-1-segment", label="Gold plan")
    page.get_by_label(re.compile("^Identified users")).first.check()
    page.wait_for_selector("#reachable-count")
    assert page.inner_text("#reachable-count") == "3"
    screenshot(page, "dashboard-canvas-form")
    page.get_by_role("button", name="Save Canvas").click()
    page.wait_for_url(re.compile(r".*/canvases/[0-9a-f-]{36}$"))
    assert page.inner_text("td[data-step='1']") == "3"
    assert page.inner_text("td[data-step='2']") == "2"
    page.get_by_label("Send at (UTC)").fill("2099-01-01T09:00")
    page.get_by_role("button", name="Schedule").click()
    assert "Scheduled for 2099-01-01 09:00 UTC." in page.inner_text("[role=status]")
    screenshot(page, "dashboard-canvas-scheduled")
    page.get_by_role("link", name="Launch now").click()
    assert "It was scheduled for 2099-01-01 09:00 UTC" in page.inner_text("main")
    page.get_by_role("button", name="Launch now").click()
    assert "Launched: 5 messages" in page.inner_text("[role=status]")
    assert "Your gold perks, friend" in page.inner_text("table.outbox")  # cy
    screenshot(page, "dashboard-canvas-page")
    page.get_by_role("link", name="Canvases", exact=True).first.click()
    row = page.locator("table.campaigns tbody tr").first
    assert "Onboarding" in row.inner_text() and "2 steps" in row.inner_text()
    screenshot(page, "dashboard-canvases-list")


# ---------------------------------------------------------------- over HTTP


def test_a_canvas_of_two_steps_without_javascript(client: httpx.Client, site: Site) -> None:
    ids = seed(site.acme)
    token = form_token(client, area(site, "/canvases/new"))
    step0 = {"step-0-name": "Hello", "step-0-channel": "push", "step-0-message": "Hi!"}
    added = client.post(
        area(site, "/canvases/new"),
        data={"csrf_token": token, "name": "Two", "step-count": "1", **step0,
              "include": ids["Identified users"], "action": "add-step"},
    )  # fmt: skip
    assert added.status_code == 200
    assert 'name="step-1-name"' in added.text and 'value="Hello"' in added.text
    assert saved(site, "canvas") == []  # adding a step saves nothing
    full = client.post(
        area(site, "/canvases/new"),
        data={"csrf_token": token, "name": "Long", "step-count": "25", "action": "add-step"},
    )
    assert full.text.count('name="step-19-name"') == 1 and 'name="step-20-name"' not in full.text
    assert "A Canvas has at most 20 steps here." in full.text
    step1 = {
        "step-1-name": "Gold",
        "step-1-channel": "webhook",
        "step-1-message": "{{${plan}}}",
        "step-1-segment": ids["Gold plan"],
    }
    made = client.post(
        area(site, "/canvases/new"),
        data={"csrf_token": token, "name": "Two", "step-count": "2", **step0, **step1,
              "include": ids["Identified users"], "action": "save"},
    )  # fmt: skip
    assert made.status_code == 200, made.text[:500]
    [canvas] = saved(site, "canvas")
    assert [(s["name"], s["channel"]) for s in canvas["steps"]] == [
        ("Hello", "push"),
        ("Gold", "webhook"),
    ]
    cells = re.findall(r'data-step="(\d)">([\d,]+)<', made.text)
    assert cells == [("1", "3"), ("2", "2")]
    edit = client.get(area(site, f"/canvases/{canvas['id']}/edit"))
    assert edit.status_code == 200
    assert 'value="Hello"' in edit.text and 'value="Gold"' in edit.text
    assert re.search(rf'<option value="{ids["Gold plan"]}" selected>Gold plan</option>', edit.text)
    removed = client.post(
        area(site, f"/canvases/{canvas['id']}/edit"),
        data={"csrf_token": token, "name": "Two", "step-count": "2", **step0, **step1,
              "include": ids["Identified users"], "action": "remove-step-0"},
    )  # fmt: skip
    assert removed.status_code == 200
    assert 'value="Gold"' in removed.text and 'value="Hello"' not in removed.text
    assert len(campaigns.get_campaign(site.store, canvas["id"], workspace=site.acme.workspace,
                                      kind="canvas")["steps"]) == 2  # fmt: skip


def test_the_form_checks_a_field_as_it_is_typed(client: httpx.Client, site: Site) -> None:
    ids = seed(site.acme)
    taken = campaigns.create_campaign(
        site.store, "Taken", workspace=site.acme.workspace, channel="email",
        message="x", segments=[ids["Gold plan"]],
    )  # fmt: skip
    cases = [
        ("/campaigns/check?name=", "Give the campaign a name."),
        ("/campaigns/check?name=Taken", "A campaign named &#39;Taken&#39; exists already"),
        (f"/campaigns/check?campaign={taken['id']}&name=Taken", ""),  # its own name
        ("/campaigns/check?name=Fresh", ""),
        ("/campaigns/check?message=Hi+%7B%7Bname%7D%7D", "cannot render at character 4"),
        ("/campaigns/check?message=Hi+%7B%7B%24%7Bname%7D%7D%7D", ""),
        ("/canvases/check?name=Taken", ""),  # a campaign's name is free for a Canvas
        ("/canvases/check?step-3-name=+", "Name the step."),
        ("/canvases/check?step-0-message=%7B%25+if+%25%7D", "cannot render at character 1"),
    ]
    for path, said in cases:
        answer = client.get(area(site, path))
        assert answer.status_code == 200
        assert (said in answer.text) if said else answer.text == "", (path, answer.text)
    assert [c["name"] for c in saved(site)] == ["Taken"]


def test_send_at_schedules_in_utc_and_can_be_cancelled(client: httpx.Client, site: Site) -> None:
    ids = seed(site.acme)
    token = form_token(client, area(site, "/campaigns/new"))
    client.post(
        area(site, "/campaigns/new"), data=campaign_form(token, include=ids["Identified users"])
    )
    [campaign] = saved(site)
    here = area(site, f"/campaigns/{campaign['id']}")
    when = (datetime.now(UTC) + timedelta(days=3)).replace(second=0, microsecond=0)
    typed = when.strftime("%Y-%m-%dT%H:%M")
    done = client.post(
        here + "/schedule", data={"csrf_token": token, "send_at": typed, "action": "schedule"}
    )
    assert done.status_code == 200
    shown = when.strftime("%Y-%m-%d %H:%M UTC")
    assert f"Scheduled for {shown}." in done.text
    assert f'value="{typed}"' in done.text
    stored = campaigns.get_campaign(site.store, campaign["id"], workspace=site.acme.workspace)
    assert stored["status"] == "scheduled"
    assert datetime.fromisoformat(stored["send_at"]) == when
    listed = client.get(area(site, "/campaigns")).text
    assert "Scheduled" in listed and shown in listed
    for bad, said in [
        ("", "Choose a date and time to send at"),
        ("tomorrow", "Cannot read the time"),
        ("2001-01-01T09:00", "2001-01-01 09:00 UTC has passed"),
    ]:
        refused = client.post(
            here + "/schedule", data={"csrf_token": token, "send_at": bad, "action": "schedule"}
        )
        assert refused.status_code == 400 and said in refused.text, bad
        again = campaigns.get_campaign(site.store, campaign["id"], workspace=site.acme.workspace)
        assert again["send_at"] == stored["send_at"]
    cancelled = client.post(
        here + "/schedule", data={"csrf_token": token, "send_at": "", "action": "unschedule"}
    )
    assert "The schedule was cancelled." in cancelled.text
    assert campaigns.get_campaign(site.store, campaign["id"], workspace=site.acme.workspace)[
        "status"
    ] == "draft"  # fmt: skip


def test_the_service_launches_a_campaign_at_its_send_time(client: httpx.Client, site: Site) -> None:
    ids = seed(site.acme)
    token = form_token(client, area(site, "/campaigns/new"))
    client.post(
        area(site, "/campaigns/new"),
        data=campaign_form(token, name="Soon", include=ids["Gold plan"]),
    )
    [campaign] = saved(site)
    here = area(site, f"/campaigns/{campaign['id']}")
    soon = (datetime.now(UTC) + timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%S")
    done = client.post(
        here + "/schedule", data={"csrf_token": token, "send_at": soon, "action": "schedule"}
    )
    assert done.status_code == 200 and "Scheduled for" in done.text
    wait_for(lambda: saved(site)[0]["status"] == "sent", what="the scheduled launch")
    page = client.get(here).text
    assert "Sent at its scheduled time" in page
    assert "Hi Ada, your gold plan renews soon." in page
    assert "Hi there, your gold plan renews soon." in page  # cy
    assert "2 messages" in page


@pytest.mark.parametrize(
    ("change", "field", "said"),
    [
        ({"name": "  "}, "name", "Give the campaign a name."),
        ({"include": []}, "include", "Choose at least one segment to include"),
        ({"message": "Hi {{first_name}}"}, "message", "cannot render at character 4"),
        ({"message": ""}, "message", "The message is empty"),
        ({"channel": "sms"}, "channel", "Choose email, push or webhook."),
        ({"name": "Taken"}, "name", "Campaign &#39;Taken&#39; exists already"),
    ],
)
def test_a_mistake_is_shown_under_its_field_and_nothing_is_saved(
    client: httpx.Client, site: Site, change: dict[str, Any], field: str, said: str
) -> None:
    ids = seed(site.acme)
    campaigns.create_campaign(
        site.store, "Taken", workspace=site.acme.workspace, channel="email",
        message="x", segments=[ids["Gold plan"]],
    )  # fmt: skip
    token = form_token(client, area(site, "/campaigns/new"))
    data = campaign_form(
        token, name="Typed name", include=[ids["Identified users"]], exclude=[ids["Gold plan"]]
    )
    data.update(change)
    answer = client.post(area(site, "/campaigns/new"), data=data)
    assert answer.status_code == 400
    error = re.search(rf'<p class="error" id="e-{field}">([^<]*)</p>', answer.text)
    assert error and said in error.group(1), answer.text[:3000]
    assert "The campaign was not saved." in answer.text
    # Kept as typed.
    if "message" not in change:
        assert MESSAGE.replace("'", "&#39;") in answer.text
    if "name" not in change:
        assert 'value="Typed name"' in answer.text
    if "include" not in change:
        assert re.search(rf'name="include" value="{ids["Identified users"]}" checked', answer.text)
    assert re.search(rf'name="exclude" value="{ids["Gold plan"]}" checked', answer.text)
    assert [c["name"] for c in saved(site)] == ["Taken"]


def test_editing_a_draft_and_a_launch_to_nobody(client: httpx.Client, site: Site) -> None:
    ids = seed(site.acme)
    token = form_token(client, area(site, "/campaigns/new"))
    client.post(
        area(site, "/campaigns/new"),
        data=campaign_form(token, name="Nobody", include=ids["Anonymous users"]),
    )
    [campaign] = saved(site)
    here = area(site, f"/campaigns/{campaign['id']}")
    form = client.get(here + "/edit")
    assert form.status_code == 200 and 'value="Nobody"' in form.text
    assert "No user is in this audience now" in form.text
    bad = client.post(
        here + "/edit",
        data=campaign_form(
            token, name="Nobody", message="{% if %}", include=ids["Anonymous users"]
        ),
    )
    assert bad.status_code == 400
    assert saved(site)[0]["steps"][0]["message"] == MESSAGE
    edited = client.post(
        here + "/edit",
        data=campaign_form(token, name="Nobody at all", include=ids["Anonymous users"]),
    )
    assert edited.status_code == 200 and "Nobody at all" in edited.text
    assert "No user is reachable now." in client.get(here + "/launch").text
    launched = client.post(here + "/launch", data={"csrf_token": token})
    assert launched.status_code == 200
    assert "Launched, but 0 messages were written" in launched.text
    for query in ("?offset=abc", "?offset=-5", "?launched=x", "?scheduled=maybe"):
        odd = client.get(here + query)  # typed by hand: the page, not an error
        assert odd.status_code == 200 and "Outbox" in odd.text, query
    assert saved(site)[0]["status"] == "sent"
    # Sent once: no second launch, no change.
    again = client.post(here + "/launch", data={"csrf_token": token})
    assert again.status_code == 400 and "was sent; it cannot be launched again" in again.text
    assert client.get(here + "/edit").status_code == 400
    assert len(saved(site)[0]["launches"]) == 1


def test_nothing_of_globex_is_reached_from_acme(client: httpx.Client, site: Site) -> None:
    """Every route of the area under globex's path is 404 for ana; globex's campaign,
    Canvas and segment ids in acme's pages and forms are unknown, and nothing changes."""
    from cohortsync.braze.dashboard.routes.campaigns import router

    acme_ids = seed(site.acme)
    globex_ids = seed(site.globex)
    globex = site.globex.workspace
    theirs = {
        "campaigns": campaigns.create_campaign(
            site.store, "Their campaign", workspace=globex, channel="email",
            message=MESSAGE, segments=[globex_ids["Identified users"]],
        ),
        "canvases": campaigns.create_canvas(
            site.store, "Their Canvas", workspace=globex,
            steps=[Step("one", "push", "hi")], segments=[globex_ids["Identified users"]],
        ),
    }  # fmt: skip
    token = form_token(client, area(site, "/campaigns/new"))
    posted = campaign_form(token, include=acme_ids["Gold plan"], send_at="2099-01-01T09:00")
    routes = [
        (route.path, method)
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods or ()
    ]
    assert len(routes) == 22
    for path, method in routes:
        kind = path.split("/")[3]
        their_id = theirs[kind]["id"]
        for workspace_id in (globex, site.acme.workspace):
            url = path.replace("{workspace_id}", str(workspace_id))
            url = url.replace("{campaign_id}", their_id)
            if workspace_id != globex and their_id not in url:
                continue  # acme's own list and forms: below, with globex's segment ids
            answer = client.request(method, url, data=posted if method == "POST" else None)
            assert answer.status_code == 404, (method, url, answer.status_code)
            assert "Their" not in answer.text
    # Globex's segments in acme's forms and live count.
    for include, exclude in [
        (globex_ids["Gold plan"], acme_ids["Anonymous users"]),
        (acme_ids["Gold plan"], globex_ids["Anonymous users"]),
    ]:
        refused = client.post(
            area(site, "/campaigns/new"),
            data=campaign_form(token, include=include, exclude=exclude),
        )
        assert refused.status_code == 404 and "unknown segment" in refused.text
        count = client.get(area(site, f"/campaigns/audience?include={include}&exclude={exclude}"))
        assert count.status_code == 404
    narrowed = client.post(
        area(site, "/canvases/new"),
        data={"csrf_token": token, "name": "N", "step-count": "1", "step-0-name": "s",
              "step-0-channel": "push", "step-0-message": "m",
              "step-0-segment": globex_ids["Gold plan"], "include": acme_ids["Gold plan"]},
    )  # fmt: skip
    assert narrowed.status_code == 404
    assert saved(site) == [] and saved(site, "canvas") == []
    for kind in ("campaign", "canvas"):
        [untouched] = saved(site, kind, site.globex)
        assert untouched["name"].startswith("Their")
        assert untouched["status"] == "draft" and untouched["launches"] == []
        assert untouched["send_at"] is None
    with log_in_client(site, BO) as bo:
        listed = bo.get(f"/w/{globex}/campaigns")
        assert listed.status_code == 200 and "Their campaign" in listed.text
    assert "Their" not in client.get(area(site, "/campaigns")).text


def test_a_post_without_its_csrf_token_launches_and_saves_nothing(
    client: httpx.Client, site: Site
) -> None:
    ids = seed(site.acme)
    made = campaigns.create_campaign(
        site.store, "Guarded", workspace=site.acme.workspace, channel="email",
        message=MESSAGE, segments=[ids["Identified users"]],
    )  # fmt: skip
    here = area(site, f"/campaigns/{made['id']}")
    assert client.post(here + "/launch").status_code == 403
    assert client.post(here + "/launch", data={"csrf_token": "forged"}).status_code == 403
    no_token = campaign_form("", name="Sneaky", include=ids["Gold plan"])
    del no_token["csrf_token"]
    assert client.post(area(site, "/campaigns/new"), data=no_token).status_code == 403
    assert client.post(here + "/edit", data=no_token).status_code == 403
    when = {"send_at": "2099-01-01T09:00", "action": "schedule"}
    assert client.post(here + "/schedule", data=when).status_code == 403
    [still] = saved(site)
    assert still["name"] == "Guarded" and still["status"] == "draft" and still["launches"] == []
