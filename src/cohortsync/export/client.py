"""The Braze partner cohort import API client: retries by status class, pacing.

Spec section 3 is the policy: 429, 5xx, 423 and network errors are retried
with exponential backoff and full jitter, never sooner than the server's
``Retry-After``; 400 and 401 (and any other 4xx) stop the run at once with the
server's message. A pacer reads the ``X-RateLimit-*`` headers and spaces the
requests so that they stay under the announced limit instead of bouncing off
it: an export shares its workspace's budget with every other run of the home
(:class:`cohortsync.export.budget.SharedBudget`); a client on its own (the
key check) spreads what is left of the window over the requests still to
send (:class:`RateLimiter`). How many requests are in flight at once is the
:class:`~cohortsync.export.concurrency.Concurrency`'s to say: a fixed count,
or ``auto``, grown and shrunk by how the answers come back.

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
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp
import orjson
import sqlalchemy as sa
from pydantic_settings import BaseSettings, SettingsConfigDict

from cohortsync import secrets
from cohortsync.definitions.fields import ThreadCount
from cohortsync.errors import DestinationRefused, RetriableError, RetriesExhausted
from cohortsync.export.budget import SharedBudget, workspace_of
from cohortsync.export.concurrency import PACED_S, Concurrency
from cohortsync.export.spec import REST_ATTRIBUTE, Destination

RETRIABLE_STATUSES = frozenset({408, 423, 429})
# Answers that say the server has more than it can take: fewer requests in flight.
BUSY_STATUSES = frozenset({429, 503})

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


class Pacer(Protocol):
    """What spaces a run's requests: :class:`RateLimiter` or a shared budget."""

    pending: int
    waited: float

    def update(self, headers: Mapping[str, str]) -> None: ...
    def pause(self, seconds: float) -> None: ...
    async def acquire(self) -> float: ...
    async def close(self) -> None: ...


class ServerBusy(RetriableError):
    """A 429 or a 503: retried like the others, and a reason to send less at once."""


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

    async def acquire(self) -> float:
        """Wait for this request's turn; returns how long it waited."""
        async with self._lock:
            delay = self._delay()
            if delay > 0:
                self.waited += delay
                await self._sleep(delay)
            self._next_slot = self._clock() + self._interval()
            if self.remaining is not None:
                self.remaining -= 1
            self.pending = max(0, self.pending - 1)
        return delay

    async def close(self) -> None:
        """Nothing to hand back: this pace is the client's alone."""

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
        threads: the most requests in flight, or ``auto``: as many as the
            answers allow (:mod:`cohortsync.export.concurrency`).
        policy: retry settings.
        limiter: the pacing shared by every sender of the run (an export's is
            its workspace's :class:`~cohortsync.export.budget.SharedBudget`);
            without one, the workspace's budget in ``catalog`` when given, else a
            :class:`RateLimiter` on this client's clocks and sleep.
        catalog: the home's catalog, where the workspace's rate budget is kept.
        clock, wall_clock, sleep: monotonic seconds, epoch seconds and the async
            sleep used for backoff and pacing (the real ones by default).
        jitter: draws a backoff delay between its two bounds (``random.uniform``).
    """

    def __init__(
        self,
        destination: Destination,
        *,
        threads: ThreadCount,
        policy: RetryPolicy | None = None,
        limiter: Pacer | None = None,
        catalog: sa.Engine | None = None,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        jitter: Jitter = random.uniform,
    ) -> None:
        self.destination = destination
        self.threads = threads
        self.concurrency = Concurrency(threads, clock=clock)
        self.policy = policy or RetryPolicy()
        if limiter is None and catalog is not None:
            limiter = SharedBudget(
                catalog,
                workspace_of(destination),
                concurrency=lambda: self.concurrency.limit,
                wall_clock=wall_clock,
                sleep=sleep,
            )
        self.limiter: Pacer = limiter or RateLimiter(
            clock=clock, wall_clock=wall_clock, sleep=sleep
        )
        self._clock = clock
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
        connector = aiohttp.TCPConnector(limit=self.concurrency.connections, ttl_dns_cache=300)
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
        try:
            await self.limiter.close()
        finally:
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

    async def post(self, path: str, body: bytes, *, what: str, in_slot: bool = False) -> bytes:
        """POST ``body`` to ``path`` under the base URL, retrying as the policy says.

        The request holds one place among the requests in flight through its
        retries (their backoff included); ``in_slot``: the caller holds it
        already (:func:`cohortsync.export.send.send_all` takes it before it
        takes the next batch). Returns the body of the 2xx answer.

        Raises:
            DestinationRefused: 400, 401 or another non-retriable answer.
            RetriesExhausted: retriable failures lasted through every attempt.
        """
        if not in_slot:
            async with self.concurrency.slot():
                return await self.post(path, body, what=what, in_slot=True)
        url = f"{self.base_url}/{path}"
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._attempt(url, body, what=what)
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

    async def _attempt(self, url: str, body: bytes, *, what: str) -> bytes:
        """One attempt: its send time, then the request.

        How long the answer took, and whether it was a 429 or a 503, tell the
        concurrency whether to grow or shrink.
        """
        waited = await self.limiter.acquire()
        started = self._clock()
        try:
            answer = await self._post_once(url, body, what=what)
        except ServerBusy:
            self.concurrency.answered(self._clock() - started, throttled=True, paced=True)
            raise
        self.concurrency.answered(self._clock() - started, throttled=False, paced=waited > PACED_S)
        return answer

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
        if status in BUSY_STATUSES:
            raise ServerBusy(f"HTTP {status} {message}", retry_after=retry_after)
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
