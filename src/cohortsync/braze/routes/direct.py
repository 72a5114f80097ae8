"""A POST route that FastAPI documents but does not serve: a plain Starlette handler.

``/users/track`` is what an export sends most, thousands of requests of 75
objects each, and per request FastAPI's own work (solving the route's
dependencies, checking the endpoint's answer) cost as much Python as
applying the objects. A :class:`DirectRoute` is an ``APIRoute``, so the
OpenAPI document describes it as before (summary, description, body
schema, answers), but its endpoint is its handler: ``handler(request)``
is called as it is, and does in order what the routes' dependencies do
(:mod:`cohortsync.braze.dependencies`): install the rate-limit budget, read
the JSON body, then authenticate and charge the caller in the operation's
one thread-pool call. Its errors are answered by the app's handlers, as
every route's are.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class DirectRoute(APIRoute):
    """An API route whose endpoint, ``async def handler(request) -> Response``, serves it."""

    def get_route_handler(self) -> Handler:
        handler: Handler = self.endpoint
        return handler
