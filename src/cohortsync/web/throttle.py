"""Failed logins slow down the next attempts, per account and per client address.

After :attr:`LoginThrottle.free_failures` failures in a row, each further
attempt must wait, and the wait doubles with every failure up to
:attr:`LoginThrottle.max_delay`. A success clears the account's count. The
counts live in the serving process: a restart forgets them, which is fine for
a tool that binds to 127.0.0.1 by default, and keeps the throttle free of
state on disk.

Both the account and the address are counted, so that guessing one account's
password from many addresses, or many accounts' from one address, are both
slowed down.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Failures:
    count: int = 0
    locked_until: float = 0.0


class LoginThrottle:
    """Counts failed logins and says how long the next attempt must wait."""

    def __init__(
        self,
        *,
        free_failures: int = 5,
        base_delay: float = 2.0,
        max_delay: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free_failures = free_failures
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._clock = clock
        self._failures: dict[str, _Failures] = {}
        self._lock = threading.Lock()

    def wait_seconds(self, user: str, address: str) -> float:
        """Seconds before ``user`` may try again from ``address``; 0 when now is fine."""
        now = self._clock()
        with self._lock:
            until = max(
                self._failures.get(key, _Failures()).locked_until
                for key in self._keys(user, address)
            )
        return max(0.0, until - now)

    def failed(self, user: str, address: str) -> None:
        """Record a failed attempt; beyond the free ones, the next attempt waits longer."""
        now = self._clock()
        with self._lock:
            for key in self._keys(user, address):
                failures = self._failures.setdefault(key, _Failures())
                failures.count += 1
                excess = failures.count - self.free_failures
                if excess >= 0:
                    delay = min(self.max_delay, self.base_delay * 2**excess)
                    failures.locked_until = now + delay

    def succeeded(self, user: str, address: str) -> None:
        """A good password: forget the account's and the address's failures."""
        with self._lock:
            for key in self._keys(user, address):
                self._failures.pop(key, None)

    @staticmethod
    def _keys(user: str, address: str) -> tuple[str, str]:
        return (f"user:{user.strip().lower()}", f"addr:{address}")
