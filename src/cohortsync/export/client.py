"""The Braze partner cohort import API client: retries by status class, pacing.

Spec section 3 is the policy: 429, 5xx, 423 and network errors are retried
with exponential backoff and full jitter, never sooner than the server's
``Retry-After``; 400 and 401 (and any other 4xx) stop the run at once with the
server's message. A :class:`RateLimiter` reads ``X-RateLimit-*`` headers and
spreads what is left of the window over the requests still to send, so a run
stays under the announced limit instead of bouncing off it.

The destination's type decides the base URL and the authentication: the
partner API's keys travel in request bodies under ``/partners/{partner}``;
a ``rest-attribute`` destination's REST API key travels in the
``Authorization: Bearer`` header of requests to the endpoint's own paths
(:mod:`cohortsync.export.sinks` builds the bodies of either). Error messages
go through :meth:`redact`: Braze echoes the client secret in some 401 messages.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
from pydantic_settings import BaseSettings, SettingsConfigDict

from cohortsync import secrets
from cohortsync.errors import DestinationRefused, RetriableError, RetriesExhausted
from cohortsync.export.spec import REST_ATTRIBUTE, Destination

RETRIABLE_STATUSES = frozenset({408, 423, 429})

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
Jitter = Callable[[float, float], float]


class RetryPolicy(BaseSettings):
    """How hard to try; ``COHORTSYNC_HTTP_*`` environment variables override.

    ``max_attempts`` counts the first try. Delays grow as
    ``backoff_base * 2**(attempt - 1)`` capped at ``backoff_max`` seconds, with
    full jitter; ``timeout`` bounds one request.
    """

    model_config = SettingsConfigDict(env_prefix="COHORTSYNC_HTTP_", extra="ignore")

    max_attempts: int = 8
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    timeout: float = 60.0

    def backoff(
        self, attempt: int, retry_after: float | None, *, jitter: Jitter = random.uniform
    ) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based).

        ``jitter(low, high)`` draws the delay; tests pass a fixed one.
        """
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        delay = jitter(0, ceiling)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay


class RateLimiter:
    """Paces requests by the server's ``X-RateLimit-Limit/Remaining/Reset``.

    When the requests still to send fit in what remains of the window, there
    is no wait. Otherwise requests are spaced evenly over the time left until
    Reset, and when Remaining reaches 0 everyone waits for the reset.
    A ``Retry-After`` pauses every sender, not just the one that got it.

    ``clock`` (monotonic seconds), ``wall_clock`` (epoch seconds, the unit of
    ``X-RateLimit-Reset``) and the async ``sleep`` default to the real ones;
    tests inject fakes so that pacing costs no real time.
    """

    def __init__(
        self,
        *,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._clock = clock
        self._wall_clock = wall_clock
        self._sleep = sleep
        self.remaining: int | None = None
        self.reset_at: float | None = None  # wall-clock epoch seconds
        self.pending = 0  # requests the run still has to send
        self._paused_until = 0.0  # monotonic
        self._next_slot = 0.0  # monotonic
        self._lock = asyncio.Lock()
        self.waited = 0.0

    def update(self, headers: Mapping[str, str]) -> None:
        """Take in a response's rate-limit headers, when it has them."""
        remaining = _number(headers.get("X-RateLimit-Remaining"))
        reset = _number(headers.get("X-RateLimit-Reset"))
        if remaining is None:
            return
        if reset is not None and reset < 1_000_000_000:  # seconds from now, not an epoch
            reset = self._wall_clock() + reset
        if reset is not None and reset != self.reset_at:
            self.remaining, self.reset_at = int(remaining), reset  # a new window
        elif self.remaining is None:
            self.remaining = int(remaining)
        else:  # responses arrive out of order: trust the lowest count
            self.remaining = min(self.remaining, int(remaining))

    def pause(self, seconds: float) -> None:
        """Hold every sender for ``seconds`` (a ``Retry-After``)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    async def acquire(self) -> None:
        """Wait for this request's turn."""
        async with self._lock:
            delay = self._delay()
            if delay > 0:
                self.waited += delay
                await self._sleep(delay)
            self._next_slot = self._clock() + self._interval()
            if self.remaining is not None:
                self.remaining -= 1
            self.pending = max(0, self.pending - 1)

    def _delay(self) -> float:
        now = self._clock()
        delay = max(0.0, self._paused_until - now)
        if self.remaining is None or self.reset_at is None:
            return delay
        to_reset = self.reset_at - self._wall_clock()
        if to_reset <= 0:
            self.remaining = self.reset_at = None  # the window is over
            return delay
        if self.remaining <= 0:
            return max(delay, to_reset + 0.05)
        return max(delay, self._next_slot - now)

    def _interval(self) -> float:
        if self.remaining is None or self.reset_at is None or self.remaining >= self.pending:
            return 0.0
        return max(0.0, self.reset_at - self._wall_clock()) / max(1, self.remaining)


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def parse_retry_after(value: str | None, *, now: Clock = time.time) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date (measured from ``now()``)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now())


@dataclass
class ClientStats:
    """Requests sent (every attempt) and how many of them were retries."""

    requests: int = 0
    retries: int = 0


