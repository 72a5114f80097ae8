"""Segment filters: custom attributes beside the cohort and external id filters.

Every test runs on SQLite and PostgreSQL: a custom attribute filter compiles
to each dialect's JSON functions, and both must keep the same users. JSON
types stay apart (the string "10" is not the number 10, the number 1 is not
true); the negations keep users without the attribute.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from cohortsync.braze import admin, segments
from cohortsync.braze.store import Store, campaigns, open_store, segment_queries, utc_now
from cohortsync.errors import ConfigError

from .audience_world import World, new_world

ANON_DEVICE = "dev-anon"


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    opened = open_store(db_url)
    yield opened
    opened.close()


@pytest.fixture
def world(store: Store) -> World:
    """Five identified users with attributes of every JSON type, and one anonymous user."""
    made = new_world(store)
    made.track(
        "s1",
        plan="gold",
        visits=10,
        vip=True,
        tags=["a", "b"],
        score=2.5,
        **{"a.b": "dotted", "ville préférée": "Lyon"},
    )
    made.track("s2", plan="silver", visits="10", vip=False, tags=["b", 5])
    made.track("s3", plan=None, visits=3, tags="a")
    made.load([{"external_id": "s4"}])  # no attributes at all
    made.track("s5", plan="Gold", visits=10.0, vip=1, tags=[])
    made.load([{"device_ids": [ANON_DEVICE], "aliases": [{"alias_label": "k", "alias_name": "a"}]}])
    made.track_alias(("k", "a"), plan="gold")
    return made


def attribute(name: str, operator: str, value: Any = None) -> dict[str, Any]:
    return segments.attribute_filter(name, operator, value)


ANON = f"anon:{ANON_DEVICE}"
EVERYONE = ["s1", "s2", "s3", "s4", "s5", ANON]


@pytest.mark.parametrize(
    ("tree", "expected"),
    [
        # strings: exact and case-sensitive; a null attribute is blank
        (attribute("plan", "equals", "gold"), ["s1", ANON]),
        (attribute("plan", "equals", "Gold"), ["s5"]),
        (attribute("plan", "does_not_equal", "gold"), ["s2", "s3", "s4", "s5"]),
        # numbers: 10 and 10.0 are one number, "10" is a string
        (attribute("visits", "equals", 10), ["s1", "s5"]),
        (attribute("visits", "equals", "10"), ["s2"]),
        (attribute("visits", "does_not_equal", 10), ["s2", "s3", "s4", ANON]),
        (attribute("visits", "greater_than", 5), ["s1", "s5"]),
        (attribute("visits", "less_than", 5), ["s3"]),
        (attribute("visits", "greater_than", 9.5), ["s1", "s5"]),
        (attribute("score", "greater_than", 2), ["s1"]),
        (attribute("score", "less_than", 2.5), []),
        # strings never compare as numbers, whatever their text
        (attribute("plan", "greater_than", 0), []),
        # booleans: true is no number and 1 is no boolean
        (attribute("vip", "equals", True), ["s1"]),
        (attribute("vip", "equals", False), ["s2"]),
        (attribute("vip", "equals", 1), ["s5"]),
        (attribute("vip", "does_not_equal", True), ["s2", "s3", "s4", "s5", ANON]),
        (attribute("vip", "greater_than", 0), ["s5"]),
        # presence: absent or null is blank; an empty array is not
        (attribute("plan", "exists"), ["s1", "s2", "s5", ANON]),
        (attribute("plan", "is_not_blank"), ["s1", "s2", "s5", ANON]),
        (attribute("plan", "does_not_exist"), ["s3", "s4"]),
        (attribute("plan", "is_blank"), ["s3", "s4"]),
        (attribute("tags", "exists"), ["s1", "s2", "s3", "s5"]),
        (attribute("nobody has it", "does_not_exist"), EVERYONE),
        # arrays: the element's type counts; a string attribute is no array
        (attribute("tags", "includes_value", "a"), ["s1"]),
        (attribute("tags", "includes_value", "b"), ["s1", "s2"]),
        (attribute("tags", "includes_value", 5), ["s2"]),
        (attribute("tags", "includes_value", "5"), []),
        (attribute("tags", "includes_value", 5.0), ["s2"]),
        (attribute("tags", "does_not_include_value", "b"), ["s3", "s4", "s5", ANON]),
        (attribute("tags", "equals", "a"), ["s3"]),
        # names the JSON path of either dialect must quote
        (attribute("a.b", "equals", "dotted"), ["s1"]),
        (attribute("ville préférée", "equals", "Lyon"), ["s1"]),
        (attribute("a", "exists"), []),
    ],
)
def test_each_operator_keeps_the_users_of_its_json_type(
    world: World, tree: dict[str, Any], expected: list[str]
) -> None:
    world.segment("probe", tree)
    assert world.members("probe") == sorted(expected)
    assert admin.segment_size(world.store, world.workspace, tree) == len(expected)


def test_and_or_groups_nest_over_every_kind_of_filter(world: World) -> None:
    world.cohort("buyers", "Buyers", user_ids=("s1", "s2", "s3"), device_ids=(ANON_DEVICE,))
    tree = {
        "type": "or",
        "filters": [
            {
                "type": "and",
                "filters": [
                    segments.cohort_filter("buyers"),
                    attribute("plan", "exists"),
                    {
                        "type": "or",
                        "filters": [
                            attribute("tags", "includes_value", 5),
                            segments.external_id_filter(present=False),
                        ],
                    },
                ],
            },
            {
                "type": "and",
                "filters": [
                    segments.cohort_filter("buyers", includes=False),
                    attribute("visits", "greater_than", 5),
                ],
            },
        ],
    }
    made = world.segment("nested", tree)
    assert world.members("nested") == sorted(["s2", "s5", ANON])
    assert made["text_description"] == (
        "((Treasure Data Cohorts includes 'Buyers' (buyers) AND Custom Attribute 'plan' exists"
        " AND (Custom Attribute 'tags' includes value 5 OR External User ID is blank))"
        " OR (Treasure Data Cohorts excludes 'Buyers' (buyers)"
        " AND Custom Attribute 'visits' greater than 5))"
    )


@pytest.mark.parametrize(
    ("tree", "message"),
    [
        (
            attribute("plan", "contains", "g"),
            r"^segment filter: unknown operator 'contains' for the attribute 'plan'$",
        ),
        (
            attribute("visits", "greater_than", "5"),
            r"^segment filter: greater_than compares numbers: the value for 'visits' must be a "
            r"number, not the string '5'$",
        ),
        (
            attribute("vip", "less_than", True),
            r"less_than compares numbers: the value for 'vip' must be a number, not the boolean",
        ),
        (
            attribute("plan", "equals", ["gold"]),
            r"equals needs a string, number or boolean value for 'plan', not the array \['gold'\]",
        ),
        (attribute("plan", "equals"), r"equals needs a string, number or boolean value for 'plan'"),
        (attribute("plan", "exists", "gold"), r"exists takes no value"),
        (attribute("", "exists"), r"needs a non-empty string name"),
        (attribute('say "hi"', "exists"), r"holds a double quote, a backslash or a control"),
        (attribute("x" * 256, "exists"), r"longer than 255 characters"),
        (
            {"type": "custom_attribute", "operator": "exists"},
            r"a custom_attribute filter needs a non-empty string name",
        ),
        (
            {
                "type": "and",
                "filters": [
                    segments.external_id_filter(present=True),
                    {"type": "or", "filters": [attribute("n", "greater_than", float("inf"))]},
                ],
            },
            r"^segment filter\.filters\[1\]\.filters\[0\]: greater_than compares numbers",
        ),
        ({"type": "or", "filters": []}, r"an or filter needs a non-empty filters array"),
        ({"type": "attribute"}, r"unknown filter type 'attribute'"),
    ],
)
def test_invalid_filters_are_refused_naming_their_path(
    world: World, tree: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        world.segment("bad", tree)
    assert re.search(message, refused.value.message), refused.value.message
    hint = refused.value.hint or ""
    assert "custom_attribute" in hint or "a filter is" in hint
    with pytest.raises(ConfigError) as sized:
        admin.segment_size(world.store, world.workspace, tree)
    assert sized.value.message == refused.value.message
    assert admin.list_segments(world.store, workspace=world.workspace) == []


def test_deep_nesting_is_refused_before_recursing(world: World) -> None:
    tree: dict[str, Any] = attribute("plan", "exists")
    for _ in range(12):
        tree = {"type": "and", "filters": [tree]}
    with pytest.raises(ConfigError, match="nest more than 10 deep"):
        world.segment("deep", tree)


def test_segments_stored_before_attribute_filters_still_work(world: World) -> None:
    """A row written with the first filter grammar reads, counts and describes as before."""
    world.cohort("buyers", "Buyers", user_ids=("s1", "s2"), device_ids=(ANON_DEVICE,))
    old = {
        "type": "and",
        "filters": [
            {"type": "cohort", "cohort_id": "buyers", "includes": True},
            {"type": "external_id", "present": True},
        ],
    }
    with world.store.write() as conn:
        segment_queries.insert_segment(
            conn,
            segment_id="old-segment",
            workspace_id=world.workspace,
            name="old",
            filter_json=orjson.dumps(old).decode(),
            now="2025-01-01T00:00:00.000+00:00",
        )
    assert world.members("old") == ["s1", "s2"]
    details = admin.segment_details(world.store, "old-segment", workspace=world.workspace)
    assert details["size"] == 2
    assert details["text_description"] == (
        "(Treasure Data Cohorts includes 'Buyers' (buyers) AND External User ID is not blank)"
    )
    assert admin.user_segments(world.store, world.user_id("s1"), workspace=world.workspace) == [
        {"id": "old-segment", "name": "old"}
    ]
    renamed = admin.update_segment(world.store, "old", workspace=world.workspace, name="older")
    assert renamed["filter"] == old
    assert world.members("older") == ["s1", "s2"]


def test_update_and_delete_segments(world: World) -> None:
    made = world.segment("gold", attribute("plan", "equals", "gold"))
    changed = admin.update_segment(
        world.store,
        made["id"],
        workspace=world.workspace,
        filter=attribute("plan", "equals", "silver"),
    )
    assert changed["text_description"] == "Custom Attribute 'plan' equals \"silver\""
    assert world.members("gold") == ["s2"]
    world.segment("other", attribute("plan", "exists"))
    with pytest.raises(ConfigError, match="segment 'other' exists already"):
        admin.update_segment(world.store, "gold", workspace=world.workspace, name="other")
    with pytest.raises(ConfigError, match="unknown operator"):
        admin.update_segment(
            world.store, "gold", workspace=world.workspace, filter=attribute("plan", "is")
        )
    assert world.members("gold") == ["s2"]  # a refused update changed nothing

    now = utc_now()
    with world.store.write() as conn:
        conn.execute(
            sa.insert(campaigns).values(
                id="cmp-1",
                workspace_id=world.workspace,
                kind="campaign",
                name="Welcome",
                include_segments=orjson.dumps([made["id"]]).decode(),
                exclude_segments="[]",
                status="draft",
                created_at=now,
                updated_at=now,
            )
        )
    with pytest.raises(ConfigError, match="segment 'gold' is the audience of campaign 'Welcome'"):
        admin.delete_segment(world.store, "gold", workspace=world.workspace)
    assert admin.delete_segment(world.store, "other", workspace=world.workspace)["deleted"]
    assert [s["name"] for s in admin.list_segments(world.store, workspace=world.workspace)] == [
        "gold"
    ]
    with pytest.raises(ConfigError, match="no segment 'other'"):
        admin.delete_segment(world.store, "other", workspace=world.workspace)


def test_the_segments_a_user_is_in(world: World) -> None:
    world.cohort("buyers", "Buyers", user_ids=("s1",))
    world.segment("b-gold", attribute("plan", "equals", "gold"))
    world.segment("a-buyers", segments.cohort_filter("buyers"))
    world.segment("c-not-vip", attribute("vip", "does_not_equal", True))
    store, ws = world.store, world.workspace
    assert admin.user_segments(store, world.user_id("s1"), workspace=ws) == [
        {"id": admin.segment_details(store, n, workspace=ws)["id"], "name": n}
        for n in ("a-buyers", "b-gold")
    ]
    assert [s["name"] for s in admin.user_segments(store, world.user_id("s4"), workspace=ws)] == [
        "c-not-vip"
    ]
    # The same user seen from another workspace is in none of that workspace's segments.
    other = new_world(store)
    other.segment("everyone", attribute("plan", "does_not_exist"))
    assert admin.user_segments(store, world.user_id("s4"), workspace=other.workspace) == []


def test_sizes_and_member_pages_stay_in_their_workspace(world: World) -> None:
    other = new_world(world.store)
    for n in range(7):
        other.track(f"o{n}", plan="gold")
    tree = attribute("plan", "equals", "gold")
    assert admin.segment_size(world.store, world.workspace, tree) == 2
    assert admin.segment_size(world.store, other.workspace, tree) == 7
    other.segment("gold", tree)
    first = admin.segment_member_page(world.store, "gold", workspace=other.workspace, limit=3)
    assert first["total"] == 7
    assert [m["external_id"] for m in first["members"]] == ["o0", "o1", "o2"]
    last = admin.segment_member_page(
        world.store, "gold", workspace=other.workspace, offset=6, limit=3
    )
    assert [m["external_id"] for m in last["members"]] == ["o6"]
    assert last["members"][0]["braze_id"] == other.user_id("o6")
    with pytest.raises(ConfigError, match="no segment 'gold'"):
        admin.segment_member_page(world.store, "gold", workspace=world.workspace)


def test_cohort_choices_name_their_partner_filter(world: World) -> None:
    world.cohort("vip", "VIP customers", user_ids=("s1",))
    world.cohort("churn", "Churn risk")
    assert admin.cohort_choices(world.store, workspace=world.workspace) == [
        {
            "cohort_id": "churn",
            "name": "Churn risk",
            "partner": "treasuredata",
            "partner_display_name": "Treasure Data",
            "filter_name": "Treasure Data Cohorts",
        },
        {
            "cohort_id": "vip",
            "name": "VIP customers",
            "partner": "treasuredata",
            "partner_display_name": "Treasure Data",
            "filter_name": "Treasure Data Cohorts",
        },
    ]
