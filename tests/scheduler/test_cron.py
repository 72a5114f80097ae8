"""The next slots a schedule's form shows: in the schedule's zone, across a DST change."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cohortsync.errors import ConfigError
from cohortsync.jobs.cron import upcoming_slots


def test_upcoming_slots_are_local_times_of_the_zone_across_a_dst_change() -> None:
    # Paris leaves summer time on 2026-10-25: 06:00 local is 04:00 UTC, then 05:00 UTC.
    after = datetime(2026, 10, 23, 12, 0, tzinfo=UTC)
    slots = upcoming_slots("0 6 * * *", "Europe/Paris", 3, after=after)
    assert [slot.isoformat() for slot in slots] == [
        "2026-10-24T06:00:00+02:00",
        "2026-10-25T06:00:00+01:00",
        "2026-10-26T06:00:00+01:00",
    ]


def test_upcoming_slots_give_as_many_as_asked_even_for_rare_dates() -> None:
    after = datetime(2026, 12, 1, tzinfo=UTC)
    assert len(upcoming_slots("0 0 29 2 *", "UTC", 3, after=after)) == 3  # leap days come back
    assert upcoming_slots("*/15 * * * *", "UTC", 0, after=after) == []


def test_an_unknown_zone_is_refused() -> None:
    with pytest.raises(ConfigError, match="Mars/Olympus"):
        upcoming_slots("0 6 * * *", "Mars/Olympus", 3)
