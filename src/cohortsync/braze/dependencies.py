"""What the routes depend on (FastAPI dependencies): the store, the body, the caller.

Partner routes check, in the spec's order, the partner API key, the client
secret (with its key's source allowlist, :mod:`.sources`) and the partner's
enablement, then the rate limit of (partner, workspace), then the body's
shape, then the cohort's lock; only then do they write. REST routes
authenticate with the workspace's REST API key (Bearer), refused from a
source out of its allowlist. So that the body's own failures (415, 413, bad
JSON) come first, the routers resolve :func:`json_body` before the caller
(:func:`cohortsync.braze.routes.registration.operations_router`).

Each router also installs a :class:`~cohortsync.braze.ratelimit.RequestBudget`
(:func:`partner_budget`, :func:`rest_budget`); the caller's dependency
charges it to the workspace, and a request that never gets that far is
charged to the anonymous budget when its answer is made (:mod:`.responses`).

These read the request themselves instead of declaring header or query
parameters, so the OpenAPI document describes the bodies (:mod:`.schemas`)
and not FastAPI's view of them.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Annotated, Any

from fastapi import Depends, Request

from cohortsync.braze import messages
from cohortsync.braze.keys import PartnerCaller, authenticate_partner, authenticate_rest
from cohortsync.braze.ratelimit import RequestBudget
from cohortsync.braze.store import Store
from cohortsync.braze.validation import ApiError, credential, read_json_object


async def get_store(request: Request) -> Store:
    """The app's store (async: a plain ``def`` dependency would cost a thread-pool hop)."""
    store: Store = request.app.state.store
    return store


StoreDep = Annotated[Store, Depends(get_store)]


def _install_budget(request: Request, anonymous_key: Hashable) -> RequestBudget:
    budget = RequestBudget(request.app.state.limiter, anonymous_key)
    request.state.budget = budget
    return budget


async def partner_budget(request: Request) -> RequestBudget:
    """The request's budget; until the keys pass, the anonymous one of the URL's partner."""
    return _install_budget(request, ("partner", request.path_params["partner"], None))


async def rest_budget(request: Request) -> RequestBudget:
    """The request's budget; until the REST API key passes, the REST API's anonymous one."""
    return _install_budget(request, ("rest", None))


def _charge(request: Request, key: tuple[Hashable, ...]) -> None:
    """Count the request against ``key``'s budget; 429 once it is spent.

    ``key[0]`` names the API (``partner`` or ``rest``) in the refusals' metric.
    """
    budget: RequestBudget = request.state.budget
    if not budget.charge(key).allowed:
        metrics = request.app.state.metrics
        if metrics is not None:
            metrics.count_rate_limited(str(key[0]))
        raise ApiError(429, messages.RATE_LIMITED)


async def json_body(request: Request) -> dict[str, Any]:
    """The body as a JSON object: 415, 413 or 400 otherwise (see :mod:`.validation`)."""
    return await read_json_object(
        request.headers.get("content-type"),
        request.headers.get("content-length"),
        request.stream(),
    )


JsonBody = Annotated[dict[str, Any], Depends(json_body)]


def source_of(request: Request) -> str | None:
    """The address the request came from: its TCP peer (see :mod:`.sources`)."""
    client = request.client
    return None if client is None else client.host


def partner_caller(
    partner: str, body: JsonBody, store: StoreDep, request: Request
) -> PartnerCaller:
    """The workspace and partner behind a partner call's keys, charged to their budget."""
    with store.read() as conn:
        caller = authenticate_partner(
            conn,
            partner,
            credential(body.get("partner_api_key")),
            credential(body.get("client_secret")),
            source_of(request),
        )
    _charge(request, ("partner", partner, caller.workspace_id))
    return caller


def rest_workspace(store: StoreDep, request: Request) -> int:
    """The workspace of the ``Authorization: Bearer`` REST API key, charged to its budget."""
    with store.read() as conn:
        workspace_id = authenticate_rest(
            conn, request.headers.get("authorization"), source_of(request)
        )
    _charge(request, ("rest", workspace_id))
    return workspace_id


RestWorkspace = Annotated[int, Depends(rest_workspace)]
