"""User lookup: find a user by external id, alias or device id, and read its profile.

Runs on SQLite and PostgreSQL. A user of another workspace is never found,
by any identifier or by its braze id; the profile's messages come from the
workspace's most recent launches, read by primary key probes of the outbox.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from cohortsync.braze import segments
from cohortsync.braze.profiles import lookup
from cohortsync.braze.store import (
    Store,
    campaign_launches,
    campaign_sends,
    campaign_steps,
    campaigns,
    open_store,
    profile_queries,
)
from cohortsync.errors import ConfigError

from .audience_world import World, new_world


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    opened = open_store(db_url)
    yield opened
    opened.close()


@pytest.fixture
def world(store: Store) -> World:
    made = new_world(store)
    made.load(
        [
            {
                "external_id": "alice",
                "aliases": [
                    {"alias_label": "email", "alias_name": "alice@example.com"},
                    {"alias_label": "crm", "alias_name": "A-1"},
                ],
                "device_ids": ["dev-b", "dev-a"],
            },
            {"external_id": "bob"},
            {"device_ids": ["dev-anon"]},
        ]
    )
    made.track("alice", plan="gold", visits=3)
    return made


def add_campaign(
    world: World, campaign_id: str, name: str, steps: int = 1, kind: str = "campaign"
) -> None:
    with world.store.write() as conn:
        conn.execute(
            sa.insert(campaigns).values(
                id=campaign_id,
                workspace_id=world.workspace,
                kind=kind,
                name=name,
                include_segments="[]",
                exclude_segments="[]",
                status="sent",
                created_at="2026-01-01T00:00:00.000+00:00",
                updated_at="2026-01-01T00:00:00.000+00:00",
            )
        )
        conn.execute(
            sa.insert(campaign_steps),
            [
                {
                    "campaign_id": campaign_id,
                    "position": position,
                    "name": f"Step {position}",
                    "channel": "email",
                    "message": f"Hello from {name} {position}",
                }
                for position in range(steps)
            ],
        )


def launch(world: World, campaign_id: str, started_at: str, sends: dict[int, list[int]]) -> int:
    """A finished launch whose outbox holds, per step position, the given users."""
    with world.store.write() as conn:
        launch_id = conn.execute(
            sa.insert(campaign_launches)
            .values(
                campaign_id=campaign_id,
                trigger="launch",
                started_at=started_at,
                finished_at=started_at,
                messages=sum(len(u) for u in sends.values()),
            )
            .returning(campaign_launches.c.id)
        ).scalar_one()
        rows = [
            {
                "launch_id": launch_id,
                "position": position,
                "user_id": user_id,
                "external_id": None,
                "message": f"launch {launch_id} step {position} to {user_id}",
            }
            for position, user_ids in sends.items()
            for user_id in user_ids
        ]
        if rows:
            conn.execute(sa.insert(campaign_sends), rows)
    return int(launch_id)


def test_find_by_each_identifier_kind(world: World) -> None:
    store, ws = world.store, world.workspace
    alice = world.user_id("alice")
    [by_id] = lookup.find_users(store, ws, external_id="alice")
    assert by_id.braze_id == alice and not by_id.anonymous
    assert by_id.aliases == [
        {"alias_label": "crm", "alias_name": "A-1"},
        {"alias_label": "email", "alias_name": "alice@example.com"},
    ]
    assert by_id.device_ids == ["dev-a", "dev-b"]
    [by_alias] = lookup.find_users(store, ws, alias=("email", "alice@example.com"))
    assert by_alias == by_id
    [by_device] = lookup.find_users(store, ws, device_id="dev-b")
    assert by_device == by_id
    [anonymous] = lookup.find_users(store, ws, device_id="dev-anon")
    assert anonymous.anonymous and anonymous.external_id is None
    assert anonymous.as_dict()["anonymous"] is True
    # An alias needs its label too; unknown identifiers find nobody.
    assert lookup.find_users(store, ws, alias=("crm", "alice@example.com")) == []
    assert lookup.find_users(store, ws, external_id="ALICE") == []
    assert lookup.find_users(store, ws, device_id="dev-none") == []


@pytest.mark.parametrize(
    ("identifiers", "message"),
    [
        ({}, r"a user lookup takes one identifier, not 0"),
        ({"external_id": "alice", "device_id": "dev-a"}, r"takes one identifier, not 2"),
        ({"alias": ("email", " ")}, r"needs both the alias label and the alias name"),
        ({"external_id": ""}, r"the external id to look up is empty"),
        ({"device_id": "  "}, r"the device id to look up is empty"),
    ],
)
def test_a_lookup_names_exactly_one_identifier(
    world: World, identifiers: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        lookup.find_users(world.store, world.workspace, **identifiers)  # type: ignore[arg-type]


def test_users_of_another_workspace_are_never_found(world: World) -> None:
    other = new_world(world.store)
    other.load(
        [
            {
                "external_id": "carol",
                "aliases": [{"alias_label": "email", "alias_name": "c@x"}],
                "device_ids": ["dev-c"],
            }
        ]
    )
    carol = other.user_id("carol")
    store, ws = world.store, world.workspace
    assert lookup.find_users(store, ws, external_id="carol") == []
    assert lookup.find_users(store, ws, alias=("email", "c@x")) == []
    assert lookup.find_users(store, ws, device_id="dev-c") == []
    assert lookup.user_profile(store, ws, carol) is None
    assert lookup.user_profile(store, other.workspace, world.user_id("alice")) is None
    found = lookup.user_profile(store, other.workspace, carol)
    assert found is not None and found.external_id == "carol"


def test_the_profile_gathers_identifiers_attributes_cohorts_and_segments(world: World) -> None:
    world.cohort("vip", "VIP customers", user_ids=("alice", "bob"))
    world.cohort("churn", "Churn risk", user_ids=("bob",))
    world.cohort("anon", "Anonymous visitors", device_ids=("dev-anon",))
    world.segment("gold plan", segments.attribute_filter("plan", "equals", "gold"))
    world.segment("vips", segments.cohort_filter("vip"))
    world.segment("churners", segments.cohort_filter("churn"))
    profile = lookup.user_profile(world.store, world.workspace, world.user_id("alice"))
    assert profile is not None
    assert profile.braze_id == world.user_id("alice")
    assert profile.external_id == "alice" and not profile.anonymous
    assert profile.created_at.startswith("20")
    assert profile.aliases[1] == {"alias_label": "email", "alias_name": "alice@example.com"}
    assert profile.device_ids == ["dev-a", "dev-b"]
    assert profile.attributes == {"plan": "gold", "visits": 3}
    assert profile.cohorts == [
        {
            "cohort_id": "vip",
            "name": "VIP customers",
            "partner": "treasuredata",
            "partner_display_name": "Treasure Data",
        }
    ]
    assert [s["name"] for s in profile.segments] == ["gold plan", "vips"]
    assert profile.messages == []
    [anonymous] = lookup.find_users(world.store, world.workspace, device_id="dev-anon")
    seen = lookup.user_profile(world.store, world.workspace, anonymous.braze_id)
    assert seen is not None and seen.anonymous and seen.attributes == {}
    assert [c["cohort_id"] for c in seen.cohorts] == ["anon"]
    assert seen.segments == []


def test_recent_messages_come_from_the_latest_launches_of_the_workspace(world: World) -> None:
    alice, bob = world.user_id("alice"), world.user_id("bob")
    add_campaign(world, f"{world.workspace}-welcome", "Welcome", steps=1)
    add_campaign(world, f"{world.workspace}-journey", "Journey", steps=3, kind="canvas")
    old = launch(world, f"{world.workspace}-welcome", "2026-01-01T09:00:00", {0: [alice, bob]})
    journey = launch(
        world, f"{world.workspace}-journey", "2026-02-01T09:00:00", {0: [alice], 2: [alice, bob]}
    )
    newest = launch(world, f"{world.workspace}-welcome", "2026-03-01T09:00:00", {0: [bob]})
    # A launch of another workspace, with a send to a user id of this one, is not read.
    other = new_world(world.store)
    add_campaign(other, f"{other.workspace}-welcome", "Theirs")
    launch(other, f"{other.workspace}-welcome", "2026-04-01T09:00:00", {0: [alice]})

    profile = lookup.user_profile(world.store, world.workspace, alice)
    assert profile is not None
    assert [(m.launch_id, m.position, m.campaign, m.kind, m.step) for m in profile.messages] == [
        (journey, 0, "Journey", "canvas", "Step 0"),
        (journey, 2, "Journey", "canvas", "Step 2"),
        (old, 0, "Welcome", "campaign", "Step 0"),
    ]
    assert profile.messages[0].message == f"launch {journey} step 0 to {alice}"
    assert profile.messages[0].sent_at == "2026-02-01T09:00:00"
    assert profile.messages[0].channel == "email"
    # Only the latest launches are read, and the list is capped.
    two_latest = lookup.user_profile(world.store, world.workspace, alice, launches=2)
    assert two_latest is not None
    assert [m.launch_id for m in two_latest.messages] == [journey, journey]
    capped = lookup.user_profile(world.store, world.workspace, alice, messages=1)
    assert capped is not None and len(capped.messages) == 1
    bobs = lookup.user_profile(world.store, world.workspace, bob)
    assert bobs is not None
    assert [(m.launch_id, m.position) for m in bobs.messages] == [
        (newest, 0),
        (journey, 2),
        (old, 0),
    ]
    assert profile.as_dict()["messages"][0]["campaign"] == "Journey"


def test_the_outbox_is_probed_by_its_primary_key_not_scanned(tmp_path: Path) -> None:
    """SQLite's plan for a user's messages searches the outbox key; it never scans it."""
    store = open_store(f"sqlite:///{tmp_path / 'plan.db'}")
    try:
        with store.read() as conn:
            probe = profile_queries.sends_to_user
            statements: list[str] = []

            def remember(conn: object, cursor: object, statement: str, *args: object) -> None:
                statements.append(statement)

            sa.event.listen(conn, "before_cursor_execute", remember)
            probe(conn, 7, [(1, 0), (1, 1), (2, 0)])
            sa.event.remove(conn, "before_cursor_execute", remember)
            [statement] = statements
            params = [1, 0, 7, 1, 1, 7, 2, 0, 7]
            plan = [
                row[-1]
                for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", tuple(params))
            ]
        key = (
            "SEARCH braze_campaign_sends USING PRIMARY KEY"
            " (launch_id=? AND position=? AND user_id=?)"
        )
        assert [step for step in plan if "braze_campaign_sends" in step] == [key] * 3
        assert not any(step.startswith("SCAN") for step in plan)
    finally:
        store.close()
