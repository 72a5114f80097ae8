"""JSON answers of the service, each with the rate-limit headers of its request.

Every answer of a rate-limited route, success or error, carries
``X-RateLimit-*`` headers: :func:`answer` takes them from the request's
:class:`~cohortsync.braze.ratelimit.RequestBudget` (set by
:mod:`.dependencies`).
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request, Response

from cohortsync.braze.ratelimit import RequestBudget

SUCCESS_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"description": 'Done: {"message": "success"}.'}
}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, headers=headers, media_type="application/json"
    )


def answer(
    request: Request, body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """``body`` as JSON, with the request's rate-limit headers, then ``headers``."""
    budget: RequestBudget | None = getattr(request.state, "budget", None)
    limits = budget.headers() if budget is not None else {}
    return json_response(body, status, {**limits, **(headers or {})})
