"""Segments in the dashboard: the list, the builder with its live count, a segment's page.

One browser test builds a segment as a marketer does (the Treasure Data
Cohorts filter chosen from the list, the Reachable users count following
each change, save, the members); the rest goes over plain HTTP: the counts
of the builder against the library's, what a mistake in the form answers,
and that nothing of globex is reachable from ana's session.

The world: acme's users u1..u6 and one anonymous device; the partner sent
"VIP buyers" (u1, u2, u3) and "Lapsed customers" (u3, u4 and the device);
/users/track gave u1, u2 and u5 a plan and visits. Globex has its own
cohort "Globex buyers".
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
import requests

from braze.support import PartnerClient
from cohortsync.braze import admin, segments
from cohortsync.braze.campaigns import create_campaign
from cohortsync.braze.dashboard import segment_form
from cohortsync.braze.sandbox import Sandbox
from support.browser import screenshot

from .conftest import BO, Site, form_token, log_in_client

VIP = "vip-buyers"
LAPSED = "lapsed"
GLOBEX_COHORT = "globex-buyers"
ATTRIBUTES = {
    "u1": {"plan": "gold", "visits": 10},
    "u2": {"plan": "silver", "visits": 3},
    "u5": {"plan": "gold", "visits": 7},
}


def send_cohort(sandbox: Sandbox, cohort_id: str, name: str, **members: Any) -> None:
    """Define the cohort and add its members through the partner API, as an exporter does."""
    partner = PartnerClient(sandbox)
    answer = partner.define(cohort_id, name)
    assert answer.status_code == 200, answer.text
    partner.add(cohort_id, **members)


def track(sandbox: Sandbox, profiles: dict[str, dict[str, Any]]) -> None:
    """Set custom attributes through the REST ``/users/track`` endpoint."""
    answer = requests.post(
        f"{sandbox.base_url}/users/track",
        json={"attributes": [{"external_id": who, **attrs} for who, attrs in profiles.items()]},
        headers={"Authorization": f"Bearer {sandbox.rest_api_key}"},
        timeout=30,
    )
    assert answer.status_code in (200, 201), answer.text


@pytest.fixture
def world(site: Site) -> Site:
    site.acme.load_users(
        [{"external_id": f"u{n}"} for n in range(1, 7)] + [{"device_ids": ["dev-anon"]}]
    )
    send_cohort(site.acme, VIP, "VIP buyers", user_ids=["u1", "u2", "u3"])
    send_cohort(
        site.acme, LAPSED, "Lapsed customers", user_ids=["u3", "u4"], device_ids=["dev-anon"]
    )
    track(site.acme, ATTRIBUTES)
    site.globex.load_users([{"external_id": "g1"}, {"external_id": "g2"}])
    send_cohort(site.globex, GLOBEX_COHORT, "Globex buyers", user_ids=["g1", "g2"])
    return site


def acme_path(site: Site, rest: str = "") -> str:
    return f"/w/{site.acme.workspace}/segments{rest}"


def globex_path(site: Site, rest: str = "") -> str:
    return f"/w/{site.globex.workspace}/segments{rest}"


def cohort_row(cohort_id: str, *, includes: bool = True, row: str = "g0-r0") -> dict[str, str]:
    return {
        f"{row}-type": "cohort:treasuredata",
        f"{row}-includes": "includes" if includes else "excludes",
        f"{row}-cohort": cohort_id,
    }


def attribute_row(
    name: str, operator: str, value: str = "", value_type: str = "text", *, row: str = "g0-r0"
) -> dict[str, str]:
    return {
        f"{row}-type": "custom_attribute",
        f"{row}-name": name,
        f"{row}-operator": operator,
        f"{row}-value": value,
        f"{row}-value_type": value_type,
    }


def post(client: httpx.Client, site: Site, rest: str, fields: dict[str, str]) -> httpx.Response:
    token = form_token(client, acme_path(site, "/new"))
    return client.post(acme_path(site, rest), data={"csrf_token": token, **fields})


def reachable(answer: httpx.Response) -> int | None:
    """The count of a Reachable users partial; None when it shows a hint instead."""
    found = re.search(r'id="reachable-users">([\d,]+)<', answer.text)
    return int(found.group(1).replace(",", "")) if found else None


def saved_names(site: Site) -> list[str]:
    return [row["name"] for row in admin.list_segments(site.store, workspace=site.acme.workspace)]


# ---------------------------------------------------------------- in the browser


def test_a_marketer_builds_a_segment_on_a_treasure_data_cohort(
    world: Site, dashboard_page: Any
) -> None:
    from playwright.sync_api import expect

    page = dashboard_page
    page.goto(world.acme_page("/segments"))
    assert page.get_by_text("No segments yet.").is_visible()
    screenshot(page, "dashboard-segments-empty")

    page.get_by_role("link", name="Create segment").first.click()
    page.wait_for_url(world.acme_page("/segments/new"))
    count = page.locator("#live-count")
    assert "Choose a cohort from the list" in count.inner_text()
    filter_type = page.get_by_label("Filter 1: Filter")
    assert filter_type.input_value() == "cohort:treasuredata"
    assert filter_type.locator("option:checked").inner_text() == "Treasure Data Cohorts"
    cohorts = page.get_by_label("Filter 1: Cohort")
    assert cohorts.locator("option").all_inner_texts() == [
        "Choose a cohort",
        "Lapsed customers",
        "VIP buyers",
    ]
    cohorts.select_option(label="VIP buyers")
    expect(page.locator("#reachable-users")).to_have_text("3")

    page.get_by_role("button", name="Add filter").click()
    second = page.get_by_label("Filter 2: Cohort")
    second.wait_for()
    second.select_option(label="Lapsed customers")
    page.get_by_label("Users match").select_option("or")
    # VIP buyers or Lapsed customers: u1, u2, u3, u4 and the anonymous device.
    expect(page.locator("#reachable-users")).to_have_text("5")
    page.get_by_label("Segment name").fill("VIP or lapsed")
    screenshot(page, "dashboard-segment-builder")
    assert saved_names(world) == []  # counting saved nothing

    page.get_by_role("button", name="Save segment").click()
    page.wait_for_url(re.compile(r".*/segments/[0-9a-f-]{36}\?saved=1$"))
    assert page.get_by_role("heading", name="VIP or lapsed").is_visible()
    assert page.get_by_role("status").inner_text() == "Segment VIP or lapsed was saved."
    members = page.locator("table.segment-members tbody tr")
    assert members.count() == 5
    assert "u1" in members.first.inner_text()
    assert "Treasure Data Cohorts includes 'VIP buyers'" in page.inner_text("main")
    screenshot(page, "dashboard-segment-page")

    page.get_by_role("link", name="Segments").first.click()
    row = page.locator("table.segments tbody tr")
    assert row.count() == 1
    assert re.search(r"VIP or lapsed\s+5\s+", row.inner_text())
    screenshot(page, "dashboard-segments-list")

    # A campaign targets it: Delete asks first, then says why it cannot.
    create_campaign(
        world.store, "Win back", workspace=world.acme.workspace, channel="email",
        message="Hi", segments=["VIP or lapsed"],
    )  # fmt: skip
    page.get_by_role("link", name="VIP or lapsed").click()
    page.get_by_role("link", name="Delete").click()
    page.get_by_role("button", name="Delete segment").click()
    assert "It is the audience of campaign 'Win back'." in page.get_by_role("alert").inner_text()
    screenshot(page, "dashboard-segment-delete-refused")

    # A custom attribute compared with a word: the mistake is shown beside its filter.
    page.goto(world.acme_page("/segments/new"))
    page.get_by_label("Filter 1: Filter").select_option(label="Custom Attribute")
    page.get_by_label("Filter 1: Attribute name").fill("visits")
    page.get_by_label("Filter 1: Comparison").select_option("greater_than")
    page.get_by_text("Compared as a number.").wait_for()  # the row shows a number's field
    page.get_by_label("Filter 1: Value").fill("ten")
    expect(page.locator("#live-count")).to_contain_text("compares numbers")
    page.get_by_label("Segment name").fill("Frequent")
    page.get_by_role("button", name="Save segment").click()
    expect(page.locator("#e-g0-r0-")).to_contain_text("enter a number such as 10")
    assert page.get_by_label("Filter 1: Attribute name").input_value() == "visits"
    screenshot(page, "dashboard-segment-builder-errors")
    page.get_by_label("Filter 1: Value").fill("5")
    expect(page.locator("#reachable-users")).to_have_text("2")
    page.get_by_role("button", name="Save segment").click()
    page.wait_for_url(re.compile(r".*\?saved=1$"))
    assert "Custom Attribute 'visits' greater than 5" in page.inner_text("main")


def test_before_any_cohort_the_builder_says_why_it_lists_none(
    site: Site, client: httpx.Client
) -> None:
    listed = client.get(acme_path(site))
    assert "No segments yet." in listed.text
    assert "No partner has sent a cohort to acme yet" in listed.text
    builder = client.get(acme_path(site, "/new"))
    assert '<option value="" selected>Choose a filter</option>' in builder.text
    assert '<option value="cohort:treasuredata">Treasure Data Cohorts</option>' in builder.text
    assert "Filter 1: Choose a filter type, or remove this filter." in builder.text
    chosen = post(client, site, "/builder", {"g0-r0-type": "cohort:treasuredata"})
    assert "No cohort of this partner yet" in chosen.text
    assert "Filter 1: Choose a cohort from the list." in chosen.text
    anonymous = post(
        client, site, "/count", {"g0-r0-type": "external_id", "g0-r0-present": "absent"}
    )
    assert reachable(anonymous) == 0


# ---------------------------------------------------------------- counts over HTTP


@pytest.mark.parametrize(
    ("fields", "tree"),
    [
        (
            {**cohort_row(VIP), **cohort_row(LAPSED, row="g0-r1"), "g0-join": "or"},
            {
                "type": "or",
                "filters": [segments.cohort_filter(VIP), segments.cohort_filter(LAPSED)],
            },
        ),
        (
            attribute_row("plan", "equals", "gold"),
            segments.attribute_filter("plan", "equals", "gold"),
        ),
        (
            attribute_row("visits", "greater_than", "5"),
            segments.attribute_filter("visits", "greater_than", 5),
        ),
        (
            # (VIP buyers, excluding nobody) AND (plan exists OR anonymous)
            {
                **cohort_row(VIP),
                **attribute_row("plan", "exists", row="g1-r0"),
                "g1-r1-type": "external_id",
                "g1-r1-present": "absent",
                "g1-join": "or",
                "join": "and",
            },
            {
                "type": "and",
                "filters": [
                    segments.cohort_filter(VIP),
                    {
                        "type": "or",
                        "filters": [
                            segments.attribute_filter("plan", "exists"),
                            segments.external_id_filter(present=False),
                        ],
                    },
                ],
            },
        ),
    ],
    ids=["or-of-two-cohorts", "attribute-equals", "attribute-greater-than", "two-groups"],
)
def test_the_live_count_is_the_librarys_count(
    world: Site, client: httpx.Client, fields: dict[str, str], tree: dict[str, Any]
) -> None:
    expected = admin.segment_size(world.store, world.acme.workspace, tree)
    assert expected > 0
    answer = post(client, world, "/count", fields)
    assert answer.status_code == 200
    assert reachable(answer) == expected
    assert saved_names(world) == []
    saved = post(client, world, "/new", {"name": "Probe", **fields})
    assert saved.status_code == 200, saved.text[:500]
    assert (
        admin.segment_details(world.store, "Probe", workspace=world.acme.workspace)["filter"]
        == tree
    )


def test_an_incomplete_filter_gets_a_hint_not_an_error(world: Site, client: httpx.Client) -> None:
    answer = post(client, world, "/count", {**cohort_row(""), "join": "and"})
    assert answer.status_code == 200
    assert reachable(answer) is None
    assert "Filter 1: Choose a cohort from the list." in answer.text
    answer = post(client, world, "/count", attribute_row("visits", "less_than", "many"))
    assert "compares numbers: enter a number such as 10" in answer.text


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "Bad", **cohort_row("no-such-cohort")}, "no cohort &#39;no-such-cohort&#39;"),
        (
            {"name": "Bad", **attribute_row("visits", "greater_than", "ten")},
            "Greater than compares numbers: enter a number such as 10 or 2.5, not &#39;ten&#39;.",
        ),
        (
            {"name": "Bad", **attribute_row("vip", "equals", "yes", "boolean")},
            "Enter true or false for &#39;vip&#39;",
        ),
        (
            {"name": "Bad", **attribute_row('pl"an', "exists")},
            "holds a double quote, a backslash or a control character",
        ),
        ({"name": "Bad", "g0-r0-type": ""}, "Choose a filter type, or remove this filter."),
        ({"name": "  ", **cohort_row(VIP)}, "Enter a name for the segment"),
    ],
    ids=["unknown-cohort", "not-a-number", "not-a-boolean", "bad-name", "no-type", "no-name"],
)
def test_a_mistake_is_shown_inline_and_nothing_is_saved(
    world: Site, client: httpx.Client, fields: dict[str, str], message: str
) -> None:
    answer = post(client, world, "/new", fields)
    assert answer.status_code == 400
    assert message in answer.text
    assert 'class="alert error"' in answer.text
    # The form comes back as typed.
    if fields["name"].strip():
        assert f'value="{fields["name"]}"' in answer.text
    for key, value in fields.items():
        if key.endswith("-value") and value:
            assert f'name="{key}" type="text" value="{value}"' in answer.text
    assert saved_names(world) == []


def test_a_name_already_used_is_an_inline_error(world: Site, client: httpx.Client) -> None:
    admin.create_segment(world.store, "VIP", workspace=world.acme.workspace, includes_cohorts=[VIP])
    answer = post(client, world, "/new", {"name": "VIP", **cohort_row(LAPSED)})
    assert answer.status_code == 400
    assert "A segment named &#39;VIP&#39; exists already: pick another name." in answer.text
    assert 'value="VIP"' in answer.text
    assert saved_names(world) == ["VIP"]


# ---------------------------------------------------------------- without JavaScript


def test_add_and_remove_work_as_plain_submits(world: Site, client: httpx.Client) -> None:
    added = post(client, world, "/new", {"name": "Draft", **cohort_row(VIP), "action": "add-row:0"})
    assert added.status_code == 200
    assert 'name="g0-r1-type"' in added.text
    assert 'value="Draft"' in added.text
    grouped = post(
        client, world, "/new", {**cohort_row(VIP), **cohort_row(LAPSED, row="g0-r1"),
                                "action": "add-group"},
    )  # fmt: skip
    assert 'name="g1-r0-type"' in grouped.text and "Users match" in grouped.text
    removed = post(
        client, world, "/new",
        {**cohort_row(VIP), **cohort_row(LAPSED, row="g0-r1"), "action": "remove-row:0:0"},
    )  # fmt: skip
    assert 'name="g0-r1-type"' not in removed.text
    assert f'<option value="{LAPSED}" selected>' in removed.text
    switched = post(client, world, "/new", {"g0-r0-type": "custom_attribute", "action": "refresh"})
    assert 'name="g0-r0-operator"' in switched.text
    partial = post(client, world, "/builder", {**cohort_row(VIP), "action": "add-row:0"})
    assert partial.status_code == 200 and partial.text.lstrip().startswith('<div id="builder"')
    assert 'hx-swap-oob="innerHTML"' in partial.text
    assert saved_names(world) == []


# ---------------------------------------------------------------- editing and deleting


def test_edit_shows_the_saved_filter_and_replaces_it(world: Site, client: httpx.Client) -> None:
    tree = {
        "type": "and",
        "filters": [
            segments.cohort_filter(VIP),
            segments.attribute_filter("visits", "greater_than", 5),
            {
                "type": "or",
                "filters": [
                    segments.attribute_filter("plan", "equals", "gold"),
                    segments.cohort_filter(LAPSED, includes=False),
                ],
            },
        ],
    }
    made = admin.create_segment(world.store, "Keen", workspace=world.acme.workspace, filter=tree)
    choices = admin.cohort_choices(world.store, workspace=world.acme.workspace)
    builder = segment_form.from_tree(tree, choices)
    assert builder is not None
    with world.store.read() as conn:
        again = segment_form.check(conn, world.acme.workspace, builder, choices)
    assert again.tree == tree

    edit = client.get(acme_path(world, f"/{made['id']}/edit"))
    assert edit.status_code == 200
    assert f'<option value="{VIP}" selected>' in edit.text
    assert 'name="g0-r1-value" type="text" value="5"' in edit.text
    assert '<option value="excludes" selected>' in edit.text
    token = form_token(client, acme_path(world, f"/{made['id']}/edit"))
    answer = client.post(
        acme_path(world, f"/{made['id']}/edit"),
        data={"csrf_token": token, "name": "Gold VIPs", **cohort_row(VIP),
              **attribute_row("plan", "equals", "gold", row="g0-r1")},
    )  # fmt: skip
    assert answer.status_code == 200
    assert "Segment <strong>Gold VIPs</strong> was saved." in answer.text
    details = admin.segment_details(world.store, made["id"], workspace=world.acme.workspace)
    assert details["name"] == "Gold VIPs" and details["size"] == 1  # u1


def test_a_filter_nested_deeper_than_groups_is_named_not_flattened(
    world: Site, client: httpx.Client
) -> None:
    deep = {
        "type": "or",
        "filters": [
            segments.cohort_filter(LAPSED),
            {
                "type": "and",
                "filters": [
                    segments.cohort_filter(VIP),
                    {"type": "or", "filters": [segments.external_id_filter(present=False)]},
                ],
            },
        ],
    }
    made = admin.create_segment(world.store, "Deep", workspace=world.acme.workspace, filter=deep)
    edit = client.get(acme_path(world, f"/{made['id']}/edit"))
    assert edit.status_code == 200
    assert "nests groups deeper than the builder shows" in edit.text
    assert (
        admin.segment_details(world.store, "Deep", workspace=world.acme.workspace)["filter"] == deep
    )


def test_each_member_links_to_the_users_profile(world: Site, client: httpx.Client) -> None:
    made = admin.create_segment(
        world.store, "Lapsed", workspace=world.acme.workspace, includes_cohorts=[LAPSED]
    )
    page = client.get(acme_path(world, f"/{made['id']}"))
    profiles = re.findall(rf'href="/dashboard/w/{world.acme.workspace}/users/(\d+)"', page.text)
    assert len(profiles) == 3
    for user_id in profiles:
        assert client.get(f"/w/{world.acme.workspace}/users/{user_id}").status_code == 200
    assert "anonymous user" in page.text


def test_delete_asks_first_and_a_campaigns_segment_is_refused(
    world: Site, client: httpx.Client
) -> None:
    kept = admin.create_segment(
        world.store, "Targeted", workspace=world.acme.workspace, includes_cohorts=[VIP]
    )
    create_campaign(
        world.store, "Welcome", workspace=world.acme.workspace, channel="email",
        message="Hi", segments=["Targeted"],
    )  # fmt: skip
    gone = admin.create_segment(
        world.store, "Old", workspace=world.acme.workspace, includes_cohorts=[LAPSED]
    )
    ask = client.get(acme_path(world, f"/{gone['id']}/delete"))
    assert ask.status_code == 200 and "Delete segment Old?" in ask.text
    token = form_token(client, acme_path(world, f"/{gone['id']}/delete"))
    deleted = client.post(acme_path(world, f"/{gone['id']}/delete"), data={"csrf_token": token})
    assert deleted.status_code == 200
    assert "Segment <strong>Old</strong> was deleted." in deleted.text
    refused = client.post(acme_path(world, f"/{kept['id']}/delete"), data={"csrf_token": token})
    assert refused.status_code == 409
    assert "It is the audience of campaign &#39;Welcome&#39;." in refused.text
    assert saved_names(world) == ["Targeted"]


def test_the_member_pages_page_by_offset(world: Site, client: httpx.Client) -> None:
    world.acme.load_users([{"external_id": f"many-{n:03}"} for n in range(120)])
    made = admin.create_segment(
        world.store, "Known", workspace=world.acme.workspace, external_id=True
    )
    first = client.get(acme_path(world, f"/{made['id']}"))
    assert "Showing 1 to 50 of 126 members" in first.text
    last = client.get(acme_path(world, f"/{made['id']}?offset=100"))
    assert "Showing 101 to 126 of 126 members" in last.text
    assert "Next page" not in last.text and "Previous page" in last.text
    typo = client.get(acme_path(world, f"/{made['id']}?offset=ten"))
    assert typo.status_code == 200 and "Showing 1 to 50 of 126 members" in typo.text


# ---------------------------------------------------------------- isolation


def test_nothing_of_globex_is_reachable_from_acme(world: Site, client: httpx.Client) -> None:
    theirs = admin.create_segment(
        world.store, "Globex VIP", workspace=world.globex.workspace,
        includes_cohorts=[GLOBEX_COHORT],
    )  # fmt: skip
    token = form_token(client, acme_path(world, "/new"))
    for rest in ("", "/new", f"/{theirs['id']}", f"/{theirs['id']}/edit",
                 f"/{theirs['id']}/delete"):  # fmt: skip
        assert client.get(globex_path(world, rest)).status_code == 404, rest
    for rest in ("/new", "/builder", "/count", f"/{theirs['id']}/edit", f"/{theirs['id']}/delete"):
        fields = {"csrf_token": token, "name": "Taken", **cohort_row(GLOBEX_COHORT)}
        assert client.post(globex_path(world, rest), data=fields).status_code == 404, rest
    # Their segment's id under acme's path is unknown here.
    for rest in (f"/{theirs['id']}", f"/{theirs['id']}/edit", f"/{theirs['id']}/delete"):
        assert client.get(acme_path(world, rest)).status_code == 404, rest
    for rest in (f"/{theirs['id']}/edit", f"/{theirs['id']}/delete"):
        fields = {"csrf_token": token, "name": "Taken", **cohort_row(VIP)}
        assert client.post(acme_path(world, rest), data=fields).status_code == 404, rest
    # Their cohort's id in acme's builder is no cohort of acme.
    counted = client.post(
        acme_path(world, "/count"), data={"csrf_token": token, **cohort_row(GLOBEX_COHORT)}
    )
    assert reachable(counted) is None
    refused = client.post(
        acme_path(world, "/new"),
        data={"csrf_token": token, "name": "Stolen", **cohort_row(GLOBEX_COHORT)},
    )
    assert refused.status_code == 400
    assert "There is no cohort &#39;globex-buyers&#39; in this workspace" in refused.text
    assert "Globex buyers" not in client.get(acme_path(world, "/new")).text
    assert saved_names(world) == []
    globex = admin.segment_details(world.store, theirs["id"], workspace=world.globex.workspace)
    assert globex["name"] == "Globex VIP"
    with log_in_client(world, BO) as bo:
        assert "Globex VIP" in bo.get(globex_path(world)).text


def test_a_post_without_the_csrf_token_is_refused(world: Site, client: httpx.Client) -> None:
    made = admin.create_segment(
        world.store, "Kept", workspace=world.acme.workspace, includes_cohorts=[VIP]
    )
    fields = {"name": "Changed", **cohort_row(LAPSED)}
    for rest in ("/new", "/count", "/builder", f"/{made['id']}/edit", f"/{made['id']}/delete"):
        answer = client.post(acme_path(world, rest), data=fields)
        assert answer.status_code == 403, rest
        assert "This form was refused" in answer.text
    details = admin.segment_details(world.store, made["id"], workspace=world.acme.workspace)
    assert details["name"] == "Kept" and details["filter"] == segments.cohort_filter(VIP)
    assert saved_names(world) == ["Kept"]
