"""Each definition's rules: the bound, the message that names the value, the hint."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from cohortsync.definitions import (
    Activation,
    Authentication,
    Parent,
    Query,
    QueryExport,
    Schedule,
    Segment,
    validated,
)
from cohortsync.definitions.fields import MAX_THREADS
from cohortsync.errors import ConfigError

ACTIVATION: dict[str, Any] = {
    "name": "fr_vip",
    "segment": "fr",
    "auth": "prod",
    "cohort_id": "fr_vip",
    "mapping": ["customer_id=user_ids"],
}


def refused(model: type[Any], data: dict[str, Any], **where: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        validated(model, data, **where)
    return caught.value


@pytest.mark.parametrize(
    ("overrides", "message", "hint"),
    [
        ({"threads": 0}, "thread count 0 is below 1", "give auto or 1 to 64 threads"),
        ({"threads": 65}, "thread count 65 is above 64", "give auto or 1 to 64 threads"),
        ({"threads": 10**30}, f"thread count {10**30} is above 64", "give auto or 1 to 64 threads"),
        ({"cohort_id": "  "}, "the cohort id is empty", "give the Braze cohort id"),
        ({"operation": "sync"}, "unknown operation 'sync'", "use one of add, remove, mirror"),
        (
            {"mirror": {"max_remove_pct": 100.5}},
            "mirror max remove percentage 100.5 is not within 0..100",
            "from 0 to 100",
        ),
        ({"mirror": {"max_remove_pct": -1}}, "percentage -1.0 is not within 0..100", "0 to 100"),
        ({"mirror": {"max_remove_pct": math.nan}}, "nan is not within 0..100", "0 to 100"),
        ({"mapping": []}, "an activation needs at least one output mapping", "--map"),
        ({"mapping": ["customer_id"]}, "invalid output mapping 'customer_id'", "ATTRIBUTE="),
        ({"mapping": [{"attribute": " ", "output": "user_ids"}]}, "invalid output mapping", "="),
        (
            {"mapping": ["customer_id=external_id"]},
            "output name 'external_id' of mapping customer_id=external_id is not allowed",
            "allowed output names: user_ids, device_ids (or set --alias-column",
        ),
        (
            {"mapping": ["a=user_ids", "b=user_ids"]},
            "output name 'user_ids' is mapped twice",
            "from one attribute",
        ),
        ({"alias_column": "device_ids"}, "clashes with the built-in output", "--alias-column"),
        ({"alias_column": "email"}, "alias column 'email' is set but no mapping outputs it", ""),
        ({"schedule": "0 6 * *"}, "cron expression '0 6 * *' must have five fields", "five"),
        ({"schedule": "0 25 * * *"}, "cron expression '0 25 * * *' is invalid", "e.g."),
        ({"timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'", "IANA"),
        ({"name": "fr vip"}, "invalid activation name 'fr vip'", "letters, digits"),
        ({"name": "x" * 129}, "invalid activation name", "at most 128"),
    ],
)
def test_activation_rules(overrides: dict[str, Any], message: str, hint: str) -> None:
    error = refused(Activation, {**ACTIVATION, **overrides})
    assert message in error.message
    assert hint in (error.hint or "")


def test_activation_defaults_and_normal_forms() -> None:
    activation = validated(
        Activation,
        {**ACTIVATION, "mapping": [" customer_id = user_ids ", {"attribute": "e", "output": "e"}],
         "alias_column": "e", "schedule": " 0  6 * * * "},
    )  # fmt: skip
    assert [str(m) for m in activation.mapping] == ["customer_id=user_ids", "e=e"]
    assert activation.schedule == "0 6 * * *"
    assert activation.scheduled == Schedule(cron="0 6 * * *", timezone="UTC")
    assert (activation.threads, activation.operation, activation.skip_invalid) == (
        "auto",
        "add",
        False,
    )
    assert (activation.mirror.allow_empty, activation.mirror.max_remove_pct) == (False, 50.0)
    assert validated(Activation, {**ACTIVATION, "threads": MAX_THREADS}).threads == 64


def test_a_wrong_shape_names_its_place_and_comes_before_a_broken_rule() -> None:
    error = refused(Activation, {**ACTIVATION, "threads": 65, "colour": "red"}, at="activations[2]")
    assert error.message == "activations[2].colour: Extra inputs are not permitted"
    error = refused(Activation, {**ACTIVATION, "mirror": {"allow_empty": "perhaps"}})
    assert (
        error.message == "mirror.allow_empty: Input should be a valid boolean, unable to "
        "interpret input"
    )
    error = refused(Activation, {**ACTIVATION, "threads": 65}, subject="activation fr_vip")
    assert error.message == "activation fr_vip: thread count 65 is above 64"
    # a refused name already names the object: no subject before it
    error = refused(Activation, {**ACTIVATION, "name": "a b"}, subject="activation a b")
    assert error.message == "invalid activation name 'a b'"


def test_a_query_export_and_an_activation_share_their_rules() -> None:
    export = {"auth": "prod", "cohort_id": "gold"}
    for overrides in ({"threads": 65}, {"operation": "sync"}, {"mirror": {"max_remove_pct": 101}}):
        from_query = refused(QueryExport, {**export, **overrides})
        from_activation = refused(Activation, {**ACTIVATION, **overrides})
        assert str(from_query) == str(from_activation)
    assert validated(QueryExport, {**export, "skip_invalid": True}).skip_invalid is True


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "q", "sql": "  "}, "query 'q' has empty SQL"),
        ({"name": "bad name", "sql": "SELECT 1"}, "invalid query name 'bad name'"),
        ({"name": "q", "sql": "SELECT 1", "schedule": "daily"}, "must have five fields"),
        ({"name": "q", "sql": "SELECT 1", "export": {"auth": "a", "cohort_id": ""}}, "empty"),
    ],
)
def test_query_rules(data: dict[str, Any], message: str) -> None:
    assert message in str(refused(Query, data))


def test_a_query_keeps_a_time_zone_only_with_its_schedule() -> None:
    scheduled = validated(
        Query, {"name": "q", "sql": "SELECT 1", "schedule": "0 6 * * *", "timezone": "Asia/Tokyo"}
    )
    assert (scheduled.timezone, scheduled.scheduled) == (
        "Asia/Tokyo",
        Schedule(cron="0 6 * * *", timezone="Asia/Tokyo"),
    )
    unscheduled = validated(Query, {"name": "q", "sql": "SELECT 1", "timezone": "Asia/Tokyo"})
    assert (unscheduled.timezone, unscheduled.scheduled) == ("UTC", None)
    with pytest.raises(ConfigError, match="unknown time zone 'Nowhere'"):
        validated(Query, {"name": "q", "sql": "SELECT 1", "timezone": "Nowhere"})


def test_authentication_rules_and_secret() -> None:
    auth = validated(
        Authentication,
        {"name": "prod", "endpoint": "https://rest.iad-01.braze.com//", "data_import_key": "k-1"},
    )
    assert (auth.endpoint, auth.partner) == ("https://rest.iad-01.braze.com", "treasuredata")
    assert "k-1" not in repr(auth)
    data = {"name": "prod", "endpoint": "ftp://x", "data_import_key": "k-1"}
    error = refused(Authentication, data)
    assert error.message == "the endpoint 'ftp://x' is not an http(s) URL"
    assert "https://rest.iad-01.braze.com" in (error.hint or "")
    assert refused(Authentication, {**data, "name": "a/b"}).message == (
        "invalid authentication name 'a/b'"
    )
    with pytest.raises(ConfigError, match=re.escape("data_import_key: String should have at")):
        validated(Authentication, {**data, "endpoint": "https://x", "data_import_key": ""})


def test_parent_and_segment_rules() -> None:
    parent = {"name": "customers", "table": "customers", "key": "id"}
    assert validated(Parent, parent).warehouse is None
    with pytest.raises(ConfigError, match=r"^key: String should have at least 1 character$"):
        validated(Parent, {**parent, "key": ""})
    with pytest.raises(ConfigError, match=r"^invalid parent name 'my parent; drop' \(use letters"):
        validated(Parent, {**parent, "name": "my parent; drop"})
    segment = {"name": "fr", "parent": "customers", "rules": {"column": "c", "op": "=", "value": 1}}
    assert validated(Segment, segment).rules["value"] == 1
    with pytest.raises(ConfigError, match=r"^rules: Input should be a valid dictionary"):
        validated(Segment, {**segment, "rules": "country = FR"})
    with pytest.raises(ConfigError, match=r"^invalid segment name '-fr' \(use letters"):
        validated(Segment, {**segment, "name": "-fr"})


def test_schedule_alone() -> None:
    assert validated(Schedule, {"cron": "*/5  * * * *"}) == Schedule(cron="*/5 * * * *")
    with pytest.raises(ConfigError, match=r"^cron expression '' must have five fields"):
        validated(Schedule, {"cron": ""})
