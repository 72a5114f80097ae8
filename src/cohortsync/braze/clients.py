"""Clients that stall or go away: a deadline for request bodies, one log line each.

A client that sends its headers and then its body slowly, or not at all, holds
a connection and a handler forever: uvicorn times out idle keep-alive
connections, not a body that trickles in. And a client that disconnects
half-way through its body makes Starlette raise ``ClientDisconnect`` out of
the handler, which uvicorn logs as "Exception in ASGI application" with a
full traceback, for what is an everyday network event, not a bug.

:func:`guard` wraps the application: :class:`ClientGuard`, a plain ASGI
middleware (one function call per message, nothing per byte), puts the
deadline on the handler's reads, and two exception handlers answer inside
the app, before Starlette's error middleware would log a traceback and try
a 500:

- the whole body must arrive within ``body_timeout`` seconds of the
  handler's first read of it (a trickle of one byte every few seconds is
  a stall too); otherwise the client gets ``408`` with ``Connection: close``
  when the response has not started (uvicorn drops it silently if the
  socket is gone), and the connection is closed;
- a client that disconnects while sending its body, or before its answer
  is written, is logged as one line: method, path, client address and what
  happened; the handler is abandoned without a traceback.

Anything else a handler raises is still a bug and keeps its traceback.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response
from starlette.requests import ClientDisconnect

DEFAULT_BODY_TIMEOUT = 30.0

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# uvicorn's own error logger: the same handler and format as its other lines.
log = logging.getLogger("uvicorn.error")


class BodyTimedOut(Exception):
    """The request body did not arrive within the deadline."""

    def __init__(self, timeout: float) -> None:
        super().__init__(f"no complete body within {timeout:g} s")
        self.timeout = timeout


def guard(app: FastAPI, *, body_timeout: float = DEFAULT_BODY_TIMEOUT) -> ClientGuard:
    """``app`` with a body deadline and one-line logging of clients that go away."""

    async def timed_out(request: Request, error: Exception) -> Response:
        timeout = error.timeout if isinstance(error, BodyTimedOut) else body_timeout
        _incident(request.scope, f"sent no complete body within {timeout:g} s; dropped")
        body = orjson.dumps({"message": f"Request body not received within {timeout:g} seconds"})
        return Response(
            body, status_code=408, media_type="application/json", headers={"Connection": "close"}
        )

    async def disconnected(request: Request, _error: Exception) -> Response:
        _incident(request.scope, "disconnected while sending its body")
        return Response(status_code=499)  # never delivered: uvicorn drops it

    app.add_exception_handler(BodyTimedOut, timed_out)
    app.add_exception_handler(ClientDisconnect, disconnected)
    return ClientGuard(app, body_timeout=body_timeout)


class ClientGuard:
    """ASGI middleware: a deadline on request bodies, and quiet client disconnects.

    Args:
        app: the application to guard.
        body_timeout: seconds a request's whole body may take to arrive,
            counted from the handler's first read of it.
    """

    def __init__(self, app: ASGIApp, *, body_timeout: float = DEFAULT_BODY_TIMEOUT) -> None:
        self.app = app
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = _Exchange()

        async def guarded_receive() -> Message:
            if state.body_done:
                return await receive()
            if state.deadline is None:
                state.deadline = time.monotonic() + self.body_timeout
            remaining = state.deadline - time.monotonic()
            try:
                message = await asyncio.wait_for(receive(), timeout=max(remaining, 0.0))
            except TimeoutError:
                raise BodyTimedOut(self.body_timeout) from None
            if message["type"] == "http.disconnect":
                state.disconnected = True
            elif not message.get("more_body", False):
                state.body_done = True
            return message

        async def tracked_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                state.response_started = True
            await send(message)

        try:
            await self.app(scope, guarded_receive, tracked_send)
        except BodyTimedOut:  # only when the app's own handler did not answer
            _incident(scope, f"sent no complete body within {self.body_timeout:g} s; dropped")
            if not state.response_started:
                await _answer_408(send, self.body_timeout)
        except ClientDisconnect:
            _incident(scope, "disconnected while sending its body")
        except OSError as error:
            # The socket went away under a write (a reset, a broken pipe).
            _incident(scope, f"disconnected before its answer was written ({error.strerror})")
        except Exception:
            if state.disconnected:
                _incident(scope, "disconnected while sending its body")
                return
            raise


class _Exchange:
    """What the guard saw of one request."""

    __slots__ = ("body_done", "deadline", "disconnected", "response_started")

    def __init__(self) -> None:
        self.deadline: float | None = None
        self.body_done = False
        self.disconnected = False
        self.response_started = False


async def _answer_408(send: Send, timeout: float) -> None:
    body = orjson.dumps({"message": f"Request body not received within {timeout:g} seconds"})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    try:
        await send({"type": "http.response.start", "status": 408, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})
    except OSError:
        pass  # the client is gone too: nothing to tell it


def _incident(scope: Scope, what: str) -> None:
    """One log line: method, path, client address and what happened."""
    client = scope.get("client")
    address = f"{client[0]}:{client[1]}" if client else "unknown client"
    log.warning("%s %s from %s: client %s", scope.get("method"), scope.get("path"), address, what)
