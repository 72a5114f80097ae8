"""Cron arithmetic: validate expressions, find the slots due, and the clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from cronsim import CronSim

from cohortsync.catalog.leases import Lease
from cohortsync.catalog.schedules import Schedule
from cohortsync.definitions.invalid import RuleBroken

# CRON_HINT is re-exported: the scheduler's messages use the definitions' hint.
from cohortsync.definitions.schedule import CRON_HINT as CRON_HINT
from cohortsync.definitions.schedule import normalized_cron, time_zone
from cohortsync.errors import ConfigError

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The real clock: an aware UTC datetime."""
    return datetime.now(UTC)


def zone(name: str) -> tzinfo:
    """The time zone called ``name`` (IANA, e.g. ``Europe/Paris``).

    Raises:
        ConfigError: no such zone (the rule of :mod:`cohortsync.definitions.schedule`).
    """
    try:
        return time_zone(name)
    except RuleBroken as error:
        raise ConfigError(error.message, hint=error.hint) from None


def check_cron(expr: str, timezone: str = "UTC") -> str:
    """Validate a cron expression and time zone; returns the expression normalised.

    The rules are the saved definitions' (:mod:`cohortsync.definitions.schedule`),
    raised here as :class:`ConfigError`.
    """
    try:
        normalised = normalized_cron(expr)
        time_zone(timezone)
    except RuleBroken as error:
        raise ConfigError(error.message, hint=error.hint) from None
    return normalised


def latest_slot(expr: str, timezone: str, now: datetime) -> datetime | None:
    """The latest slot of ``expr`` at or before ``now``, in UTC."""
    local = now.astimezone(zone(timezone)).replace(microsecond=0) + timedelta(seconds=1)
    try:
        slot = next(CronSim(expr, local, reverse=True))
    except StopIteration:
        return None
    return slot.astimezone(UTC)


def next_slot(expr: str, timezone: str, after: datetime) -> datetime | None:
    """The first slot of ``expr`` strictly after ``after``, in UTC."""
    try:
        slot = next(CronSim(expr, after.astimezone(zone(timezone)).replace(microsecond=0)))
    except StopIteration:
        return None
    return slot.astimezone(UTC)


def upcoming_slots(
    expr: str, timezone: str, count: int, *, after: datetime | None = None
) -> list[datetime]:
    """The next ``count`` slots of ``expr`` after ``after`` (now), in ``timezone``'s local time.

    What a schedule's form shows while it is typed; fewer when the
    expression has no more slots.

    Raises:
        ConfigError: no such time zone.
    """
    local = zone(timezone)
    moment = after or utc_now()
    slots: list[datetime] = []
    while len(slots) < count:
        slot = next_slot(expr, timezone, moment)
        if slot is None:
            break
        slots.append(slot.astimezone(local))
        moment = slot
    return slots


@dataclass(frozen=True)
class DueJob:
    """A job to run now, and the slot its run consumes (the latest one).

    ``abandoned`` is the lease of a scheduler that died running the job: its
    slot is consumed already, and the run it left is continued now instead of
    at the job's next slot.
    """

    schedule: Schedule
    slot: datetime
    abandoned: Lease | None = None

    @property
    def job(self) -> str:
        return self.schedule.job


def due_jobs(scheduled: list[Schedule], now: datetime) -> list[DueJob]:
    """The jobs of ``scheduled`` that are due at ``now``, missed slots collapsed into one."""
    due = []
    for schedule in scheduled:
        slot = latest_slot(schedule.cron, schedule.timezone, now)
        if slot is not None and slot > schedule.consumed_until:
            due.append(DueJob(schedule, slot))
    return due


def abandoned_jobs(scheduled: list[Schedule], abandoned: list[Lease]) -> list[DueJob]:
    """The scheduled jobs whose scheduler died running them, due again at their consumed slot."""
    by_job = {lease.job: lease for lease in abandoned}
    return [
        DueJob(schedule, schedule.consumed_until, by_job[schedule.job])
        for schedule in scheduled
        if schedule.job in by_job
    ]


def next_run(schedule: Schedule, now: datetime) -> datetime | None:
    """When ``schedule`` runs next: now if a slot is waiting, else its next slot."""
    if due_jobs([schedule], now):
        return now
    return next_slot(schedule.cron, schedule.timezone, max(now, schedule.consumed_until))
