"""Data import keys, partner enablement, rate-limit headers and concurrency."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from cohortsync.braze import messages
from cohortsync.braze.ratelimit import RateLimit, RateLimiter, parse_rate_limit
from cohortsync.braze.sandbox import Sandbox, running_sandbox
from cohortsync.errors import ConfigError

from .support import PartnerClient, member_ids, unique


def test_several_keys_are_active_and_an_invalidated_one_is_refused_at_once(
    sandbox: Sandbox,
) -> None:
    sandbox.load_users([{"external_id": "u1"}, {"external_id": "u2"}])
    second = sandbox.generate_key()
    first_client = PartnerClient(sandbox)
    second_client = PartnerClient(sandbox, client_secret=second)
    first_client.add("vip", user_ids=["u1"])
    second_client.add("vip", user_ids=["u2"])
    sandbox.invalidate_key(sandbox.data_import_key)
    response = first_client.change("vip", {"user_ids": ["u1"], "should_remove": True})
    assert response.status_code == 401
    assert response.json()["message"] == messages.INVALID_CLIENT_SECRET
    assert first_client.define("vip", "VIP").status_code == 401
    assert second_client.change("vip").status_code == 200
    assert member_ids(sandbox.members("vip")) == ["u1", "u2"]


def test_every_response_carries_rate_limit_headers(db_url: str) -> None:
    with running_sandbox(
        db_url, workspace_name=unique("ws"), partner_api_key=unique("pk"), rate_limit="5/hour"
    ) as sandbox:
        client = PartnerClient(sandbox)
        remaining = []
        for _ in range(3):
            response = client.change("vip")
            assert response.status_code == 200
            assert response.headers["X-RateLimit-Limit"] == "5"
            remaining.append(int(response.headers["X-RateLimit-Remaining"]))
            reset = int(response.headers["X-RateLimit-Reset"])
            assert reset % 3600 == 0 and 0 < reset - time.time() <= 3600
        assert remaining == [4, 3, 2]
        refused = client.change("vip", {"user_ids": [1]})  # a 400 counts and carries them too
        assert refused.status_code == 400
        assert refused.headers["X-RateLimit-Remaining"] == "1"
        assert client.define("vip", "VIP").headers["X-RateLimit-Remaining"] == "0"
        limited = client.change("vip")
        assert limited.status_code == 429
        assert limited.json() == {"message": messages.RATE_LIMITED}
        assert 1 <= int(limited.headers["Retry-After"]) <= 3600
        # A request without valid keys counts against another budget and still says so.
        stranger = client.post("/cohorts/users", {"partner_api_key": "x"})
        assert stranger.status_code == 401
        assert stranger.headers["X-RateLimit-Limit"] == "5"


def test_rate_limit_is_per_workspace(db_url: str) -> None:
    with running_sandbox(
        db_url, workspace_name=unique("ws"), partner_api_key=unique("pk"), rate_limit="2/hour"
    ) as sandbox:
        from cohortsync.braze import admin

        other = admin.create_workspace(sandbox.store, unique("ws"))
        admin.enable_partner(sandbox.store, sandbox.partner, workspace=other["id"])
        key = admin.generate_key(sandbox.store, workspace=other["id"])["data_import_key"]
        first, second = PartnerClient(sandbox), PartnerClient(sandbox, client_secret=key)
        assert [first.change("c").status_code for _ in range(3)] == [200, 200, 429]
        assert second.change("c").status_code == 200


def test_rate_limiter_windows_and_parsing() -> None:
    now = [7200.0 + 3599.5]
    limiter = RateLimiter(RateLimit(2, 3600), clock=lambda: now[0])
    assert [limiter.hit("k").allowed for _ in range(3)] == [True, True, False]
    refused = limiter.hit("k")
    assert refused.headers()["Retry-After"] == "1"
    assert refused.reset == 10800
    now[0] = 10800.0  # the next window starts afresh
    assert limiter.hit("k").remaining == 1
    assert parse_rate_limit("250000/hour") == RateLimit(250_000, 3600)
    assert parse_rate_limit("10/second") == RateLimit(10, 1)
    assert parse_rate_limit("600") == RateLimit(600, 3600)
    for bad in ("fast", "0/hour", "5/day", "-1"):
        with pytest.raises(
            ConfigError, match=f"^cannot read the rate limit {re.escape(repr(bad))}"
        ):
            parse_rate_limit(bad)


def test_concurrent_requests_on_one_cohort_all_succeed(
    partner: PartnerClient, sandbox: Sandbox
) -> None:
    """Eight clients at once: nobody gets 423, every add lands."""
    sandbox.load_users({"external_id": f"u{i:04d}"} for i in range(800))

    def send(batch: int) -> int:
        client = PartnerClient(sandbox)
        ids = [f"u{i:04d}" for i in range(batch * 20, batch * 20 + 20)]
        return client.change("shared", {"user_ids": ids}).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(send, range(40)))
    assert statuses == [200] * 40
    assert len(sandbox.members("shared")) == 800
    [cohort] = sandbox.cohorts()
    assert cohort["identifiers"]["external_id"]["matched"] == 800
