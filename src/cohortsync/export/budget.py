"""Pacing by the workspace's rate budget, shared through the catalog by every run.

Braze limits a workspace, not a run: several exports at the same minute
against one workspace (activations of one schedule, a CLI run beside the
scheduler, the console) share its requests per hour. :class:`SharedBudget`
paces one run by the workspace's row in the catalog
(:mod:`cohortsync.catalog.rate_budgets`): it reserves a few send times at
once (about :data:`GRANT_S` of the workspace's rate, so one short
transaction serves several requests), hands them to its requests in order,
and carries what the answers said of the limit (``X-RateLimit-*``) and any
``Retry-After`` into the next reservation, where every other run reads
them. Until an answer has announced the limit there is nothing to pace by,
and requests go out as the concurrency allows.

A send time that its run could not use in time is dropped rather than used
late: late requests bunch up, and a bunch can spill into the next window.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress

import sqlalchemy as sa

from cohortsync.catalog import rate_budgets
from cohortsync.catalog.rate_budgets import Reservation, Seen
from cohortsync.export.spec import Destination
from cohortsync.identity import key_fingerprint, normalize_endpoint

# A reservation covers this much of the workspace's rate.
GRANT_S = 0.1
MAX_GRANT = 32
# Until the limit is known, this many requests go out per reservation.
UNPACED_GRANT = 4
# A send time missed by more than this is dropped.
LATE_S = 0.05

Sleep = Callable[[float], Awaitable[None]]


def workspace_of(destination: Destination) -> str:
    """The rate budget's key: the normalised endpoint and the key's fingerprint."""
    fingerprint = key_fingerprint(destination.data_import_key)
    return f"{normalize_endpoint(destination.endpoint)}|{fingerprint}"


class SharedBudget:
    """Paces one run's requests by its workspace's row in the catalog.

    The same interface as :class:`cohortsync.export.client.RateLimiter`:
    :meth:`acquire` before each attempt, :meth:`update` with each answer's
    headers, :meth:`pause` on a ``Retry-After``, :meth:`close` at the end.
    ``wall_clock`` is epoch seconds (the catalog's times are); ``concurrency``
    answers how many requests the run may have in flight, which bounds a
    reservation.
    """

    def __init__(
        self,
        catalog: sa.Engine,
        workspace: str,
        *,
        concurrency: Callable[[], int] = lambda: MAX_GRANT,
        wall_clock: Callable[[], float] = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._catalog = catalog
        self.workspace = workspace
        self._concurrency = concurrency
        self._clock = wall_clock
        self._sleep = sleep
        self._slots: deque[float] = deque()
        self._reservation: Reservation | None = None
        self._seen: Seen | None = None
        self._paused_until = 0.0
        self._lock = asyncio.Lock()
        self.pending = 0  # the RateLimiter interface; a shared pace does not use it
        self.waited = 0.0
        self.reservations = 0
        self.dropped = 0

    def update(self, headers: Mapping[str, str]) -> None:
        """Keep what an answer said of the limit, for the next reservation."""
        limit = _number(headers.get("X-RateLimit-Limit"))
        remaining = _number(headers.get("X-RateLimit-Remaining"))
        reset = _number(headers.get("X-RateLimit-Reset"))
        if limit is None or remaining is None or reset is None:
            return
        if reset < 1_000_000_000:  # seconds from now, not an epoch
            reset = self._clock() + reset
        seen = self._seen
        if seen is None or reset > seen.reset_at + rate_budgets.MIN_WINDOW_S:
            self._seen = Seen(int(limit), int(remaining), reset)
        elif abs(reset - seen.reset_at) <= rate_budgets.MIN_WINDOW_S:
            self._seen = Seen(int(limit), min(seen.remaining, int(remaining)), seen.reset_at)

    def pause(self, seconds: float) -> None:
        """Hold every run of the workspace for ``seconds`` (a ``Retry-After``)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)
        self._slots.clear()  # they fall inside the pause; the next reservation carries it

    async def acquire(self) -> float:
        """Wait for this request's send time; returns how long it waited."""
        async with self._lock:
            while True:
                now = self._clock()
                paced = self._reservation is not None and self._reservation.interval > 0
                while paced and self._slots and self._slots[0] < now - LATE_S:
                    self._slots.popleft()
                    self.dropped += 1
                if self._slots:
                    slot = self._slots.popleft()
                    break
                await self._reserve(now)
        delay = max(0.0, slot - self._clock())
        if delay > 0:
            self.waited += delay
            await self._sleep(delay)
        return delay

    async def _reserve(self, now: float) -> None:
        rate = self._reservation.rate if self._reservation is not None else None
        if rate is None:  # first the few that learn the limit, then as many as can be in flight
            count = (
                UNPACED_GRANT
                if self._reservation is None
                else max(UNPACED_GRANT, min(MAX_GRANT, self._concurrency()))
            )
        else:
            count = max(1, min(MAX_GRANT, math.ceil(rate * GRANT_S), self._concurrency()))
        seen, self._seen = self._seen, None
        reservation = await asyncio.to_thread(
            rate_budgets.reserve,
            self._catalog,
            self.workspace,
            count,
            now=now,
            seen=seen,
            paused_until=self._paused_until,
        )
        self.reservations += 1
        self._reservation = reservation
        self._slots.extend(reservation.times())

    async def close(self) -> None:
        """Hand the send times this run will not use back, when no one reserved after them."""
        if self._reservation is not None and self._slots:
            with suppress(sa.exc.DBAPIError):  # a busy catalog: the slots just go unused
                await asyncio.to_thread(
                    rate_budgets.give_back,
                    self._catalog,
                    self.workspace,
                    self._reservation,
                    len(self._slots),
                )
        self._slots.clear()


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None
