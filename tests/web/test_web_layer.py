"""The shared web layer on its own: hashes, signed sessions, throttling, redirects.

These parts decide who gets in, so their rules are tested directly, with an
injected clock for the throttle, besides the browser tests that go through
the console (tests/console/test_access.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request, Response

from cohortsync.web.guard import OneTimeLinks, safe_next
from cohortsync.web.passwords import hash_password, needs_rehash, password_problem, verify_password
from cohortsync.web.serving import bind, running_in_thread
from cohortsync.web.sessions import Session, SessionCookie
from cohortsync.web.throttle import LoginThrottle


def test_passwords_are_argon2id_hashes_that_verify_only_the_password() -> None:
    stored = hash_password("a long enough secret")
    assert stored.startswith("$argon2id$")
    assert "a long enough secret" not in stored
    assert verify_password(stored, "a long enough secret")
    assert not verify_password(stored, "a long enough secreT")
    assert not verify_password("not a hash", "anything")
    assert not needs_rehash(stored)


@pytest.mark.parametrize(
    ("password", "problem"),
    [("short", "at least 8"), (" padded password", "space"), ("long enough", None)],
)
def test_password_rules(password: str, problem: str | None) -> None:
    found = password_problem(password)
    assert (found is None) if problem is None else (problem in (found or ""))


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_throttle_lets_free_failures_through_then_doubles_the_wait() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(free_failures=3, base_delay=2, max_delay=10, clock=clock)
    for _ in range(2):
        throttle.failed("admin", "10.0.0.1")
        assert throttle.wait_seconds("admin", "10.0.0.1") == 0
    throttle.failed("admin", "10.0.0.1")
    assert throttle.wait_seconds("admin", "10.0.0.1") == 2
    throttle.failed("admin", "10.0.0.1")
    assert throttle.wait_seconds("admin", "10.0.0.1") == 4
    for _ in range(5):
        throttle.failed("admin", "10.0.0.1")
    assert throttle.wait_seconds("admin", "10.0.0.1") == 10  # capped
    clock.now += 10
    assert throttle.wait_seconds("admin", "10.0.0.1") == 0


def test_throttle_counts_the_account_and_the_address_separately() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(free_failures=1, base_delay=5, clock=clock)
    throttle.failed("Admin", "10.0.0.1")
    # The same account from another address waits, and so does another account here.
    assert throttle.wait_seconds("admin", "10.0.0.2") == 5
    assert throttle.wait_seconds("other", "10.0.0.1") == 5
    assert throttle.wait_seconds("other", "10.0.0.2") == 0
    throttle.succeeded("admin", "10.0.0.1")
    assert throttle.wait_seconds("admin", "10.0.0.1") == 0


def session_app(cookie: SessionCookie, reader: SessionCookie | None = None) -> FastAPI:
    app = FastAPI()
    reader = reader or cookie

    @app.get("/start")
    def start() -> Response:
        response = Response("started")
        cookie.write(response, Session.start("admin"), secure=False)
        return response

    @app.get("/who")
    def who(request: Request) -> Response:
        session = reader.read(request)
        return Response(session.user if session else "nobody")

    return app


@contextmanager
def served(app: FastAPI) -> Iterator[httpx.Client]:
    """``app`` on a real uvicorn server on 127.0.0.1, and a client with a cookie jar."""
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    with (
        running_in_thread(server, bind("127.0.0.1", 0), name="test app") as url,
        httpx.Client(base_url=url) as client,
    ):
        yield client


def test_a_session_cookie_is_signed_httponly_and_lax() -> None:
    secret = ["first secret"]
    with served(session_app(SessionCookie(lambda: secret[0], cookie_name="s"))) as client:
        check_session_cookie(client, secret)


def check_session_cookie(client: httpx.Client, secret: list[str]) -> None:
    started = client.get("/start")
    header = started.headers["set-cookie"].lower()
    assert "httponly" in header and "samesite=lax" in header
    assert client.get("/who").text == "admin"
    value = client.cookies["s"]
    client.cookies.set("s", value[:-2] + ("AA" if not value.endswith("AA") else "BB"))
    assert client.get("/who").text == "nobody"  # tampered
    client.cookies.set("s", value)
    secret[0] = "a new secret"  # a new password draws a new secret: every session ends
    assert client.get("/who").text == "nobody"


def test_a_session_expires() -> None:
    writer = SessionCookie("secret", cookie_name="s")
    reader = SessionCookie("secret", cookie_name="s", max_age=1)
    with served(session_app(writer, reader)) as client:
        client.get("/start")
        assert client.get("/who").text == "admin"
        time.sleep(2.2)
        assert client.get("/who").text == "nobody"


def test_one_time_links_work_once() -> None:
    links = OneTimeLinks()
    token = links.issue("admin")
    assert links.consume("not the token") is None
    assert links.consume(token) == "admin"
    assert links.consume(token) is None
    expired = OneTimeLinks(lifetime=-1)
    assert expired.consume(expired.issue("admin")) is None


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/queries/vip", "/queries/vip"),
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("", "/"),
        (None, "/"),
    ],
)
def test_after_login_only_paths_of_this_side(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected


@pytest.mark.parametrize(
    ("stored", "shown"),
    [
        ("2026-12-02T14:41:07.123+00:00", "2026-12-02 14:41 UTC"),
        ("2026-12-02T16:41:07+02:00", "2026-12-02 14:41 UTC"),
        ("2026-12-02T14:41:07", "2026-12-02 14:41"),
        ("2026-12-02", "2026-12-02"),
        ("next tuesday", "next tuesday"),
        (None, "-"),
        ("", "-"),
    ],
)
def test_every_page_shows_a_time_the_same_way(stored: str | None, shown: str) -> None:
    from cohortsync.web.pages import readable_time

    assert readable_time(stored) == shown


def test_the_listening_socket_says_tcp_so_connections_get_nodelay() -> None:
    """asyncio sets TCP_NODELAY on accepted connections only when the protocol says TCP."""
    import socket

    from cohortsync.web.serving import bind

    sock = bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()
