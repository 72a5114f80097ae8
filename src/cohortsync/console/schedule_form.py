"""What every schedule field of the console shows: its next runs, and the zones to pick from.

The Data Workbench's *Save* and Audience Studio's *Create Activation* both
take a cron expression and a time zone; both show the same number of next
runs (:func:`cohortsync.jobs.cron.upcoming_slots`) and offer the same zones.
"""

from __future__ import annotations

from functools import cache
from zoneinfo import available_timezones

# How many next runs a schedule field shows while it is typed.
UPCOMING_RUNS = 3


@cache
def time_zones() -> list[str]:
    """The IANA time zones this machine knows, in name order (read once)."""
    return sorted(available_timezones())
