"""Campaigns and Canvases: saving, rendering, audiences, launches into the outbox, schedules.

Every test runs on SQLite and PostgreSQL (the ``sandbox`` fixture): users are
loaded and put into cohorts through the real service (``/users/track``, the
partner API), so the audiences are those a partner's cohorts make.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from cohortsync.braze import admin, campaigns
from cohortsync.braze.campaigns import Step, compile_message
from cohortsync.braze.sandbox import Sandbox
from cohortsync.braze.server import serve_in_background
from cohortsync.braze.store import campaign_launches, segments
from cohortsync.braze.store import campaigns as campaign_table
from cohortsync.errors import ConfigError
from support import wait_for

from .support import PartnerClient

PROFILES: dict[str, dict[str, Any]] = {
    "ada": {"first_name": "Ada", "plan": "gold", "visits": 3},
    "bob": {"first_name": "", "plan": "silver", "visits": 2.5},
    "cy": {"vip": True, "flagged": False},
    "dee": {"first_name": "Dee", "tags": ["a", "b"]},
    "eve": {},
    "fay": {"first_name": "Fay"},
}


def track(sandbox: Sandbox, profiles: dict[str, dict[str, Any]]) -> None:
    """Create the profiles with their attributes through ``/users/track``."""
    body = {"attributes": [{"external_id": who, **attrs} for who, attrs in profiles.items()]}
    response = requests.post(
        f"{sandbox.base_url}/users/track",
        json=body,
        headers={"Authorization": f"Bearer {sandbox.rest_api_key}"},
        timeout=30,
    )
    assert response.status_code == 201 or response.status_code == 200, response.text


@pytest.fixture
def audience(sandbox: Sandbox, partner: PartnerClient) -> Sandbox:
    """Six profiles; cohorts ``gold`` (ada, bob, cy, dee), ``lapsed`` (bob, eve),
    ``engaged`` (ada, cy, fay); a segment of each cohort."""
    track(sandbox, PROFILES)
    for cohort_id, members in {
        "gold": ["ada", "bob", "cy", "dee"],
        "lapsed": ["bob", "eve"],
        "engaged": ["ada", "cy", "fay"],
    }.items():
        assert partner.define(cohort_id).status_code == 200
        partner.add(cohort_id, user_ids=members)
        admin.create_segment(
            sandbox.store,
            f"{cohort_id} users",
            workspace=sandbox.workspace,
            includes_cohorts=[cohort_id],
        )
    return sandbox


def outbox(sandbox: Sandbox, name: str, kind: str = "campaign") -> list[tuple[str, str, str]]:
    """``(step, external id, message)`` of every message of the latest launch."""
    page = campaigns.campaign_sends(
        sandbox.store, name, workspace=sandbox.workspace, kind=kind, limit=10_000
    )
    return [(s["step"], s["external_id"], s["message"]) for s in page["sends"]]


# ---------------------------------------------------------------- rendering


def test_placeholders_render_attributes_defaults_and_the_external_id() -> None:
    template = compile_message(
        "Hi {{${first_name} | default: 'there'}}! {{custom_attribute.${plan}}}"
        '/{{ ${visits} }}/{{${vip}}}/{{${flagged} | default: "no"}}/{{${user_id}}}'
    )
    assert template.attributes == ("first_name", "plan", "visits", "vip", "flagged", "user_id")
    assert template.render(PROFILES["ada"], "ada") == "Hi Ada! gold/3//no/ada"
    assert template.render(PROFILES["bob"], "bob") == "Hi there! silver/2.5//no/bob"
    assert template.render(PROFILES["cy"], None) == "Hi there! //true/no/"
    assert compile_message("{{${tags}}}").render(PROFILES["dee"]) == '["a","b"]'
    assert compile_message("no placeholders").render(None) == "no placeholders"


@pytest.mark.parametrize(
    ("message", "quoted"),
    [
        ("Hi {{first_name}}", "'{{first_name}}'"),
        ("Hi {{${first_name} | upcase}}", "'{{${first_name} | upcase}}'"),
        ("{% if x %}hi{% endif %}", "'{% if x %}'"),
        ("Hi {{${first name}}}", "'{{${first name}}'"),
        ("Hi {{${first_name}", "'{{${first_name}"),
    ],
)
def test_a_placeholder_the_service_cannot_render_is_refused_naming_it(
    message: str, quoted: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        compile_message(message)
    assert quoted in caught.value.message
    assert "{{${first_name}}}" in (caught.value.hint or "")


def test_the_database_renders_what_the_template_renders(audience: Sandbox) -> None:
    """The launch renders in SQL; every message equals the Python rendering of its profile."""
    message = (
        "Hi {{${first_name} | default: 'there'}} ({{${plan}}}, {{${visits}}}, {{${vip}}}, "
        "{{${flagged} | default: 'not flagged'}}, {{${tags}}}) #{{${user_id}}}"
    )
    campaigns.create_campaign(
        audience.store,
        "everyone",
        workspace=audience.workspace,
        channel="email",
        message=message,
        segments=["gold users", "lapsed users", "engaged users"],
    )
    campaigns.launch_campaign(audience.store, "everyone", workspace=audience.workspace)
    template = compile_message(message)
    expected = sorted(
        ("everyone", who, template.render(attrs, who)) for who, attrs in PROFILES.items()
    )
    assert sorted(outbox(audience, "everyone")) == expected


# ---------------------------------------------------------------- audiences and launches


def test_audience_is_the_included_segments_minus_the_excluded(audience: Sandbox) -> None:
    store, ws = audience.store, audience.workspace
    assert campaigns.audience_count(store, workspace=ws, segments=["gold users"]) == 4
    assert (
        campaigns.audience_count(store, workspace=ws, segments=["gold users", "engaged users"]) == 5
    )
    assert (
        campaigns.audience_count(
            store, workspace=ws, segments=["gold users", "engaged users"], exclude=["lapsed users"]
        )
        == 4
    )
    assert campaigns.audience_count(store, workspace=ws, segments=[]) == 0
    campaigns.create_campaign(
        store,
        "Gold, not lapsed",
        workspace=ws,
        channel="push",
        message="Hello",
        segments=["gold users", "engaged users"],
        exclude=["lapsed users"],
    )
    launched = campaigns.launch_campaign(store, "Gold, not lapsed", workspace=ws)
    assert launched["messages"] == 4 and launched["trigger"] == "launch"
    assert sorted(who for _, who, _ in outbox(audience, "Gold, not lapsed")) == [
        "ada",
        "cy",
        "dee",
        "fay",
    ]
    shown = campaigns.get_campaign(store, "Gold, not lapsed", workspace=ws)
    assert shown["status"] == "sent" and [x["messages"] for x in shown["launches"]] == [4]


def test_the_audience_is_resolved_at_launch_not_at_save(
    audience: Sandbox, partner: PartnerClient
) -> None:
    campaigns.create_campaign(
        audience.store,
        "later",
        workspace=audience.workspace,
        channel="email",
        message="Hi",
        segments=["lapsed users"],
    )
    partner.add("lapsed", user_ids=["fay"])
    partner.remove("lapsed", user_ids=["bob"])
    campaigns.launch_campaign(audience.store, "later", workspace=audience.workspace)
    assert sorted(who for _, who, _ in outbox(audience, "later")) == ["eve", "fay"]


def test_canvas_steps_narrow_the_audience_cumulatively(audience: Sandbox) -> None:
    store, ws = audience.store, audience.workspace
    campaigns.create_canvas(
        store,
        "Journey",
        workspace=ws,
        segments=["gold users", "engaged users"],
        steps=[
            Step("Welcome", "email", "Welcome {{${first_name} | default: 'friend'}}"),
            Step("Engaged only", "push", "Thanks", segment="engaged users"),
            Step("Still here", "webhook", "ping {{${user_id}}}"),
            Step("Engaged and lapsed", "email", "Come back", segment="lapsed users"),
        ],
    )
    assert [
        s["reachable"]
        for s in campaigns.reachable_by_step(store, "Journey", workspace=ws, kind="canvas")
    ] == [5, 3, 3, 0]
    launched = campaigns.launch_campaign(store, "Journey", workspace=ws, kind="canvas")
    assert [s["messages"] for s in launched["by_step"]] == [5, 3, 3, 0]
    sent = outbox(audience, "Journey", "canvas")
    assert sorted(who for step, who, _ in sent if step == "Engaged only") == ["ada", "cy", "fay"]
    assert ("Still here", "cy", "ping cy") in sent
    assert ("Welcome", "bob", "Welcome friend") in sent
    assert len(sent) == 11


def test_a_campaign_launches_once_and_a_failed_launch_leaves_nothing(
    audience: Sandbox,
) -> None:
    store, ws = audience.store, audience.workspace
    campaigns.create_campaign(
        store, "once", workspace=ws, channel="email", message="Hi", segments=["gold users"]
    )
    campaigns.launch_campaign(store, "once", workspace=ws)
    with pytest.raises(ConfigError, match="was sent already"):
        campaigns.launch_campaign(store, "once", workspace=ws)
    with pytest.raises(ConfigError, match="cannot change"):
        campaigns.update_campaign(store, "once", workspace=ws, message="Other")
    assert len(campaigns.get_campaign(store, "once", workspace=ws)["launches"]) == 1

    made = campaigns.create_campaign(
        store,
        "doomed",
        workspace=ws,
        channel="email",
        message="Hi",
        segments=["gold users", "lapsed users"],
    )
    with store.write() as conn:  # the segment disappears behind the campaign's back
        conn.execute(sa.delete(segments).where(segments.c.name == "lapsed users"))
    with pytest.raises(ConfigError, match="no longer exists"):
        campaigns.launch_campaign(store, "doomed", workspace=ws)
    after = campaigns.get_campaign(store, made["id"], workspace=ws)
    assert after["status"] == "draft" and after["launches"] == []


def test_mistakes_are_refused_when_saving(audience: Sandbox, sandbox: Sandbox) -> None:
    store, ws = audience.store, audience.workspace

    def refused(match: str, **fields: Any) -> None:
        arguments = {
            "workspace": ws,
            "channel": "email",
            "message": "Hi",
            "segments": ["gold users"],
            **fields,
        }
        with pytest.raises(ConfigError, match=match):
            campaigns.create_campaign(store, fields.pop("name", "c"), **arguments)

    refused("no segment 'nope'", segments=["nope"])
    refused("exclude: no segment 'nope'", exclude=["nope"])
    refused("unknown channel 'sms'", channel="sms")
    refused("no Target Audience", segments=[])
    refused("the message is empty", message="  ")
    refused("cannot read the send time", send_at="next tuesday")
    refused("no workspace", workspace="no-such-workspace")
    campaigns.create_campaign(
        store, "taken", workspace=ws, channel="email", message="Hi", segments=["gold users"]
    )
    with pytest.raises(ConfigError, match="exists already"):
        campaigns.create_campaign(
            store, "taken", workspace=ws, channel="email", message="Hi", segments=["gold users"]
        )
    with pytest.raises(ConfigError, match=r"step 2 \('b'\)"):
        campaigns.create_canvas(
            store,
            "cv",
            workspace=ws,
            segments=["gold users"],
            steps=[Step("a", "email", "ok"), Step("b", "push", "{{${x} | upcase}}")],
        )
    with pytest.raises(ConfigError, match="no campaign 'missing'"):
        campaigns.launch_campaign(store, "missing", workspace=ws)
    # A Canvas is not a campaign: each kind is looked up among its own.
    campaigns.create_canvas(
        store, "cv", workspace=ws, segments=["gold users"], steps=[Step("a", "email", "ok")]
    )
    with pytest.raises(ConfigError, match="no campaign 'cv'"):
        campaigns.get_campaign(store, "cv", workspace=ws)


def test_a_workspace_sees_none_of_another_workspaces_campaigns(audience: Sandbox) -> None:
    store = audience.store
    made = campaigns.create_campaign(
        store,
        "mine",
        workspace=audience.workspace,
        channel="email",
        message="Hi",
        segments=["gold users"],
    )
    other = admin.create_workspace(store, f"other-{made['id'][:8]}")
    with pytest.raises(ConfigError, match="no campaign"):
        campaigns.launch_campaign(store, made["id"], workspace=other["id"])
    with pytest.raises(ConfigError, match="no segment"):
        campaigns.create_campaign(
            store,
            "theirs",
            workspace=other["id"],
            channel="email",
            message="Hi",
            segments=["gold users"],
        )
    assert campaigns.list_campaigns(store, workspace=other["id"]) == []


# ---------------------------------------------------------------- schedules


def _soon(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def test_launch_due_launches_each_due_campaign_once_under_concurrent_callers(
    audience: Sandbox,
) -> None:
    store, ws = audience.store, audience.workspace
    campaigns.create_campaign(
        store,
        "due",
        workspace=ws,
        channel="email",
        message="Hi",
        segments=["gold users"],
        send_at=_soon(-1),
    )
    campaigns.create_campaign(
        store,
        "future",
        workspace=ws,
        channel="email",
        message="Hi",
        segments=["gold users"],
        send_at=_soon(3600),
    )
    results: list[list[dict[str, Any]]] = []
    callers = [
        threading.Thread(target=lambda: results.append(campaigns.launch_due(store)))
        for _ in range(4)
    ]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    launched = [launch["name"] for batch in results for launch in batch]
    assert launched.count("due") == 1 and "future" not in launched
    assert campaigns.get_campaign(store, "future", workspace=ws)["status"] == "scheduled"
    assert campaigns.launch_due(store, _soon(7200))[0]["name"] == "future"


def test_two_running_services_launch_a_scheduled_campaign_exactly_once(
    audience: Sandbox,
) -> None:
    """The sandbox's service and a second one on the same store both run the scheduler."""
    store, ws = audience.store, audience.workspace
    made = campaigns.create_campaign(
        store,
        "Scheduled",
        workspace=ws,
        channel="email",
        message="Hi {{${first_name} | default: 'there'}}",
        segments=["engaged users"],
        send_at=_soon(1.5),
    )
    assert made["status"] == "scheduled"
    with serve_in_background(audience.db_url, schedule_interval=0.1):
        wait_for(
            lambda: campaigns.get_campaign(store, "Scheduled", workspace=ws)["status"] == "sent",
            what="a service to launch the scheduled campaign",
            interval=0.1,
        )
        threading.Event().wait(1.5)  # both schedulers tick again past the send time
    with store.read() as conn:
        launches = conn.execute(
            sa.select(campaign_launches).where(campaign_launches.c.campaign_id == made["id"])
        ).all()
    assert [(x.trigger, x.messages) for x in launches] == [("scheduled", 3)]
    assert sorted(outbox(audience, "Scheduled")) == [
        ("Scheduled", "ada", "Hi Ada"),
        ("Scheduled", "cy", "Hi there"),
        ("Scheduled", "fay", "Hi Fay"),
    ]


def test_schedule_and_unschedule(audience: Sandbox) -> None:
    store, ws = audience.store, audience.workspace
    campaigns.create_campaign(
        store, "s", workspace=ws, channel="email", message="Hi", segments=["gold users"]
    )
    scheduled = campaigns.schedule_campaign(
        store, "s", workspace=ws, send_at="2030-01-01T10:00:00+01:00"
    )
    assert (scheduled["status"], scheduled["send_at"]) == (
        "scheduled",
        "2030-01-01T09:00:00.000+00:00",
    )
    draft = campaigns.schedule_campaign(store, "s", workspace=ws, send_at=None)
    assert (draft["status"], draft["send_at"]) == ("draft", None)
    with store.read() as conn:
        status = conn.execute(
            sa.select(campaign_table.c.status).where(campaign_table.c.id == draft["id"])
        ).scalar_one()
    assert status == "draft"
