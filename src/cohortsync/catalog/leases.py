"""Run leases of saved jobs: at most one run of a job at a time, across processes.

``job_leases`` holds at most one row per job (``"query:NAME"``,
``"activation:NAME"``) while something runs it. A run must win the lease
first (an atomic conditional insert/update), so two schedulers, or a
scheduler and a manual ``query run``, never run the same job at once. A
lease carries its holder's host and pid and an expiry that the holder renews
while it works; a lease whose holder died (expired, or a dead pid on this
host) is taken over. :mod:`cohortsync.jobs.leases` holds a lease around a
run and renews it; this module is its SQL.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from cohortsync.catalog.db import metadata, stored_utc, utc_naive
from cohortsync.catalog.rows import delete_rows, first_row, update_rows

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
    acquired, expires = stored_utc(data["acquired_at"]), stored_utc(data["expires_at"])
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
    engine: sa.Engine,
    job: str,
    owner: str,
    *,
    now: datetime,
    ttl: timedelta,
    replacing: Lease | None = None,
) -> Lease | None:
    """Take the lease of ``job`` for ``owner``; ``None`` when someone else holds it.

    With ``replacing`` (a stale lease the caller found, :func:`abandoned_leases`)
    the lease is taken only if that very lease is still recorded: once another
    process took it over, or took it over and finished, the job is not the
    caller's to run again.

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
            if replacing is not None:
                return None
            conn.execute(job_leases.insert().values(job=job, **values))
            return lease
        current = _lease(row)
        if replacing is not None and current.owner != replacing.owner:
            return None
        if current.owner != owner and not _is_stale(current, now):
            return None
        conn.execute(job_leases.update().where(job_leases.c.job == job).values(**values))
        return lease


def renew_lease(engine: sa.Engine, lease: Lease, *, now: datetime, ttl: timedelta) -> bool:
    """Push the expiry of a held lease; ``False`` when it was lost to someone else."""
    expires_at = utc_naive(now + ttl)
    return update_rows(engine, job_leases, _held(lease), expires_at=expires_at) > 0


def release_lease(engine: sa.Engine, lease: Lease) -> None:
    """Give the lease back (only if still ours)."""
    delete_rows(engine, job_leases, _held(lease))


def _held(lease: Lease) -> sa.ColumnElement[bool]:
    """The row of ``lease`` while its owner still holds it."""
    return sa.and_(job_leases.c.job == lease.job, job_leases.c.owner == lease.owner)


def abandoned_leases(engine: sa.Engine, role: str, *, now: datetime) -> list[Lease]:
    """The leases that processes of ``role`` (``"scheduler"``) left behind when they died.

    A lease is deleted when its run ends, however it ends, so a stale one
    means its holder was killed in the middle of the run.
    """
    prefix = f"{role}@"
    with engine.connect() as conn:
        rows = conn.execute(sa.select(job_leases).where(job_leases.c.owner.startswith(prefix)))
        leases = [_lease(row) for row in rows]
    return [lease for lease in leases if _is_stale(lease, now)]


def get_lease(engine: sa.Engine, job: str) -> Lease | None:
    """The lease currently recorded for ``job`` (possibly stale)."""
    row = first_row(engine, job_leases, job_leases.c.job == job)
    return None if row is None else _lease(row)
