"""Operations as POST routes: a plain function of the store, the caller and the body.

An operation runs in the thread pool (the caller's authentication, its body
parsing and its store work in one call: a hop to the pool and back costs
about as much Python as authenticating) and its answer is its result, if
any, plus ``"message": "success"``. The route takes the operation's name
(the OpenAPI operation id) and its docstring (the description), so the
document reads as the operation does.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoint's
# annotations, and the caller's dependency is a variable of the closure.

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from cohortsync.braze import messages, schemas
from cohortsync.braze.dependencies import JsonBody, StoreDep, json_body
from cohortsync.braze.responses import SUCCESS_RESPONSE, answer
from cohortsync.braze.store import Store


@dataclass(frozen=True)
class WithStatus:
    """An operation's result answered with another status than 200 (Braze's 201 for a
    /users/track with non-fatal errors)."""

    status: int
    result: dict[str, Any]


Operation = Callable[..., "dict[str, Any] | WithStatus | None"]
Route = Callable[[str, str, dict[str, Any]], Callable[[Operation], Operation]]


def _deferred(caller: Callable[..., Any]) -> Callable[..., Any]:
    """A dependency with ``caller``'s parameters that returns ``caller`` bound to them.

    FastAPI resolves what ``caller`` depends on (the same parameters, so the
    OpenAPI document is unchanged), and the endpoint calls the result in the
    operation's own thread-pool call, before the operation: the caller still
    runs after the body is read, and its errors are answered as before.
    """

    @functools.wraps(caller)
    async def bind(*args: Any, **kwargs: Any) -> Callable[[], Any]:
        return functools.partial(caller, *args, **kwargs)

    return bind


def operations_router(
    *,
    tag: str,
    budget: Callable[..., Any],
    caller: Callable[..., Any],
    errors: dict[int | str, dict[str, Any]],
) -> tuple[APIRouter, Route]:
    """A router of one API family, and its decorator ``@route(path, summary, body_schema)``.

    Every route first installs the request's rate-limit ``budget``, then
    reads the JSON body (so that its failures come before the caller's),
    then runs ``caller``, the dependency that authenticates the request and
    charges its budget (in the operation's thread-pool call, see
    :func:`_deferred`); the operation gets what ``caller`` returns as its
    second argument, and, when it has a ``metrics`` parameter, the app's
    :class:`~cohortsync.braze.metrics.ServiceMetrics` (None when served
    without metrics). ``errors`` documents the family's error answers.
    """
    deferred_caller = _deferred(caller)
    router = APIRouter(
        tags=[tag],
        dependencies=[Depends(budget), Depends(json_body)],
        responses={**SUCCESS_RESPONSE, **errors},
    )

    def route(
        path: str, summary: str, body_schema: dict[str, Any]
    ) -> Callable[[Operation], Operation]:
        def register(operation: Operation) -> Operation:
            # An operation that counts what it did takes the app's metrics (None: no metrics).
            counts = "metrics" in inspect.signature(operation).parameters

            def authenticated(
                store: Store, who: Callable[[], Any], body: dict[str, Any], metrics: Any
            ) -> Any:
                if counts:
                    return operation(store, who(), body, metrics=metrics)
                return operation(store, who(), body)

            async def endpoint(
                request: Request,
                who: Annotated[Callable[[], Any], Depends(deferred_caller)],
                body: JsonBody,
                store: StoreDep,
            ) -> Response:
                result = await run_in_threadpool(
                    authenticated, store, who, body, request.app.state.metrics
                )
                status = 200
                if isinstance(result, WithStatus):
                    status, result = result.status, result.result
                return answer(request, {**(result or {}), "message": messages.SUCCESS}, status)

            router.add_api_route(
                path,
                endpoint,
                methods=["POST"],
                name=operation.__name__,
                summary=summary,
                description=inspect.cleandoc(operation.__doc__ or ""),
                openapi_extra=schemas.json_body(body_schema),
            )
            return operation

        return register

    return router, route
