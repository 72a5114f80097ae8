"""Cron arithmetic: validate expressions, find the slots due, and the clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from cohortsync.catalog.schedules import Schedule
from cohortsync.errors import ConfigError

Clock = Callable[[], datetime]

CRON_HINT = "use five fields 'minute hour day-of-month month day-of-week', e.g. '0 6 * * *'"


def utc_now() -> datetime:
    """The real clock: an aware UTC datetime."""
    return datetime.now(UTC)


def zone(name: str) -> tzinfo:
    """The time zone called ``name`` (IANA, e.g. ``Europe/Paris``)."""
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ConfigError(
            f"unknown time zone {name!r}", hint="use an IANA name such as 'Europe/Paris' or 'UTC'"
        ) from error


def check_cron(expr: str, timezone: str = "UTC") -> str:
    """Validate a cron expression and time zone; returns the expression normalised."""
    normalised = " ".join(expr.split())
    if len(normalised.split()) != 5:
        raise ConfigError(f"cron expression {expr!r} must have five fields", hint=CRON_HINT)
    try:
        next(CronSim(normalised, datetime.now(zone(timezone))))
    except CronSimError as error:
        raise ConfigError(f"cron expression {expr!r} is invalid: {error}", hint=CRON_HINT) from None
    except StopIteration:
        raise ConfigError(f"cron expression {expr!r} never fires", hint=CRON_HINT) from None
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


@dataclass(frozen=True)
class DueJob:
    """A job to run now, and the slot its run consumes (the latest one)."""

    schedule: Schedule
    slot: datetime

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


def next_run(schedule: Schedule, now: datetime) -> datetime | None:
    """When ``schedule`` runs next: now if a slot is waiting, else its next slot."""
    if due_jobs([schedule], now):
        return now
    return next_slot(schedule.cron, schedule.timezone, max(now, schedule.consumed_until))
