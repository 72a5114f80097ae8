"""How many requests a run keeps in flight: a fixed count, or found by AIMD.

With ``--threads auto`` the run starts with :data:`START` requests in flight
and looks at each round of answers (as many as it has in flight, about one
round trip). A round that came back as fast as the quickest recent ones, and
in which most requests did not wait for the workspace's pace, adds one
request in flight (additive increase): more would be sent sooner. A 429, or a round
whose typical answer took more than twice the quickest recent one (the
server slows down under the load), halves it (multiplicative decrease), at
most once a round. A round where most requests waited for the pace leaves it
as it is: the rate budget, not the concurrency, holds the run back then (a
few waiting is not enough: a run with just enough in flight misses send
times whenever an answer is a little late).

"The quickest recent" is the fastest answer of the last :data:`MEMORY`
rounds, so a server that became slower for good becomes the new measure
after a while, instead of holding the run at one request for ever.

A fixed count (``--threads 8``) keeps exactly that many in flight whatever
the answers; both report the highest and the last count.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from cohortsync.definitions.fields import MAX_THREADS, ThreadCount

START = 2
# A round this much slower than the quickest recent answer is the server slowing down;
# the absolute allowance keeps sub-millisecond local answers from looking slow.
SLOWER = 2.0
SLOWER_ALLOWANCE_S = 0.01
# The round waited for the pace when a request waited longer than this for its slot.
PACED_S = 0.002
MEMORY = 20


class Concurrency:
    """The requests a run may have in flight now; see the module docstring.

    Use :meth:`slot` around one attempt, and :meth:`answered` with how it went.
    """

    def __init__(
        self,
        threads: ThreadCount,
        *,
        ceiling: int = MAX_THREADS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.adaptive = threads == "auto"
        self.limit = START if isinstance(threads, str) else threads
        self.ceiling = ceiling if self.adaptive else self.limit
        self.highest = self.limit
        self.in_flight = 0
        self._clock = clock
        self._freed = asyncio.Condition()
        self._round: list[float] = []
        self._round_paced = 0
        self._quickest: deque[float] = deque(maxlen=MEMORY)
        self._last_decrease = -float("inf")

    @property
    def connections(self) -> int:
        """The most connections the run can ever use."""
        return self.ceiling

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the requests in flight for the block."""
        async with self._freed:
            await self._freed.wait_for(lambda: self.in_flight < self.limit)
            self.in_flight += 1
        try:
            yield
        finally:
            async with self._freed:
                self.in_flight -= 1
                self._freed.notify_all()

    def answered(self, latency: float, *, throttled: bool, paced: bool) -> None:
        """One answer came back after ``latency`` seconds; a 429 when ``throttled``.

        ``paced``: the request waited for the workspace's pace before it went out.
        """
        if not self.adaptive:
            return
        if throttled:
            self._decrease(latency)
            return
        self._round.append(latency)
        self._round_paced += paced
        if len(self._round) < self.limit:
            return
        typical = statistics.median(self._round)
        self._quickest.append(min(self._round))
        quickest = min(self._quickest)
        if typical > SLOWER * quickest + SLOWER_ALLOWANCE_S:
            self._decrease(typical)
        elif 2 * self._round_paced < len(self._round) and self.limit < self.ceiling:
            self._grow(self.limit + 1)
        self._round, self._round_paced = [], 0

    def _grow(self, limit: int) -> None:
        # answered() is called inside a slot: its release wakes the waiters to the new limit
        self.limit = limit
        self.highest = max(self.highest, limit)

    def _decrease(self, latency: float) -> None:
        """Halve the limit, once per round trip: one overload answers several requests."""
        now = self._clock()
        if now - self._last_decrease < max(latency, 0.001):
            return
        self._last_decrease = now
        self.limit = max(1, self.limit // 2)
        self._round, self._round_paced = [], 0

    def to_dict(self) -> dict[str, int | str]:
        """What the report shows: the setting, the highest and the last count."""
        return {
            "threads": "auto" if self.adaptive else self.limit,
            "max": self.highest,
            "final": self.limit,
        }
