"""Schedules and run leases of saved jobs (saved queries and activations).

A *job* is named ``"KIND:NAME"`` (``"query:daily_vip"``, ``"activation:churn"``),
the same label the run history uses. Two tables:

- ``schedules``: one row per scheduled job: its cron expression and time zone,
  the ``anchor`` the first slot is counted from, the last slot the scheduler
  consumed and the outcome of the last run. Keeping the *slot* rather than the
  run time is what makes a missed job run once after downtime: every slot up
  to the latest one is consumed by a single run.
- ``job_leases``: at most one row per job while something runs it. A run must
  win the lease first (an atomic conditional insert/update), so two schedulers,
  or a scheduler and a manual ``query run``, never run the same job at once.
  A lease carries its holder's host and pid and an expiry that the holder
  renews while it works; a lease whose holder died (expired, or a dead pid on
  this host) is taken over.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from cohortsync.catalog.db import metadata

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

job_leases = sa.Table(
    "job_leases",
    metadata,
    sa.Column("job", sa.String, primary_key=True),
    sa.Column("owner", sa.String, nullable=False),
    sa.Column("host", sa.String, nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("acquired_at", sa.DateTime, nullable=False),
    sa.Column("expires_at", sa.DateTime, nullable=False),
)


def job_label(kind: str, name: str) -> str:
    """The job's label: ``"query:NAME"``; the run history uses the same one."""
    return f"{kind}:{name}"


def utc_naive(moment: datetime) -> datetime:
    """A UTC instant as the naive datetime SQLite stores (aware input is converted)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def as_utc(moment: datetime | None) -> datetime | None:
    """A stored naive UTC datetime as an aware one."""
    return None if moment is None else moment.replace(tzinfo=UTC)


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
    anchor = as_utc(data["anchor"])
    assert anchor is not None
    return Schedule(
        job=data["job"],
        kind=data["kind"],
        name=data["name"],
        cron=data["cron"],
        timezone=data["timezone"],
        anchor=anchor,
        last_slot=as_utc(data["last_slot"]),
        last_run_id=data["last_run_id"],
        last_status=data["last_status"],
        last_error=data["last_error"],
        last_finished_at=as_utc(data["last_finished_at"]),
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
    with engine.begin() as conn:
        result = conn.execute(schedules.delete().where(schedules.c.job == job_label(kind, name)))
        return result.rowcount > 0


def get_schedule(engine: sa.Engine, kind: str, name: str) -> Schedule | None:
    """The schedule of one job, or ``None`` when it has none."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(schedules).where(schedules.c.job == job_label(kind, name))
        ).first()
    return None if row is None else _schedule(row)


def list_schedules(engine: sa.Engine) -> list[Schedule]:
    """Every scheduled job, in job order."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(schedules).order_by(schedules.c.job)).all()
    return [_schedule(row) for row in rows]


def consume_slot(engine: sa.Engine, job: str, slot: datetime) -> None:
    """Mark every slot up to ``slot`` as consumed (done once for all missed slots)."""
    with engine.begin() as conn:
        conn.execute(
            schedules.update().where(schedules.c.job == job).values(last_slot=utc_naive(slot))
        )


def restore_slot(engine: sa.Engine, job: str, previous: datetime | None) -> None:
    """Hand a consumed slot back (an interrupted run): the job is due again at once."""
    with engine.begin() as conn:
        conn.execute(
            schedules.update()
            .where(schedules.c.job == job)
            .values(last_slot=utc_naive(previous) if previous else None)
        )


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
    with engine.begin() as conn:
        conn.execute(
            schedules.update()
            .where(schedules.c.job == job)
            .values(
                last_run_id=run_id,
                last_status=status,
                last_error=error,
                last_finished_at=utc_naive(finished_at),
            )
        )


# --- leases ---------------------------------------------------------------


@dataclass(frozen=True)
class Lease:
    """Who runs a job right now, until when."""

    job: str
    owner: str
    host: str
    pid: int
    acquired_at: datetime
    expires_at: datetime


def _lease(row: sa.Row[tuple[object, ...]]) -> Lease:
    data = row._mapping
    acquired, expires = as_utc(data["acquired_at"]), as_utc(data["expires_at"])
    assert acquired is not None and expires is not None
    return Lease(data["job"], data["owner"], data["host"], data["pid"], acquired, expires)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_stale(lease: Lease, now: datetime) -> bool:
    """Expired, or held by a process of this host that no longer exists."""
    if lease.expires_at <= now:
        return True
    return lease.host == socket.gethostname() and not _pid_alive(lease.pid)


def acquire_lease(
    engine: sa.Engine, job: str, owner: str, *, now: datetime, ttl: timedelta
) -> Lease | None:
    """Take the lease of ``job`` for ``owner``; ``None`` when someone else holds it.

    The check and the write happen in one ``BEGIN IMMEDIATE``-style transaction
    (SQLite serialises writers), so two processes cannot both win.
    """
    now_naive = utc_naive(now)
    lease = Lease(job, owner, socket.gethostname(), os.getpid(), now, now + ttl)
    values = {
        "owner": owner,
        "host": lease.host,
        "pid": lease.pid,
        "acquired_at": now_naive,
        "expires_at": utc_naive(lease.expires_at),
    }
    with engine.begin() as conn:
        # Take SQLite's write lock before reading, so the read-then-write is atomic.
        conn.exec_driver_sql("UPDATE job_leases SET job = job WHERE 0")
        row = conn.execute(sa.select(job_leases).where(job_leases.c.job == job)).first()
        if row is None:
            conn.execute(job_leases.insert().values(job=job, **values))
            return lease
        current = _lease(row)
        if current.owner != owner and not _is_stale(current, now):
            return None
        conn.execute(job_leases.update().where(job_leases.c.job == job).values(**values))
        return lease


def renew_lease(engine: sa.Engine, lease: Lease, *, now: datetime, ttl: timedelta) -> bool:
    """Push the expiry of a held lease; ``False`` when it was lost to someone else."""
    with engine.begin() as conn:
        result = conn.execute(
            job_leases.update()
            .where(job_leases.c.job == lease.job, job_leases.c.owner == lease.owner)
            .values(expires_at=utc_naive(now + ttl))
        )
        return result.rowcount > 0


def release_lease(engine: sa.Engine, lease: Lease) -> None:
    """Give the lease back (only if still ours)."""
    with engine.begin() as conn:
        conn.execute(
            job_leases.delete().where(
                job_leases.c.job == lease.job, job_leases.c.owner == lease.owner
            )
        )


def get_lease(engine: sa.Engine, job: str) -> Lease | None:
    """The lease currently recorded for ``job`` (possibly stale)."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(job_leases).where(job_leases.c.job == job)).first()
    return None if row is None else _lease(row)