class PartnerClient:
    """Posts to one destination's partner API; use as an async context manager.

    Args:
        destination: endpoint, partner and keys.
        threads: connection pool size, the most requests in flight.
        policy: retry settings.
        limiter: the pacing shared by every sender of the run; without one, a
            limiter on this client's clocks and sleep.
        clock, wall_clock, sleep: monotonic seconds, epoch seconds and the async
            sleep used for backoff and pacing (the real ones by default).
        jitter: draws a backoff delay between its two bounds (``random.uniform``).
    """

    def __init__(
        self,
        destination: Destination,
        *,
        threads: int,
        policy: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        jitter: Jitter = random.uniform,
    ) -> None:
        self.destination = destination
        self.threads = threads
        self.policy = policy or RetryPolicy()
        self.limiter = limiter or RateLimiter(clock=clock, wall_clock=wall_clock, sleep=sleep)
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._jitter = jitter
        self.stats = ClientStats()
        self._session: aiohttp.ClientSession | None = None
        base = destination.endpoint.rstrip("/")
        self._auth_headers: dict[str, str] = {}
        if destination.type == REST_ATTRIBUTE:
            self.base_url = base
            self._auth_headers = {"Authorization": f"Bearer {destination.rest_api_key}"}
        else:
            self.base_url = f"{base}/partners/{quote(destination.partner, safe='')}"

    async def __aenter__(self) -> PartnerClient:
        connector = aiohttp.TCPConnector(limit=self.threads, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.policy.timeout),
            headers={
                "Content-Type": "application/json",
                "Accept": "application/json",
                **self._auth_headers,
            },
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._session is not None:
            await self._session.close()

    def redact(self, text: str) -> str:
        """``text`` with both keys masked: server messages may echo them."""
        for key in (self.destination.data_import_key, self.destination.partner_api_key):
            text = secrets.redact(text, key)
        return text

    def body(self, **fields: Any) -> bytes:
        """A JSON body with both keys and ``fields``."""
        return orjson.dumps(
            {
                "partner_api_key": self.destination.partner_api_key,
                "client_secret": self.destination.data_import_key,
                **fields,
            }
        )

    async def post(self, path: str, body: bytes, *, what: str) -> bytes:
        """POST ``body`` to ``path`` under the base URL, retrying as the policy says.

        Returns the body of the 2xx answer.

        Raises:
            DestinationRefused: 400, 401 or another non-retriable answer.
            RetriesExhausted: retriable failures lasted through every attempt.
        """
        url = f"{self.base_url}/{path}"
        attempt = 0
        while True:
            attempt += 1
            await self.limiter.acquire()
            try:
                return await self._post_once(url, body, what=what)
            except RetriableError as error:
                if attempt >= self.policy.max_attempts:
                    raise RetriesExhausted(
                        f"gave up on the {what} request to {url} after {attempt} attempts: "
                        f"{self.redact(str(error))}",
                        hint="check that the endpoint is up and reachable, then run the "
                        "export again",
                    ) from None
                if error.retry_after is not None:
                    self.limiter.pause(error.retry_after)
                self.stats.retries += 1
                self.limiter.pending += 1
                await self._sleep(
                    self.policy.backoff(attempt, error.retry_after, jitter=self._jitter)
                )

    async def _post_once(self, url: str, body: bytes, *, what: str) -> bytes:
        assert self._session is not None, "use PartnerClient as an async context manager"
        self.stats.requests += 1
        try:
            async with self._session.post(url, data=body) as response:
                self.limiter.update(response.headers)
                if 200 <= response.status < 300:
                    return await response.read()
                text = await response.text(errors="replace")
                status = response.status
                retry_after = parse_retry_after(
                    response.headers.get("Retry-After"), now=self._wall_clock
                )
        except (TimeoutError, aiohttp.ClientError, OSError) as error:
            reason = str(error) or type(error).__name__
            raise RetriableError(f"network error: {reason}") from error
        message = server_message(text)
        if status >= 500 or status in RETRIABLE_STATUSES:
            raise RetriableError(f"HTTP {status} {message}", retry_after=retry_after)
        hint = "the request was refused as invalid; fix the input named in the message"
        if status in (401, 403):
            hint = (
                "check the REST API key (Braze: Settings > APIs and Identifiers); it needs "
                "the users.track permission"
                if self.destination.type == REST_ATTRIBUTE
                else "check the data import key (Braze: Partner Integrations > Technology "
                "Partners) and the partner API key (COHORTSYNC_PARTNER_API_KEY)"
            )
        raise DestinationRefused(
            f"{url} refused the {what} request: HTTP {status} {self.redact(message)}",
            status=status,
            hint=hint,
        )


def server_message(text: str) -> str:
    """The ``message`` (and ``errors``) of a Braze error body, else its first line."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        stripped = text.strip()
        return stripped.splitlines()[0][:300] if stripped else "(empty body)"
    if isinstance(data, dict) and "message" in data:
        message = str(data["message"])
        errors = data.get("errors")
        if errors:
            message += (
                f" ({'; '.join(str(e) for e in errors)})"
                if isinstance(errors, list)
                else f" ({errors})"
            )
        return message
    return text.strip()[:300]
