"""``cohortsync braze segment``: every filter kind from the command line, the real executable."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from cohortsync.braze.store import open_store
from support import run_cli

from .audience_world import World, new_world


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[World, str]]:
    """A SQLite store with users, attributes and a cohort; the CLI's --db for it."""
    url = f"sqlite:///{tmp_path / 'braze.db'}"
    store = open_store(url)
    world = new_world(store)
    world.track("ada", plan="gold", age=41, cohorts=["vip", "123"], newsletter=True)
    world.track("bob", plan="silver", age=29, cohorts=["lapsed"], newsletter=False)
    world.track("cy", plan="gold", age=25)
    world.load([{"device_ids": ["d1"]}])
    world.cohort("vip", "VIP", user_ids=("ada", "bob"), device_ids=("d1",))
    yield world, url
    store.close()


def segment(world: tuple[World, str], *args: str, expect: int | None = 0, stdin: str | None = None):
    found, url = world
    return run_cli(
        "braze", "segment", *args, "-w", str(found.workspace), "--db", url,
        expect=expect, stdin=stdin,
    )  # fmt: skip


def test_options_build_cohort_identity_and_attribute_filters(world: tuple[World, str]) -> None:
    made = json.loads(
        segment(
            world,
            "create",
            "gold or old",
            "--attribute",
            "plan equals gold",
            "--attribute",
            "age greater_than 40",
            "--match",
            "any",
        ).stdout
    )
    assert made["filter"] == {
        "type": "or",
        "filters": [
            {"type": "custom_attribute", "name": "plan", "operator": "equals", "value": "gold"},
            {"type": "custom_attribute", "name": "age", "operator": "greater_than", "value": 40},
        ],
    }
    assert world[0].members("gold or old") == ["ada", "cy"]
    segment(world, "create", "known vip", "--includes-cohort", "vip", "--external-id", "present")
    assert world[0].members("known vip") == ["ada", "bob"]
    shown = json.loads(segment(world, "show", "known vip").stdout)
    assert shown["size"] == 2 and "VIP" in shown["text_description"]


def test_shorthands_for_cohorts_delivered_as_attributes(world: tuple[World, str]) -> None:
    segment(world, "create", "in vip", "--attribute-includes", "cohorts=vip")
    assert world[0].members("in vip") == ["ada"]
    segment(world, "create", "in 123", "--attribute-includes", "cohorts=123")  # text, not 123
    assert world[0].members("in 123") == ["ada"]
    segment(world, "create", "subscribed", "--attribute-is-true", "newsletter")
    assert world[0].members("subscribed") == ["ada"]
    segment(world, "create", "unsubscribed", "--attribute-is-false", "newsletter")
    assert world[0].members("unsubscribed") == ["bob"]
    made = segment(
        world, "create", "any cohort", "--attribute-exists", "cohorts",
        "--includes-cohort", "vip",
    )  # fmt: skip
    assert json.loads(made.stdout)["filter"]["type"] == "and"
    assert world[0].members("any cohort") == ["ada", "bob"]


def test_a_filter_file_and_an_update_replace_the_tree(
    world: tuple[World, str], tmp_path: Path
) -> None:
    tree = {"type": "cohort", "cohort_id": "vip", "includes": True}
    (tmp_path / "filter.json").write_text(json.dumps(tree))
    segment(world, "create", "vip", "--filter-file", str(tmp_path / "filter.json"))
    assert world[0].members("vip") == ["ada", "anon:d1", "bob"]
    updated = segment(
        world, "update", "vip", "--rename", "vip without bob", "--filter-file", "-",
        stdin=json.dumps({"type": "and", "filters": [tree, {
            "type": "custom_attribute", "name": "plan", "operator": "equals", "value": "gold"}]}),
    )  # fmt: skip
    assert json.loads(updated.stdout)["name"] == "vip without bob"
    assert world[0].members("vip without bob") == ["ada"]
    segment(world, "delete", "vip without bob")
    assert json.loads(segment(world, "list").stdout) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("create", "x"), "segment 'x' has no filter"),
        (("create", "x", "--attribute", "plan"), "--attribute 'plan': expected 'NAME OPERATOR"),
        (("create", "x", "--attribute", "plan is gold"), "--attribute 'plan is gold': unknown"),
        (("create", "x", "--includes-cohort", "nope"), "segment filter: no cohort 'nope'"),
        (("create", "x", "--filter-file", "missing.json"), "cannot read missing.json"),
        (("create", "x", "--includes-cohort", "vip", "--filter-file", "-"), "--filter-file repl"),
        (("update", "nothing-here", "--rename", "y"), "no segment 'nothing-here'"),
        (("update", "x"), "nothing to update"),
        (("create", "x", "--attribute-includes", "cohorts"), "--attribute-includes 'cohorts'"),
    ],
)  # fmt: skip
def test_mistakes_are_one_line_and_save_nothing(
    world: tuple[World, str], args: tuple[str, ...], message: str
) -> None:
    failed = segment(world, *args, expect=2, stdin="{}")
    assert failed.stderr.startswith(f"error: {message}"), failed.stderr
    assert "Traceback" not in failed.stderr
    assert json.loads(segment(world, "list").stdout) == []


def test_a_segment_a_campaign_targets_cannot_be_deleted(world: tuple[World, str]) -> None:
    from cohortsync.braze.campaigns import create_campaign

    segment(world, "create", "vip", "--includes-cohort", "vip")
    create_campaign(
        world[0].store, "hello", workspace=world[0].workspace, channel="email",
        message="Hi", segments=["vip"],
    )  # fmt: skip
    refused = segment(world, "delete", "vip", expect=2)
    assert "hello" in refused.stderr and "Traceback" not in refused.stderr
    assert [s["name"] for s in json.loads(segment(world, "list").stdout)] == ["vip"]
