"""The rate budget of each Braze workspace, shared by every run of one home.

Braze counts the requests of a workspace (its endpoint and key) together,
whoever sends them; so the pace belongs to the workspace, not to a run.
``rate_budgets`` holds one row per workspace: what its answers said of the
limit (``X-RateLimit-Limit``, ``-Remaining``, ``-Reset``), the window length
learned from two successive resets, a pause every run honours (a
``Retry-After``), and ``next_slot``: the instant up to which send times are
already handed out.

A run reserves a few send times at once (:func:`reserve`): the next ``count``
slots after ``next_slot``, ``1 / rate`` seconds apart, in one short
transaction that takes the write lock first (SQLite serialises writers, so
two runs never get the same slots). Nothing is held between transactions:
a run that dies leaves at most the slots it reserved unused, a fraction of
a second, and no lock. Times are wall-clock epoch seconds, the unit of
``X-RateLimit-Reset``, so every process of the host agrees on them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import sqlalchemy as sa

from cohortsync.catalog.db import metadata

rate_budgets = sa.Table(
    "rate_budgets",
    metadata,
    sa.Column("workspace", sa.String, primary_key=True),
    sa.Column("request_limit", sa.Integer, nullable=True),
    sa.Column("window_s", sa.Float, nullable=True),
    sa.Column("remaining", sa.Integer, nullable=True),
    sa.Column("reset_at", sa.Float, nullable=True),
    sa.Column("next_slot", sa.Float, nullable=False, default=0.0),
    sa.Column("paused_until", sa.Float, nullable=False, default=0.0),
    sa.Column("updated_at", sa.Float, nullable=False),
)

# Pace a little under the announced rate: send times drift by a few
# milliseconds on the way, and a request that lands in the next window
# counts there.
HEADROOM = 0.96
# Below this many seconds to the reset, Remaining is too coarse to pace by:
# a window of a second is paced by Limit and the window's length alone.
REMAINING_MATTERS_S = 10.0
# Before a window's length is known, what remains is spread over at least this long.
UNKNOWN_WINDOW_FLOOR_S = 1.0
# Two resets closer than this are one window seen through clock jitter.
MIN_WINDOW_S = 0.5


@dataclass(frozen=True)
class Seen:
    """What a run's answers said of the limit: the newest window, its lowest Remaining."""

    limit: int
    remaining: int
    reset_at: float


@dataclass(frozen=True)
class Reservation:
    """``count`` send times, ``interval`` seconds apart from ``start`` (epoch seconds).

    ``interval`` is 0 while the workspace's limit is unknown: nothing to pace by.
    """

    start: float
    interval: float
    count: int
    rate: float | None

    @property
    def end(self) -> float:
        return self.start + self.count * self.interval

    def times(self) -> list[float]:
        return [self.start + i * self.interval for i in range(self.count)]


def pacing_rate(
    limit: int | None,
    window_s: float | None,
    remaining: int | None,
    reset_at: float | None,
    now: float,
) -> float | None:
    """Requests per second the workspace allows now, or ``None`` when nothing says.

    With the window's length known: ``Limit / window``, lowered to what
    Remaining leaves for the rest of a long window (other clients of the
    workspace may have spent part of it). Before the length is known, what
    remains spread over the time to the reset (a second at least).
    """
    if limit is None or limit <= 0:
        return None
    to_reset = None if reset_at is None else reset_at - now
    if window_s:
        rate = limit / window_s
        if remaining is not None and to_reset is not None and to_reset >= REMAINING_MATTERS_S:
            rate = min(rate, max(remaining, 1) / to_reset)
        return rate * HEADROOM
    if remaining is None or to_reset is None or to_reset <= 0:
        return None
    # Remaining may be a little old by now: near a reset, spread it over a second at least
    return max(remaining, 1) / max(to_reset, UNKNOWN_WINDOW_FLOOR_S) * HEADROOM


