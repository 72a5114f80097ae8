"""Schedules of saved jobs (saved queries and activations).

A *job* is named ``"KIND:NAME"`` (``"query:daily_vip"``, ``"activation:churn"``),
the same label the run history and the leases (:mod:`cohortsync.catalog.leases`)
use. ``schedules`` holds one row per scheduled job: its cron expression and
time zone, the ``anchor`` the first slot is counted from, the last slot the
scheduler consumed and the outcome of the last run. Keeping the *slot* rather
than the run time is what makes a missed job run once after downtime: every
slot up to the latest one is consumed by a single run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from cohortsync.catalog.db import metadata, stored_utc, utc_naive
from cohortsync.catalog.rows import delete_rows, first_row, update_rows

schedules = sa.Table(
    "schedules",
    metadata,
    sa.Column("job", sa.String, primary_key=True),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("cron", sa.String, nullable=False),
    sa.Column("timezone", sa.String, nullable=False, default="UTC"),
    sa.Column("anchor", sa.DateTime, nullable=False),
    sa.Column("last_slot", sa.DateTime, nullable=True),
    sa.Column("last_run_id", sa.String, nullable=True),
    sa.Column("last_status", sa.String, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("last_finished_at", sa.DateTime, nullable=True),
)


def job_label(kind: str, name: str) -> str:
    """The job's label: ``"query:NAME"``; the run history uses the same one."""
    return f"{kind}:{name}"


@dataclass(frozen=True)
class Schedule:
    """One scheduled job as stored; datetimes are aware, in UTC."""

    job: str
    kind: str
    name: str
    cron: str
    timezone: str
    anchor: datetime
    last_slot: datetime | None
    last_run_id: str | None
    last_status: str | None
    last_error: str | None
    last_finished_at: datetime | None

    @property
    def consumed_until(self) -> datetime:
        """Slots at or before this instant are done: the last slot, else the anchor."""
        return self.last_slot or self.anchor


def _schedule(row: sa.Row[tuple[object, ...]]) -> Schedule:
    data = row._mapping
    return Schedule(
        job=data["job"],
        kind=data["kind"],
        name=data["name"],
        cron=data["cron"],
        timezone=data["timezone"],
        anchor=stored_utc(data["anchor"]),
        last_slot=stored_utc(data["last_slot"]),
        last_run_id=data["last_run_id"],
        last_status=data["last_status"],
        last_error=data["last_error"],
        last_finished_at=stored_utc(data["last_finished_at"]),
    )


def set_schedule(
    engine: sa.Engine,
    kind: str,
    name: str,
    cron: str,
    timezone: str = "UTC",
    *,
    now: datetime | None = None,
) -> bool:
    """Create or update the schedule of a job; returns whether anything changed.

    A new schedule is anchored at ``now``: its first run is its next slot, not
    a slot from the past. Changing the cron or time zone re-anchors it, so the
    new expression does not count slots it never had.
    """
    now = utc_naive(now or datetime.now(UTC))
    job = job_label(kind, name)
    with engine.begin() as conn:
        row = conn.execute(sa.select(schedules).where(schedules.c.job == job)).first()
        if row is None:
            conn.execute(
                schedules.insert().values(
                    job=job, kind=kind, name=name, cron=cron, timezone=timezone, anchor=now
                )
            )
            return True
        if row.cron == cron and row.timezone == timezone:
            return False
        conn.execute(
            schedules.update()
            .where(schedules.c.job == job)
            .values(cron=cron, timezone=timezone, anchor=now, last_slot=None)
        )
        return True


def clear_schedule(engine: sa.Engine, kind: str, name: str) -> bool:
    """Remove a job's schedule (the job stays); returns whether there was one."""
    return delete_rows(engine, schedules, schedules.c.job == job_label(kind, name)) > 0


def get_schedule(engine: sa.Engine, kind: str, name: str) -> Schedule | None:
    """The schedule of one job, or ``None`` when it has none."""
    row = first_row(engine, schedules, schedules.c.job == job_label(kind, name))
    return None if row is None else _schedule(row)


def list_schedules(engine: sa.Engine) -> list[Schedule]:
    """Every scheduled job, in job order."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(schedules).order_by(schedules.c.job)).all()
    return [_schedule(row) for row in rows]


def consume_slot(engine: sa.Engine, job: str, slot: datetime, *, seen: datetime | None) -> bool:
    """Mark every slot up to ``slot`` as consumed (done once for all missed slots).

    ``seen`` is the ``last_slot`` the caller read when it found the job due:
    the slot is consumed only if no one consumed one since, and the return
    says whether it was. Two schedulers may read the same due job; one of
    them can take its lease, run it and release the lease before the other
    reaches it, and the lease alone would then let the job run twice.
    """
    stored = utc_naive(seen) if seen is not None else None
    where = sa.and_(schedules.c.job == job, schedules.c.last_slot.is_not_distinct_from(stored))
    return update_rows(engine, schedules, where, last_slot=utc_naive(slot)) > 0


def restore_slot(engine: sa.Engine, job: str, previous: datetime | None) -> None:
    """Hand a consumed slot back (an interrupted run): the job is due again at once."""
    last_slot = utc_naive(previous) if previous else None
    update_rows(engine, schedules, schedules.c.job == job, last_slot=last_slot)


def record_outcome(
    engine: sa.Engine,
    job: str,
    *,
    run_id: str | None,
    status: str,
    error: str | None,
    finished_at: datetime,
) -> None:
    """Keep the outcome of a job's last run next to its schedule (for ``scheduler --list``)."""
    update_rows(
        engine,
        schedules,
        schedules.c.job == job,
        last_run_id=run_id,
        last_status=status,
        last_error=error,
        last_finished_at=utc_naive(finished_at),
    )
