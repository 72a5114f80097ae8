"""``cohortsync console``: prepare the account, print how to log in, serve.

The console binds to 127.0.0.1 unless told otherwise: it manages data import
keys and can send cohorts, so it is not put on a network by accident.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import uvicorn
from fastapi import FastAPI

from cohortsync.catalog.db import open_catalog
from cohortsync.console.accounts import CONSOLE_USER, PASSWORD_ENV, prepare_account
from cohortsync.console.app import create_app
from cohortsync.jobs.metrics import JobMetrics
from cohortsync.logs import announce, uvicorn_log_config
from cohortsync.settings import Settings
from cohortsync.web.guard import OneTimeLinks
from cohortsync.web.serving import base_url, bind, running_in_thread
from cohortsync.web.throttle import LoginThrottle

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8484


def login_instructions(url: str, has_password: bool, links: OneTimeLinks) -> str:
    """What the console prints on start: where it is and how to log in."""
    lines = [f"cohortsync console on {url} (Ctrl-C stops)"]
    if has_password:
        lines.append(f"log in as '{CONSOLE_USER}' with the password of {PASSWORD_ENV}")
    else:
        token = links.issue(CONSOLE_USER)
        lines.append("open this one-time link to log in, then choose a password:")
        lines.append(f"    {url}/login/link?token={token}")
    return "\n".join(lines)


def _prepared(settings: Settings) -> bool:
    catalog = open_catalog(settings.catalog_path)
    try:
        return prepare_account(catalog)
    finally:
        catalog.dispose()


def _server(app: FastAPI, *, log_level: str, log_format: str = "text") -> uvicorn.Server:
    config = uvicorn.Config(
        app,
        log_config=uvicorn_log_config(log_format),
        log_level=log_level,
        access_log=False,
        # The client is the TCP peer, never X-Forwarded-For: the login throttle counts by it.
        proxy_headers=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    return uvicorn.Server(config)


class Terminated(BaseException):
    """SIGTERM arrived: the console stops as on Ctrl-C (a BaseException, as KeyboardInterrupt)."""


def _terminated(_signum: int, _frame: FrameType | None) -> None:
    raise Terminated


@contextmanager
def _sigterm_stops() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` in the main thread while the block runs.

    uvicorn handles SIGTERM itself while it serves (it shuts down: the
    lifespan's shutdown stops the launches at their next checkpoint), then
    puts back the handler it found and raises the signal again. With the
    default handler found, that second SIGTERM killed the process after
    its clean shutdown (exit status -15); with this one, it raises
    :class:`Terminated`, which :func:`serve` ends on, exit status 0. A
    SIGTERM before uvicorn starts stops the console the same way.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def serve(
    settings: Settings,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    log_format: str = "text",
    metrics: JobMetrics | None = None,
) -> None:
    """Serve the console until interrupted (Ctrl-C or SIGTERM stop it cleanly).

    ``log_format``: ``text`` or ``json`` (:mod:`cohortsync.logs`, set up by the caller).
    ``metrics``: where the runs the console launches are counted (the caller
    serves them with ``--metrics-port``).
    """
    has_password = _prepared(settings)
    links = OneTimeLinks()
    sock = bind(host, port)
    try:
        with _sigterm_stops():
            app = create_app(settings, links=links, metrics=metrics)
            url = base_url(sock)
            instructions = login_instructions(url, has_password, links)
            announce(instructions, logger="cohortsync.console", url=url)
            _server(app, log_level="warning", log_format=log_format).run(sockets=[sock])
    except (KeyboardInterrupt, Terminated):
        # uvicorn has shut down cleanly and raised the signal again: for a server, that is
        # how it stops.
        pass
    finally:
        sock.close()
    announce("console stopped", logger="cohortsync.console")


@contextmanager
def serve_in_background(
    settings: Settings,
    *,
    host: str = DEFAULT_HOST,
    port: int = 0,
    links: OneTimeLinks | None = None,
    throttle: LoginThrottle | None = None,
) -> Iterator[str]:
    """The real console in a thread of this process; yields its base URL (tests, benchmarks)."""
    _prepared(settings)
    app = create_app(settings, links=links, throttle=throttle)
    sock = bind(host, port)
    with running_in_thread(_server(app, log_level="warning"), sock, name="console") as url:
        yield url
