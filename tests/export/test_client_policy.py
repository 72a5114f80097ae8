"""PartnerClient's status handling and pacing (spec section 3), on a fake clock.

The client talks real HTTP to the scripted partner server on 127.0.0.1, but
its clocks and its sleep are fakes: a sleep only records the seconds asked
for and moves the fake time on, so nothing here waits in real time. Each test
asserts on the sleeps the client requested.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
from collections.abc import Coroutine, Iterator
from typing import Any

import pytest

from cohortsync.errors import DestinationRefused, RetriesExhausted
from cohortsync.export.client import PartnerClient, RetryPolicy
from cohortsync.export.spec import Destination
from export.partner_server import CLIENT_SECRET, PARTNER_API_KEY, PartnerServer
from support import unused_port

EPOCH = 1_800_000_000.0  # the fake wall clock at the start of every test
USERS = "cohorts/users"


class FakeTime:
    """Monotonic and wall clocks that move only when the client sleeps."""

    def __init__(self) -> None:
        self.elapsed = 0.0
        self.sleeps: list[float] = []
        self.in_flight = 0  # requests under way, counted by InstantNetworkClient

    def monotonic(self) -> float:
        return self.elapsed

    def time(self) -> float:
        return EPOCH + self.elapsed

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        while self.in_flight:  # the network takes no fake time: let requests land first
            await asyncio.sleep(0.001)
        self.elapsed += seconds
        await asyncio.sleep(0)  # still a suspension point, as the real one is


class InstantNetworkClient(PartnerClient):
    """Counts requests in flight, so that fake time stands still while they travel."""

    fake: FakeTime

    async def _post_once(self, url: str, body: bytes, *, what: str) -> None:
        self.fake.in_flight += 1
        try:
            await super()._post_once(url, body, what=what)
        finally:
            self.fake.in_flight -= 1


class HighJitter:
    """Jitter that always draws the upper bound, and records the bounds asked."""

    def __init__(self) -> None:
        self.bounds: list[tuple[float, float]] = []

    def __call__(self, low: float, high: float) -> float:
        self.bounds.append((low, high))
        return high


@pytest.fixture
def server() -> Iterator[PartnerServer]:
    made = PartnerServer().start()
    yield made
    made.stop()


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


def make_client(
    endpoint: str,
    fake: FakeTime,
    *,
    jitter: Any = None,
    max_attempts: int = 8,
    backoff_max: float = 30.0,
    threads: int = 1,
) -> PartnerClient:
    destination = Destination(
        endpoint=endpoint, data_import_key=CLIENT_SECRET, partner_api_key=PARTNER_API_KEY
    )
    policy = RetryPolicy(
        max_attempts=max_attempts, backoff_base=0.5, backoff_max=backoff_max, timeout=5.0
    )
    client = InstantNetworkClient(
        destination,
        threads=threads,
        policy=policy,
        clock=fake.monotonic,
        wall_clock=fake.time,
        sleep=fake.sleep,
        jitter=jitter if jitter is not None else HighJitter(),
    )
    client.fake = fake
    return client


def changes(n: int = 1) -> dict[str, Any]:
    return {"cohort_id": "c", "cohort_changes": [{"user_ids": [f"u{n}"]}]}


def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coroutine)


async def post_users(client: PartnerClient, count: int = 1) -> None:
    async with client:
        for n in range(count):
            await client.post(USERS, client.body(**changes(n)), what="cohort users")


def statuses(server: PartnerServer) -> list[int]:
    return [r.status for r in server.users_requests(answered=False)]


# -- Retry-After ---------------------------------------------------------------


def test_429_waits_exactly_the_retry_after(server: PartnerServer, fake: FakeTime) -> None:
    server.script("users", 429, "Rate limited", Retry_After="7")
    client = make_client(server.url, fake, jitter=lambda low, high: low)
    run(post_users(client))
    assert fake.sleeps == [7.0]  # the backoff is never shorter; the pause adds nothing
    assert statuses(server) == [429, 201]
    assert (client.stats.requests, client.stats.retries) == (2, 1)


def test_retry_after_beats_a_shorter_backoff_but_not_a_longer_one(
    server: PartnerServer, fake: FakeTime
) -> None:
    server.script("users", 503, "Service Unavailable", Retry_After="0.2")
    server.script("users", 503, "Service Unavailable", Retry_After="3")
    run(post_users(make_client(server.url, fake)))
    assert fake.sleeps == [0.5, 3.0]  # max(backoff 0.5, 0.2), then max(backoff 1.0, 3)


def test_retry_after_as_an_http_date(server: PartnerServer, fake: FakeTime) -> None:
    date = email.utils.formatdate(EPOCH + 4, usegmt=True)
    server.script("users", 503, "Service Unavailable", Retry_After=date)
    run(post_users(make_client(server.url, fake, jitter=lambda low, high: low)))
    assert fake.sleeps == [4.0]
    assert statuses(server) == [503, 201]


def test_retry_after_pauses_every_sender(server: PartnerServer, fake: FakeTime) -> None:
    server.script("users", 429, "Rate limited", Retry_After="5")
    client = make_client(server.url, fake, jitter=lambda low, high: low)

    async def two_senders() -> None:
        async with client:
            first = client.post(USERS, client.body(**changes(1)), what="cohort users")
            await first
            # a second sender arriving while the pause holds waits for its end
            client.limiter.pause(5)
            await client.post(USERS, client.body(**changes(2)), what="cohort users")

    run(two_senders())
    assert fake.sleeps == [5.0, 5.0]


# -- X-RateLimit-* pacing --------------------------------------------------------


def rate_headers(remaining: int, reset: float) -> dict[str, str]:
    return {
        "X_RateLimit_Limit": "100",
        "X_RateLimit_Remaining": str(remaining),
        "X_RateLimit_Reset": f"{reset:.3f}",
    }


def test_remaining_0_waits_for_the_reset(server: PartnerServer, fake: FakeTime) -> None:
    server.script("users", 201, "success", **rate_headers(0, EPOCH + 10))
    client = make_client(server.url, fake)
    run(post_users(client, 2))
    assert fake.sleeps == [pytest.approx(10.05)]  # until Reset, plus a margin
    assert client.limiter.waited == pytest.approx(10.05)
    assert statuses(server) == [201, 201]


def test_reset_given_as_seconds_from_now(server: PartnerServer, fake: FakeTime) -> None:
    server.script("users", 201, "success", X_RateLimit_Remaining="0", X_RateLimit_Reset="12")
    run(post_users(make_client(server.url, fake), 2))
    assert fake.sleeps == [pytest.approx(12.05)]


def test_no_wait_while_the_requests_left_fit_in_the_window(
    server: PartnerServer, fake: FakeTime
) -> None:
    client = make_client(server.url, fake)
    client.limiter.pending = 5
    server.script("users", 201, "success", times=5, **rate_headers(50, EPOCH + 60))
    run(post_users(client, 5))
    assert fake.sleeps == []


def test_pacing_slows_down_as_remaining_nears_0(server: PartnerServer, fake: FakeTime) -> None:
    client = make_client(server.url, fake)
    client.limiter.pending = 20  # more to send than the window allows
    for remaining in (10, 8, 4, 2, 1):  # others share the quota: it falls faster than ours
        server.script("users", 201, "success", **rate_headers(remaining, EPOCH + 60))
    run(post_users(client, 6))
    # each gap is the time left until Reset over the requests Remaining allows
    assert fake.sleeps == pytest.approx(
        [
            60 / 10,  # Remaining 10 (of 19 to send) at t=0
            (60 - 6) / 8,  # Remaining 8 at t=6
            (60 - 12.75) / 4,  # Remaining 4 at t=12.75
            (60 - 24.5625) / 2,  # Remaining 2 at t=24.5625
        ]
    )
    assert fake.sleeps == sorted(fake.sleeps)  # the gaps grow as Remaining nears 0
    assert fake.elapsed < 60  # and never overshoot the window


def test_concurrent_senders_stay_under_the_announced_limit(
    server: PartnerServer, fake: FakeTime
) -> None:
    server.wall_clock = fake.time
    server.rate_limit = (8, 2.0)  # 8 requests per 2 s window, enforced with 429
    client = make_client(server.url, fake, threads=4)
    client.limiter.pending = 13

    async def twelve_at_once() -> None:
        async with client:  # as an export: the name call first, then the batches
            body = client.body(cohort_id="c", name="C", created_at="2027-01-01T00:00:00+00:00")
            await client.post("cohorts", body, what="cohort name")
            await asyncio.gather(
                *(
                    client.post(USERS, client.body(**changes(n)), what="cohort users")
                    for n in range(12)
                )
            )

    run(twelve_at_once())
    assert 429 not in statuses(server)
    assert len(server.users_requests()) == 12
    assert client.stats.retries == 0
    # 7 requests left after the name call: spaced over the window, then a wait for Reset
    assert fake.sleeps == pytest.approx([2 / 7] * 6 + [2.05 - 6 * 2 / 7])
    assert fake.elapsed >= 2.0


# -- backoff: 5xx, network errors, 423 -----------------------------------------


def test_5xx_retried_with_exponential_backoff(server: PartnerServer, fake: FakeTime) -> None:
    for status, message in [(500, "Internal"), (502, "Bad Gateway"), (503, "Unavailable")]:
        server.script("users", status, message)
    server.script("users", 504, "Gateway Timeout")
    jitter = HighJitter()
    client = make_client(server.url, fake, jitter=jitter)
    run(post_users(client))
    assert jitter.bounds == [(0, 0.5), (0, 1.0), (0, 2.0), (0, 4.0)]
    assert fake.sleeps == [0.5, 1.0, 2.0, 4.0]
    assert statuses(server) == [500, 502, 503, 504, 201]
    assert (client.stats.requests, client.stats.retries) == (5, 4)


def test_backoff_is_capped_and_real_jitter_stays_within_bounds(
    server: PartnerServer, fake: FakeTime
) -> None:
    server.script("users", 503, "Unavailable", times=7)
    rng = random.Random(7)
    client = make_client(server.url, fake, jitter=rng.uniform, backoff_max=3.0)
    run(post_users(client))
    ceilings = [0.5, 1.0, 2.0, 3.0, 3.0, 3.0, 3.0]
    assert len(fake.sleeps) == len(ceilings)
    assert all(0 <= slept <= ceiling for slept, ceiling in zip(fake.sleeps, ceilings, strict=True))
    assert len(set(fake.sleeps)) == len(fake.sleeps)  # jittered, not a fixed schedule


def test_default_jitter_is_full_and_bounded() -> None:
    policy = RetryPolicy(backoff_base=0.5, backoff_max=30.0)
    for attempt, ceiling in [(1, 0.5), (3, 2.0), (6, 16.0), (9, 30.0)]:
        delays = [policy.backoff(attempt, None) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling / 2  # spread over the range, not stuck low
    assert all(policy.backoff(1, 9.0) == 9.0 for _ in range(20))


@pytest.fixture
def closed_port_url() -> Iterator[str]:
    with unused_port() as port:  # refused for the whole test: nothing can listen there
        yield f"http://127.0.0.1:{port}"


def test_network_errors_retried_then_exhausted(fake: FakeTime, closed_port_url: str) -> None:
    url = closed_port_url
    client = make_client(url, fake, max_attempts=4)
    with pytest.raises(
        RetriesExhausted,
        match=rf"gave up on the cohort users request to {url}/partners/treasuredata/"
        r"cohorts/users after 4 attempts: network error",
    ) as raised:
        run(post_users(client))
    assert (
        raised.value.hint
        == "check that the endpoint is up and reachable, then run the export again"
    )
    assert fake.sleeps == [0.5, 1.0, 2.0]
    assert (client.stats.requests, client.stats.retries) == (4, 3)


def test_423_retried_then_succeeds(server: PartnerServer, fake: FakeTime) -> None:
    server.script("users", 423, "Resource locked", times=2)
    run(post_users(make_client(server.url, fake)))
    assert fake.sleeps == [0.5, 1.0]
    assert statuses(server) == [423, 423, 201]


def test_423_fails_after_the_limit(server: PartnerServer, fake: FakeTime) -> None:
    server.script("users", 423, "Resource locked", times=10)
    client = make_client(server.url, fake, max_attempts=3)
    with pytest.raises(
        RetriesExhausted,
        match=r"after 3 attempts: HTTP 423 Resource locked \(check that the endpoint is up",
    ):
        run(post_users(client))
    assert fake.sleeps == [0.5, 1.0]
    assert statuses(server) == [423, 423, 423]


@pytest.mark.parametrize(
    ("status", "message"),
    [(429, "Rate limited"), (500, "Internal Server Error"), (503, "Service Unavailable")],
)
def test_retries_exhausted(
    server: PartnerServer, fake: FakeTime, status: int, message: str
) -> None:
    server.script("users", status, message, times=10)
    client = make_client(server.url, fake, max_attempts=5)
    with pytest.raises(
        RetriesExhausted,
        match=rf"after 5 attempts: HTTP {status} {message} \(check that the endpoint",
    ):
        run(post_users(client))
    assert fake.sleeps == [0.5, 1.0, 2.0, 4.0]  # no sleep after the last attempt
    assert len(statuses(server)) == 5


# -- refusals: no retry ----------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "message", "hint"),
    [
        (400, "cohort_id must be a valid string", "the request was refused as invalid"),
        (400, "Only 1,000 user_ids, device_ids, and aliases are allowed per request", "fix"),
        (401, "Invalid Partner API key", "check the data import key"),
        (401, "Invalid client secret", "COHORTSYNC_PARTNER_API_KEY"),
    ],
)
def test_400_and_401_fail_at_once_with_the_servers_message(
    server: PartnerServer, fake: FakeTime, status: int, message: str, hint: str
) -> None:
    server.script("users", status, message)
    client = make_client(server.url, fake)
    with pytest.raises(
        DestinationRefused, match=rf"refused the cohort users request: HTTP {status} {message} \("
    ) as raised:
        run(post_users(client, 3))
    assert raised.value.status == status
    assert hint in str(raised.value.hint)
    assert fake.sleeps == []
    assert statuses(server) == [status]  # no retry, and nothing after it
    assert client.stats.retries == 0


def test_a_refusal_echoing_the_secret_is_redacted(server: PartnerServer, fake: FakeTime) -> None:
    server.script(
        "users", 401, f"Partner not enabled for client with client secret: {CLIENT_SECRET}"
    )
    with pytest.raises(
        DestinationRefused,
        match=r"HTTP 401 Partner not enabled for client with client secret: \*{4}3210 "
        r"\(check the data import key",
    ) as raised:
        run(post_users(make_client(server.url, fake)))
    assert CLIENT_SECRET not in str(raised.value)
    assert fake.sleeps == []
