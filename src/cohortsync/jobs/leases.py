"""Leases: a run of a job holds its lease, so two runs of one job never overlap."""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import sqlalchemy as sa

from cohortsync.catalog import leases as catalog
from cohortsync.catalog.leases import Lease
from cohortsync.errors import ConfigError
from cohortsync.jobs.cron import Clock, utc_now

log = logging.getLogger(__name__)

LEASE_TTL = timedelta(minutes=10)


def new_owner(role: str) -> str:
    """A lease owner id unique to this process and call: ``role@host:pid/xxxx``."""
    return f"{role}@{socket.gethostname()}:{os.getpid()}/{uuid.uuid4().hex[:8]}"


@contextmanager
def held_lease(
    engine: sa.Engine,
    job: str,
    owner: str,
    *,
    clock: Clock = utc_now,
    ttl: timedelta = LEASE_TTL,
    lease: Lease | None = None,
) -> Iterator[Lease]:
    """Hold the lease of ``job`` for the duration of the block, renewing it meanwhile.

    Raises :class:`ConfigError` when another process holds it. Pass ``lease``
    when it was already taken (the scheduler takes it before submitting).
    """
    if lease is None:
        lease = catalog.acquire_lease(engine, job, owner, now=clock(), ttl=ttl)
    if lease is None:
        holder = catalog.get_lease(engine, job)
        who = f"{holder.owner} since {holder.acquired_at:%Y-%m-%d %H:%M:%SZ}" if holder else "?"
        raise ConfigError(
            f"job {job} is already running ({who})",
            hint="wait for that run to finish; a dead holder's lease expires by itself",
        )
    done = threading.Event()

    def keep() -> None:
        interval = max(ttl.total_seconds() / 3, 0.05)
        while not done.wait(interval):
            if not catalog.renew_lease(engine, lease, now=clock(), ttl=ttl):
                log.warning("lost the lease of %s", job)
                return

    keeper = threading.Thread(target=keep, name=f"lease:{job}", daemon=True)
    keeper.start()
    try:
        yield lease
    finally:
        done.set()
        keeper.join()
        catalog.release_lease(engine, lease)
