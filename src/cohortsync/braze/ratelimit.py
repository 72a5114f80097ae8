"""Rate limits per (partner, workspace), in fixed windows, as Braze reports them.

Braze counts requests per hour and tells clients where they stand on every
response (``X-RateLimit-Limit``, ``-Remaining``, ``-Reset`` in UTC epoch
seconds). A fixed window aligned on the clock gives exactly those three
figures. Counters live in the service's memory: one process, one budget.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from cohortsync.errors import ConfigError

DEFAULT_REQUESTS_PER_HOUR = 250_000
_WINDOWS = {"second": 1, "minute": 60, "hour": 3600}
_SPEC = re.compile(r"^\s*(\d+)\s*(?:/\s*(second|minute|hour))?\s*$")


@dataclass(frozen=True)
class RateLimit:
    """``requests`` per ``window`` seconds."""

    requests: int = DEFAULT_REQUESTS_PER_HOUR
    window: int = 3600

    def __str__(self) -> str:
        unit = {v: k for k, v in _WINDOWS.items()}.get(self.window, f"{self.window}s")
        return f"{self.requests}/{unit}"


def parse_rate_limit(value: str | int | RateLimit) -> RateLimit:
    """``"250000/hour"`` (also ``/minute``, ``/second``; a bare number is per hour)."""
    if isinstance(value, RateLimit):
        return value
    if isinstance(value, int):
        if value < 1:
            raise ConfigError(f"rate limit {value} must be positive", hint="e.g. 250000/hour")
        return RateLimit(value, 3600)
    match = _SPEC.match(value)
    if not match or int(match.group(1)) < 1:
        raise ConfigError(
            f"cannot read the rate limit {value!r}", hint="write N/hour, N/minute or N/second"
        )
    return RateLimit(int(match.group(1)), _WINDOWS[match.group(2) or "hour"])


@dataclass(frozen=True)
class Decision:
    """One request's standing: allowed or not, and the three header values."""

    allowed: bool
    limit: int
    remaining: int
    reset: int
    now: float

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(1, math.ceil(self.reset - self.now)))
        return headers


@dataclass
class RateLimiter:
    """Counts requests per key in the current window; thread-safe."""

    limit: RateLimit = field(default_factory=RateLimit)
    clock: Callable[[], float] = time.time
    _counts: dict[Hashable, tuple[int, int]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def hit(self, key: Hashable) -> Decision:
        """Count one request for ``key``; refused ones are counted too."""
        now = self.clock()
        window_start = int(now // self.limit.window) * self.limit.window
        reset = window_start + self.limit.window
        with self._lock:
            start, used = self._counts.get(key, (window_start, 0))
            if start != window_start:
                used = 0
            used += 1
            self._counts[key] = (window_start, used)
            if len(self._counts) > 100_000:  # forget old windows of idle keys
                self._counts = {k: v for k, v in self._counts.items() if v[0] == window_start}
        allowed = used <= self.limit.requests
        remaining = max(0, self.limit.requests - used)
        return Decision(allowed, self.limit.requests, remaining, reset, now)


@dataclass
class RequestBudget:
    """One request's charge against the rate limit, counted exactly once.

    A request is charged to its workspace's budget once its credentials
    pass (:meth:`charge`); one that fails before that (a bad body, a wrong
    key) is charged to ``anonymous_key``, the budget of its partner (or of
    the REST API), when its answer's headers are made.
    """

    limiter: RateLimiter
    anonymous_key: Hashable
    decision: Decision | None = None

    def charge(self, key: Hashable) -> Decision:
        self.decision = self.limiter.hit(key)
        return self.decision

    def headers(self) -> dict[str, str]:
        """The ``X-RateLimit-*`` headers (and ``Retry-After`` when refused) of the answer."""
        if self.decision is None:
            self.decision = self.limiter.hit(self.anonymous_key)
        return self.decision.headers()
