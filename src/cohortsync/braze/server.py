"""Running the service: in the foreground (the CLI) or in a background thread.

Both build the app with :func:`build_app` and bind the listening socket
themselves, so a busy port is a one-line :class:`ConfigError` and ``port=0``
yields the free port the system picked.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from cohortsync.braze.api import create_app
from cohortsync.braze.clients import DEFAULT_BODY_TIMEOUT, guard
from cohortsync.braze.ratelimit import RateLimit
from cohortsync.braze.store import Store, open_store
from cohortsync.errors import CohortsyncError, ConfigError

DEFAULT_PORT = 9292


def build_app(
    db_url: str, *, rate_limit: RateLimit | str | int = RateLimit(), busy_timeout: float = 30.0
) -> tuple[FastAPI, Store]:
    """The app over the store at ``db_url`` (created when missing), and that store."""
    store = open_store(db_url, busy_timeout=busy_timeout)
    return create_app(store, rate_limit=rate_limit), store


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``, or a ConfigError saying why not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as error:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port}: {error.strerror}",
            hint="pick another --port, or stop what listens there",
        ) from None
    sock.set_inheritable(True)
    return sock


def _uvicorn_server(
    app: FastAPI, *, log_level: str, access_log: bool, body_timeout: float = DEFAULT_BODY_TIMEOUT
) -> uvicorn.Server:
    """uvicorn over the guarded app (:mod:`.clients`: body deadline, quiet disconnects)."""
    config = uvicorn.Config(
        guard(app, body_timeout=body_timeout),
        log_level=log_level,
        access_log=access_log,
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
) -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM stop it cleanly).

    ``body_timeout``: seconds a request's body may take to arrive before the
    client gets 408 and its connection is closed.
    """
    app, store = build_app(db_url, rate_limit=rate_limit)
    sock = bind(host, port)
    bound_port = sock.getsockname()[1]
    print(
        f"serving on http://{host}:{bound_port} (OpenAPI document at /openapi.json, "
        "browsable at /docs); Ctrl-C stops",
        file=sys.stderr,
        flush=True,
    )
    try:
        server = _uvicorn_server(
            app, log_level="info", access_log=access_log, body_timeout=body_timeout
        )
        server.run(sockets=[sock])
    finally:
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

    Yields:
        ``"http://HOST:PORT"``, once the server accepts connections.
    """
    app, store = build_app(db_url, rate_limit=rate_limit, busy_timeout=busy_timeout)
    sock = bind(host, port)
    server = _uvicorn_server(app, log_level="warning", access_log=False, body_timeout=body_timeout)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="braze-service", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise CohortsyncError(
                    f"the Braze-compatible service did not start on {host}:{port}"
                )
            time.sleep(0.01)
        bound_host, bound_port = sock.getsockname()[:2]
        url_host = f"[{bound_host}]" if ":" in bound_host else bound_host
        yield f"http://{url_host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
        store.close()
