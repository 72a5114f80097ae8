"""Errors as answers: each failure becomes the status and message a client can act on.

:class:`~cohortsync.braze.validation.ApiError` carries its own status; store
failures are told apart here. A busy store is worth retrying (503 with
``Retry-After``); a schema that does not match the code is the operator's
to fix, so it is never answered 503 (clients would retry forever) but 500,
with a message saying what to run.
"""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import FastAPI, Request, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from cohortsync.braze import messages
from cohortsync.braze.responses import answer, json_response
from cohortsync.braze.store import StoreBusy, is_schema_error
from cohortsync.braze.validation import ApiError

RETRY_SOON = {"Retry-After": "1"}


async def _http_error(_request: Request, error: Exception) -> Response:
    """Starlette's own errors (unknown path, wrong method) in the service's JSON shape."""
    assert isinstance(error, StarletteHTTPException)
    return json_response(
        {"message": str(error.detail)}, error.status_code, dict(error.headers or {})
    )


async def _api_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, ApiError)
    return answer(request, error.body(), error.status, error.headers)


async def _store_busy(request: Request, _error: Exception) -> Response:
    return await _api_error(request, ApiError(503, messages.STORE_UNAVAILABLE, headers=RETRY_SOON))


async def _store_failed(request: Request, error: Exception) -> Response:
    """A statement failed: a schema mismatch (500), else a locked or unreachable store (503)."""
    assert isinstance(error, sa.exc.DBAPIError)
    if is_schema_error(error):
        # The operator's to fix: retrying cannot help, so no 503 and no Retry-After.
        return await _api_error(request, ApiError(500, messages.STORE_SCHEMA_MISMATCH))
    if isinstance(error, sa.exc.ProgrammingError):
        raise error  # a bug: keep its traceback
    return await _store_busy(request, error)


async def _unstorable_value(request: Request, _error: Exception) -> Response:
    # A value the database cannot hold slipped past validation (e.g. a NUL byte).
    return await _api_error(
        request, ApiError(400, "A value in the request cannot be stored as given")
    )


async def _conflict(request: Request, _error: Exception) -> Response:
    # PostgreSQL: a concurrent request created the same user or alias first.
    return await _api_error(request, ApiError(409, messages.CONFLICT, headers=RETRY_SOON))


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StoreBusy, _store_busy)
    app.add_exception_handler(sa.exc.OperationalError, _store_failed)
    app.add_exception_handler(sa.exc.ProgrammingError, _store_failed)
    app.add_exception_handler(sa.exc.DataError, _unstorable_value)
    app.add_exception_handler(sa.exc.IntegrityError, _conflict)
