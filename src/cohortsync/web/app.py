"""Installing the shared web layer on a side's FastAPI app."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from cohortsync.errors import CohortsyncError
from cohortsync.web.guard import CsrfRefused, Guard, LoginRequired
from cohortsync.web.pages import STATIC_PREFIX, WEB_STATIC

# Pages load only what they ship: no inline script, no other origin, no framing.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def install(app: FastAPI, guard: Guard) -> None:
    """Give ``app`` the shared static files, login routes, error pages and headers."""
    app.mount(STATIC_PREFIX, StaticFiles(directory=WEB_STATIC), name="static")
    app.include_router(guard.routes())

    async def login_required(request: Request, _error: Exception) -> Response:
        return guard.login_redirect(request)

    async def csrf_refused(request: Request, _error: Exception) -> Response:
        return guard.csrf_refused(request)

    async def refused(request: Request, error: Exception) -> Response:
        assert isinstance(error, CohortsyncError)
        return guard.pages.render(
            request,
            "web/message.html",
            {"heading": "This could not be done", "message": error.message, "action": error.hint},
            status_code=404 if error.message.startswith("unknown ") else 400,
        )

    app.add_exception_handler(LoginRequired, login_required)
    app.add_exception_handler(CsrfRefused, csrf_refused)
    # A user's mistake reached a page (an unknown name in the address, a refused action):
    # one message, in the page's words, never a traceback.
    app.add_exception_handler(CohortsyncError, refused)

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        # The time the app took to build the response (routes, library calls, rendering):
        # the browser's network panel shows it, and bench/console.py reads it.
        elapsed_ms = (time.perf_counter() - started) * 1000
        response.headers.setdefault("Server-Timing", f"app;dur={elapsed_ms:.1f}")
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if response.headers.get("content-type", "").startswith("text/html"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response
