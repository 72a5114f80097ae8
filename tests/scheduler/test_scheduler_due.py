"""The due computation: pure functions of a cron expression, a time zone and *now*."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cohortsync.catalog.schedules import Schedule
from cohortsync.errors import ConfigError
from cohortsync.scheduler import check_cron, due_jobs, latest_slot, next_run, next_slot


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def schedule(cron: str, anchor: str, last_slot: str | None = None, tz: str = "UTC") -> Schedule:
    return Schedule(
        job="query:q",
        kind="query",
        name="q",
        cron=cron,
        timezone=tz,
        anchor=at(anchor),
        last_slot=at(last_slot) if last_slot else None,
        last_run_id=None,
        last_status=None,
        last_error=None,
        last_finished_at=None,
    )


def test_latest_slot_includes_now_and_excludes_the_future() -> None:
    assert latest_slot("0 6 * * *", "UTC", at("2026-03-02T06:00:00")) == at("2026-03-02T06:00:00")
    assert latest_slot("0 6 * * *", "UTC", at("2026-03-02T05:59:59")) == at("2026-03-01T06:00:00")
    assert latest_slot("*/15 * * * *", "UTC", at("2026-03-02T10:29:59.9")) == at(
        "2026-03-02T10:15:00"
    )


def test_next_slot_is_strictly_after() -> None:
    assert next_slot("0 6 * * *", "UTC", at("2026-03-02T06:00:00")) == at("2026-03-03T06:00:00")


def test_not_due_before_the_first_slot_after_scheduling() -> None:
    job = schedule("0 6 * * *", anchor="2026-03-02T07:00:00")
    assert due_jobs([job], at("2026-03-02T07:00:00")) == []
    assert due_jobs([job], at("2026-03-03T05:59:59")) == []
    [due] = due_jobs([job], at("2026-03-03T06:00:00"))
    assert due.slot == at("2026-03-03T06:00:00")


def test_not_due_again_once_the_slot_is_consumed() -> None:
    job = schedule("0 6 * * *", anchor="2026-03-01T00:00:00", last_slot="2026-03-03T06:00:00")
    assert due_jobs([job], at("2026-03-03T23:00:00")) == []
    assert len(due_jobs([job], at("2026-03-04T06:00:30"))) == 1


def test_missed_slots_collapse_into_one_run_at_the_latest_slot() -> None:
    job = schedule("0 * * * *", anchor="2026-03-01T00:00:00", last_slot="2026-03-01T10:00:00")
    due = due_jobs([job], at("2026-03-03T17:42:00"))
    assert [d.slot for d in due] == [at("2026-03-03T17:00:00")]


def test_time_zone_slots_follow_local_time_across_dst() -> None:
    # 06:00 in Paris is 05:00 UTC in winter and 04:00 UTC in summer (DST from 2026-03-29).
    winter = latest_slot("0 6 * * *", "Europe/Paris", at("2026-03-27T12:00:00"))
    summer = latest_slot("0 6 * * *", "Europe/Paris", at("2026-03-30T12:00:00"))
    assert winter == at("2026-03-27T05:00:00")
    assert summer == at("2026-03-30T04:00:00")
    job = schedule("0 6 * * *", anchor="2026-03-29T12:00:00", tz="Europe/Paris")
    assert due_jobs([job], at("2026-03-30T03:59:00")) == []
    assert len(due_jobs([job], at("2026-03-30T04:00:00"))) == 1


def test_next_run_is_now_when_a_slot_waits() -> None:
    job = schedule("0 6 * * *", anchor="2026-03-01T00:00:00")
    now = at("2026-03-05T12:00:00")
    assert next_run(job, now) == now
    done = schedule("0 6 * * *", anchor="2026-03-01T00:00:00", last_slot="2026-03-05T06:00:00")
    assert next_run(done, now) == at("2026-03-06T06:00:00")


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("0 6 * *", "five fields"),
        ("61 * * * *", "invalid"),
        ("0 6 * * * *", "five fields"),
        ("every day", "five fields"),
    ],
)
def test_bad_cron_is_a_config_error(expr: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_cron(expr)


def test_unknown_time_zone_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown time zone 'Mars/Olympus'"):
        check_cron("0 6 * * *", "Mars/Olympus")


def test_check_cron_normalises_spaces() -> None:
    assert check_cron("  0  6 * *   1-5 ") == "0 6 * * 1-5"
    assert latest_slot("0 6 * * 1-5", "UTC", at("2026-03-01T12:00:00")) == at("2026-02-27T06:00:00")