@dataclass
class _State:
    """One workspace's row, as read and about to be written."""

    request_limit: int | None = None
    window_s: float | None = None
    remaining: int | None = None
    reset_at: float | None = None
    next_slot: float = 0.0
    paused_until: float = 0.0
    updated_at: float = -math.inf

    def take_in(self, seen: Seen | None, now: float) -> None:
        """Merge what a run's answers said; a window's length learned from two resets.

        The length of a window is the distance between two successive resets,
        taken only when the row was touched less than half that distance ago:
        a gap long enough to hide a whole window between the two would be at
        least that long.
        """
        if seen is None or seen.reset_at <= now:  # nothing new, or a window already over
            return
        stored = self.reset_at
        if stored is None or seen.reset_at > stored + MIN_WINDOW_S:  # a new window
            if stored is not None and now - self.updated_at < (seen.reset_at - stored) / 2:
                length = round(seen.reset_at - stored, 3)
                self.window_s = length if self.window_s is None else min(length, self.window_s)
            self.reset_at, self.remaining = seen.reset_at, seen.remaining
            self.request_limit = seen.limit
        elif abs(seen.reset_at - stored) <= MIN_WINDOW_S:  # the same window: the lowest count
            if self.remaining is None:
                self.remaining = seen.remaining
            self.remaining = min(self.remaining, seen.remaining)
            self.request_limit = seen.limit

    def values(self) -> dict[str, float | int | None]:
        return {
            "request_limit": self.request_limit,
            "window_s": self.window_s,
            "remaining": self.remaining,
            "reset_at": self.reset_at,
            "next_slot": self.next_slot,
            "paused_until": self.paused_until,
            "updated_at": self.updated_at,
        }


def reserve(
    catalog: sa.Engine,
    workspace: str,
    count: int,
    *,
    now: float,
    seen: Seen | None = None,
    paused_until: float = 0.0,
) -> Reservation:
    """Hand out the workspace's next ``count`` send times, after taking in ``seen``.

    ``paused_until`` is a ``Retry-After`` the run was given: no run sends
    before it. Idle time is not saved up: the first slot is never before
    ``now``, so a workspace left alone does not allow a burst.
    """
    try:
        return _reserve(catalog, workspace, count, now=now, seen=seen, paused_until=paused_until)
    except sa.exc.IntegrityError:  # another run created the row first (PostgreSQL): use it
        return _reserve(catalog, workspace, count, now=now, seen=seen, paused_until=paused_until)


def _reserve(
    catalog: sa.Engine,
    workspace: str,
    count: int,
    *,
    now: float,
    seen: Seen | None,
    paused_until: float,
) -> Reservation:
    table = rate_budgets
    with catalog.begin() as conn:
        # Take SQLite's write lock before reading, so the read-then-write is atomic.
        conn.execute(table.update().where(sa.false()).values(workspace=table.c.workspace))
        row = conn.execute(
            sa.select(table).where(table.c.workspace == workspace).with_for_update()
        ).first()
        state = _State()
        if row is not None:
            state = _State(**{k: v for k, v in row._asdict().items() if k != "workspace"})
        state.take_in(seen, now)
        state.paused_until = max(state.paused_until, paused_until)
        rate = pacing_rate(
            state.request_limit, state.window_s, state.remaining, state.reset_at, now
        )
        start = max(now, state.paused_until)
        interval = 0.0
        if rate is not None:
            interval = 1.0 / rate
            start = max(start, state.next_slot)
            if state.remaining is not None and state.remaining <= 0 and state.reset_at:
                start = max(start, state.reset_at)  # the window is spent: wait for the next
            state.next_slot = start + count * interval
        state.updated_at = now
        if row is None:
            conn.execute(table.insert().values(workspace=workspace, **state.values()))
        else:
            where = table.c.workspace == workspace
            conn.execute(table.update().where(where).values(**state.values()))
    return Reservation(start, interval, count, rate)


def give_back(catalog: sa.Engine, workspace: str, reservation: Reservation, unused: int) -> None:
    """Return the last ``unused`` slots of ``reservation`` when no one reserved after them.

    A run that ends early hands its tail to the next reservation; a tail
    another run already reserved past stays spent (it was never used twice).
    """
    if unused <= 0 or reservation.interval == 0:
        return
    table = rate_budgets
    first_unused = reservation.end - unused * reservation.interval
    with catalog.begin() as conn:
        conn.execute(
            table.update()
            .where(
                table.c.workspace == workspace,
                sa.func.abs(table.c.next_slot - reservation.end) < 1e-6,
            )
            .values(next_slot=first_unused)
        )


def get_budget(catalog: sa.Engine, workspace: str) -> dict[str, object] | None:
    """The stored row of ``workspace``, or ``None``."""
    with catalog.connect() as conn:
        row = conn.execute(
            sa.select(rate_budgets).where(rate_budgets.c.workspace == workspace)
        ).first()
    return None if row is None else row._asdict()
