"""A schedule: a five-field cron expression read in an IANA time zone.

Saved queries and activations carry one (``schedule`` and ``timezone``);
the scheduler keeps its slots in the catalog's ``schedules`` table. A bad
expression or zone is refused when the definition is saved, not at 3 a.m.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from pydantic import AfterValidator, BaseModel, ConfigDict

from cohortsync.definitions.invalid import RuleBroken

CRON_HINT = "use five fields 'minute hour day-of-month month day-of-week', e.g. '0 6 * * *'"
ZONE_HINT = "use an IANA name such as 'Europe/Paris' or 'UTC'"


def time_zone(name: str) -> tzinfo:
    """The time zone called ``name``.

    Raises:
        RuleBroken: no such IANA zone.
    """
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise RuleBroken(f"unknown time zone {name!r}", hint=ZONE_HINT) from None


def normalized_cron(expr: str) -> str:
    """``expr`` with single spaces, if it is a cron expression that fires.

    Raises:
        RuleBroken: not five fields, a field cronsim refuses, or no slot ever.
    """
    normalized = " ".join(expr.split())
    if len(normalized.split()) != 5:
        raise RuleBroken(f"cron expression {expr!r} must have five fields", hint=CRON_HINT)
    problem = _cron_problem(normalized)
    if problem is not None:
        raise RuleBroken(f"cron expression {expr!r} {problem}", hint=CRON_HINT)
    return normalized


@lru_cache(maxsize=4096)
def _cron_problem(normalized: str) -> str | None:
    """What is wrong with a five-field expression, or None when it fires.

    Kept per expression: every saved job read from the catalog is checked
    again, and a list of a thousand activations shares a few expressions.
    A cron expression has no year, so whether it fires does not depend on
    when it is asked.
    """
    try:
        next(CronSim(normalized, datetime.now(UTC)))
    except CronSimError as error:
        return f"is invalid: {error}"
    except StopIteration:
        return "never fires"
    return None


def _zone_name(name: str) -> str:
    time_zone(name)
    return name


Cron = Annotated[str, AfterValidator(normalized_cron)]
TimeZone = Annotated[str, AfterValidator(_zone_name)]


class Schedule(BaseModel):
    """When a saved job runs: ``cron`` read in ``timezone``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cron: Cron
    timezone: TimeZone = "UTC"


class Scheduled(BaseModel):
    """The ``schedule`` and ``timezone`` fields of a saved job; no schedule runs on demand."""

    schedule: Cron | None = None
    timezone: TimeZone = "UTC"

    @property
    def scheduled(self) -> Schedule | None:
        """The schedule, or ``None`` for a job run only on demand."""
        if self.schedule is None:
            return None
        return Schedule(cron=self.schedule, timezone=self.timezone)
