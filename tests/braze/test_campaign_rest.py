"""Braze's REST export endpoints for campaigns and Canvases, through the real server.

Shapes from Braze's documentation:
https://www.braze.com/docs/api/endpoints/export/campaigns/get_campaigns/ ,
https://www.braze.com/docs/api/endpoints/export/campaigns/get_campaign_details/ ,
https://www.braze.com/docs/api/endpoints/export/canvas/get_canvases/ and
https://www.braze.com/docs/api/endpoints/export/canvas/get_canvas_details/ .
"""

from __future__ import annotations

from typing import Any

import requests

from cohortsync.braze import admin, campaigns
from cohortsync.braze.campaigns import Step
from cohortsync.braze.sandbox import Sandbox
from cohortsync.braze.store.tables import utc_now
from support import wait_for

from .support import PartnerClient


def get(sandbox: Sandbox, path: str, key: str | None = None, **params: Any) -> requests.Response:
    return requests.get(
        f"{sandbox.base_url}{path}",
        params=params,
        headers={"Authorization": f"Bearer {key or sandbox.rest_api_key}"},
        timeout=30,
    )


def setup_segment(sandbox: Sandbox, partner: PartnerClient) -> None:
    sandbox.load_users([{"external_id": f"u{i}"} for i in range(3)])
    partner.add("vip", user_ids=["u0", "u1"])
    admin.create_segment(
        sandbox.store, "vip", workspace=sandbox.workspace, includes_cohorts=["vip"]
    )


def test_campaigns_list_pages_sorts_and_filters_by_last_edit(
    sandbox: Sandbox, partner: PartnerClient
) -> None:
    setup_segment(sandbox, partner)

    def create(number: int) -> dict[str, Any]:
        return campaigns.create_campaign(
            sandbox.store,
            f"c{number:03}",
            workspace=sandbox.workspace,
            channel="email",
            message="Hi",
            segments=["vip"],
        )

    made = [create(i) for i in range(100)]
    # Edit times are kept to the millisecond: c100 is made in a later one than c099, or
    # "edited after c099" and "newest first" could not single it out.
    wait_for(lambda: utc_now() > made[-1]["updated_at"], 5, what="the next millisecond")
    made.append(create(100))
    first = get(sandbox, "/campaigns/list")
    assert first.status_code == 200 and first.json()["message"] == "success"
    listed = first.json()["campaigns"]
    assert len(listed) == 100 and listed[0] == {
        "id": made[0]["id"],
        "last_edited": made[0]["updated_at"],
        "name": "c000",
        "is_api_campaign": False,
        "tags": [],
    }
    assert [c["name"] for c in get(sandbox, "/campaigns/list", page=1).json()["campaigns"]] == [
        "c100"
    ]
    newest = get(sandbox, "/campaigns/list", sort_direction="desc").json()["campaigns"]
    assert newest[0]["name"] == "c100"
    edited = get(
        sandbox, "/campaigns/list", **{"last_edit.time[gt]": made[99]["updated_at"][:23]}
    ).json()["campaigns"]
    assert [c["name"] for c in edited] == ["c100"] or "c100" in [c["name"] for c in edited]
    assert all(c["last_edited"] > made[99]["updated_at"] for c in edited)
    assert get(sandbox, "/campaigns/list", include_archived="true").status_code == 200
    for bad in (
        {"page": "-1"},
        {"sort_direction": "up"},
        {"include_archived": "maybe"},
        {"last_edit.time[gt]": "yesterday"},
    ):
        assert get(sandbox, "/campaigns/list", **bad).status_code == 400
    assert get(sandbox, "/canvas/list").json()["canvases"] == []  # campaigns are no Canvases
    assert get(sandbox, "/campaigns/list", key="wrong").status_code == 401


def test_campaign_and_canvas_details(sandbox: Sandbox, partner: PartnerClient) -> None:
    setup_segment(sandbox, partner)
    store, ws = sandbox.store, sandbox.workspace
    campaign = campaigns.create_campaign(
        store,
        "Hello",
        workspace=ws,
        channel="push",
        message="Hi {{${user_id}}}",
        segments=["vip"],
    )
    details = get(sandbox, "/campaigns/details", campaign_id=campaign["id"])
    assert details.status_code == 200
    body = details.json()
    assert (body["name"], body["draft"], body["channels"], body["first_sent"]) == (
        "Hello",
        True,
        ["push"],
        None,
    )
    [(variation, message)] = body["messages"].items()
    assert message == {"channel": "push", "name": "Hello", "alert": "Hi {{${user_id}}}"}
    campaigns.launch_campaign(store, "Hello", workspace=ws)
    sent = get(sandbox, "/campaigns/details", campaign_id=campaign["id"]).json()
    assert sent["draft"] is False and sent["first_sent"] == sent["last_sent"] is not None
    assert list(sent["messages"]) == [variation]  # a step's id does not change

    canvas = campaigns.create_canvas(
        store,
        "Journey",
        workspace=ws,
        segments=["vip"],
        steps=[Step("One", "email", "first"), Step("Two", "webhook", "second", "vip")],
    )
    assert [c["name"] for c in get(sandbox, "/canvas/list").json()["canvases"]] == ["Journey"]
    shown = get(sandbox, "/canvas/details", canvas_id=canvas["id"]).json()
    one, two = shown["steps"]
    assert shown["channels"] == ["email", "webhook"]
    assert shown["variants"][0]["first_step_ids"] == [one["id"]]
    assert one["next_step_ids"] == [two["id"]] and two["next_step_ids"] == []
    assert one["messages"] == {one["id"]: {"channel": "email", "name": "One", "body": "first"}}

    assert get(sandbox, "/canvas/details", canvas_id=campaign["id"]).status_code == 404
    assert get(sandbox, "/campaigns/details", campaign_id=canvas["id"]).status_code == 404
    assert get(sandbox, "/campaigns/details").status_code == 400
    other = admin.create_workspace(store, f"other-{canvas['id'][:8]}")
    assert (
        get(
            sandbox, "/canvas/details", key=other["rest_api_key"], canvas_id=canvas["id"]
        ).status_code
        == 404
    )


def test_sandbox_outbox_endpoint(sandbox: Sandbox, partner: PartnerClient) -> None:
    setup_segment(sandbox, partner)
    made = campaigns.create_campaign(
        sandbox.store,
        "Out",
        workspace=sandbox.workspace,
        channel="email",
        message="Hi {{${user_id}}}",
        segments=["vip"],
    )
    empty = get(sandbox, "/sandbox/campaigns/sends", campaign_id=made["id"]).json()
    assert empty["launch"] is None and empty["sends"] == []
    campaigns.launch_campaign(sandbox.store, "Out", workspace=sandbox.workspace)
    page = get(sandbox, "/sandbox/campaigns/sends", campaign_id=made["id"]).json()
    assert page["total"] == 2
    assert [(s["external_id"], s["message"]) for s in page["sends"]] == [
        ("u0", "Hi u0"),
        ("u1", "Hi u1"),
    ]
