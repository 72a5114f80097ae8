"""Running the service: in the foreground (the CLI) or in a background thread.

Both build the app with :func:`build_app` and bind the listening socket
first (:mod:`cohortsync.web.serving`, shared with the console), so a busy
port is a one-line :class:`ConfigError` and ``port=0`` yields the free port
the system picked. Beside the server, both run the campaign scheduler
(:class:`~cohortsync.braze.campaigns.CampaignScheduler`): a thread that
launches due campaigns about every second, stopped (after the launch under
way, if any) when the server stops.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from cohortsync.braze.api import create_app
from cohortsync.braze.campaigns.schedule import DEFAULT_INTERVAL, CampaignScheduler
from cohortsync.braze.clients import DEFAULT_BODY_TIMEOUT, guard
from cohortsync.braze.ratelimit import RateLimit
from cohortsync.braze.store import Store, open_store
from cohortsync.logs import announce, uvicorn_log_config
from cohortsync.web.serving import base_url, bind, running_in_thread
from cohortsync.web.throttle import LoginThrottle

DEFAULT_PORT = 9292


def build_app(
    db_url: str,
    *,
    rate_limit: RateLimit | str | int = RateLimit(),
    busy_timeout: float = 30.0,
    login_throttle: LoginThrottle | None = None,
    metrics: bool = True,
) -> tuple[FastAPI, Store]:
    """The app (API and dashboard) over the store at ``db_url`` (created when missing).

    ``metrics``: count requests and serve them at ``GET /metrics`` (:mod:`.metrics`).
    """
    store = open_store(db_url, busy_timeout=busy_timeout)
    app = create_app(store, rate_limit=rate_limit, login_throttle=login_throttle, metrics=metrics)
    return app, store


def _uvicorn_server(
    app: FastAPI,
    *,
    log_level: str,
    access_log: bool,
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
    log_format: str = "text",
) -> uvicorn.Server:
    """uvicorn over the guarded app (:mod:`.clients`: body deadline, quiet disconnects)."""
    config = uvicorn.Config(
        guard(app, body_timeout=body_timeout),
        log_config=uvicorn_log_config(log_format),
        log_level=log_level,
        access_log=access_log,
        # The client is the TCP peer: uvicorn would otherwise take X-Forwarded-For
        # from any local process, and key allowlists and the login throttle read it.
        proxy_headers=False,
        lifespan="off",
        timeout_graceful_shutdown=5,
    )
    return uvicorn.Server(config)


def serve(
    db_url: str,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    rate_limit: RateLimit | str | int = RateLimit(),
    access_log: bool = False,
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
    schedule_interval: float | None = DEFAULT_INTERVAL,
    log_format: str = "text",
    metrics: bool = True,
) -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM stop it cleanly).

    ``body_timeout``: seconds a request's body may take to arrive before the
    client gets 408 and its connection is closed. ``schedule_interval``:
    seconds between the scheduler's looks for due campaigns (None: no scheduler).
    ``log_format``: ``text`` or ``json`` (:mod:`cohortsync.logs`, set up by the caller).
    ``metrics``: serve ``GET /metrics`` (:mod:`.metrics`).
    """
    app, store = build_app(db_url, rate_limit=rate_limit, metrics=metrics)
    sock = bind(host, port)
    # The bound socket's address: with --port 0 this line is how a caller learns the port.
    url = base_url(sock)
    announce(
        f"serving on {url} (OpenAPI document at /openapi.json, "
        f"browsable at /docs; dashboard at {url}/dashboard); Ctrl-C stops",
        url=url,
    )
    scheduler = CampaignScheduler(store, interval=schedule_interval or DEFAULT_INTERVAL)
    try:
        server = _uvicorn_server(
            app,
            log_level="info",
            access_log=access_log,
            body_timeout=body_timeout,
            log_format=log_format,
        )
        if schedule_interval is not None:
            scheduler.start()
        server.run(sockets=[sock])
    finally:
        scheduler.stop()
        sock.close()
        store.close()


@contextmanager
def serve_in_background(
    db_url: str,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    rate_limit: RateLimit | str | int = RateLimit(),
    busy_timeout: float = 30.0,
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
    login_throttle: LoginThrottle | None = None,
    schedule_interval: float | None = DEFAULT_INTERVAL,
    metrics: bool = True,
) -> Iterator[str]:
    """Run the real uvicorn server in a thread; yield its base URL while it runs.

    Args:
        db_url: the store, as for ``cohortsync braze serve --db``.
        port: 0 picks a free port.
        rate_limit: ``"N/hour"`` (or ``/minute``, ``/second``), a number of
            requests per hour, or a :class:`RateLimit`.
        busy_timeout: seconds a write waits on a store lock before the
            request fails with 503.
        body_timeout: seconds a request body may take to arrive (then 408).
        login_throttle: the dashboard's failed-login throttling.
        schedule_interval: seconds between the campaign scheduler's looks
            for due campaigns; None runs no scheduler.
        metrics: count requests and serve them at ``GET /metrics``.

    Yields:
        ``"http://HOST:PORT"``, once the server accepts connections.
    """
    app, store = build_app(
        db_url,
        rate_limit=rate_limit,
        busy_timeout=busy_timeout,
        login_throttle=login_throttle,
        metrics=metrics,
    )
    scheduler = CampaignScheduler(store, interval=schedule_interval or DEFAULT_INTERVAL)
    try:
        sock = bind(host, port)
        server = _uvicorn_server(
            app, log_level="warning", access_log=False, body_timeout=body_timeout
        )
        with running_in_thread(server, sock, name="Braze-compatible service") as url:
            if schedule_interval is not None:
                scheduler.start()
            try:
                yield url
            finally:
                scheduler.stop()
    finally:
        store.close()
