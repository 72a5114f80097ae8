"""Braze's REST endpoints for user profiles: track, alias, identify, export.

Each operation is a plain function of the store, the caller's workspace and
the request body, run in the thread pool (see :mod:`.registration`).
``/users/track``, the one an export sends most, is served by a plain handler
(:mod:`.direct`) that does what the other routes' dependencies do, in the
same order, without FastAPI's per-request work.
"""

from __future__ import annotations

import inspect
from collections import Counter
from typing import Any

from fastapi import Request, Response
from starlette.concurrency import run_in_threadpool

from cohortsync.braze import messages, rest, rest_track, schemas
from cohortsync.braze.dependencies import json_body, rest_budget, rest_workspace
from cohortsync.braze.profiles import identity_operations, rest_operations, tracking
from cohortsync.braze.responses import answer
from cohortsync.braze.routes.direct import DirectRoute
from cohortsync.braze.routes.registration import WithStatus, operations_router
from cohortsync.braze.store import Store

REST_ERRORS = schemas.error_responses(400, 401, 409, 413, 415, 429, 500, 503)

router, _route = operations_router(
    tag="users", budget=rest_budget, caller=rest_workspace, errors=REST_ERRORS
)


def _with_errors(errors: list[str], **fields: Any) -> dict[str, Any]:
    return {**fields, "errors": errors} if errors else fields


def track(store: Store, workspace_id: int, body: dict[str, Any]) -> WithStatus | dict[str, Any]:
    """Each object addresses one profile by external_id, user_alias, braze_id, email or phone.

    Attributes set Braze's profile fields and custom attributes (``null``
    removes one; ``{"inc": n}``, ``{"add": [...]}`` and ``{"remove": [...]}``
    change one); events and purchases are recorded on the profile. Invalid
    objects are answered in ``errors`` (status 201) and the others processed.
    """
    parsed = rest_track.parse_track(body)
    errors = parsed.errors + tracking.track(store, workspace_id, parsed.objects)
    failed = Counter(error["input_array"] for error in errors)
    counts = {f"{array}_processed": n - failed[array] for array, n in parsed.sent.items()}
    if errors:
        ordered = sorted(
            errors, key=lambda e: (rest_track.ARRAYS.index(e["input_array"]), e["index"])
        )
        return WithStatus(201, {**counts, "errors": ordered})
    return counts


def _authenticated_track(store: Store, request: Request, body: dict[str, Any]) -> Response:
    result = track(store, rest_workspace(store, request), body)
    status = 200
    if isinstance(result, WithStatus):
        status, result = result.status, result.result
    return answer(request, {**result, "message": messages.SUCCESS}, status)


async def serve_track(request: Request) -> Response:
    """``/users/track`` as the other routes are served: the budget, the body, then in one
    thread-pool call the caller (401, 429) and the operation."""
    await rest_budget(request)
    body = await json_body(request)
    response: Response = await run_in_threadpool(
        _authenticated_track, request.app.state.store, request, body
    )
    return response


router.add_api_route(
    "/users/track",
    serve_track,
    methods=["POST"],
    name=track.__name__,
    summary="Record attributes, events and purchases",
    description=inspect.cleandoc(track.__doc__ or ""),
    openapi_extra=schemas.json_body(schemas.TRACK),
    route_class_override=DirectRoute,
)


@_route("/users/alias/new", "Add aliases", schemas.ALIAS_NEW)
def alias_new(store: Store, workspace_id: int, body: dict[str, Any]) -> dict[str, Any]:
    """With an external_id, an alias on that user (if it exists); without, an alias-only user.

    A taken alias, or a label the user has already, changes nothing and still
    counts as processed, as in Braze.
    """
    items = rest.parse_alias_new(body)
    return {"aliases_processed": identity_operations.add_aliases(store, workspace_id, items)}


@_route("/users/identify", "Identify alias-only or email-only users", schemas.IDENTIFY)
def identify(store: Store, workspace_id: int, body: dict[str, Any]) -> dict[str, Any]:
    """Gives an unidentified profile an external id, combining it into that user when one exists.

    ``errors`` names the objects that identified nobody, and why.
    """
    aliases, emails, merge = rest.parse_identify(body)
    errors = identity_operations.identify_users(store, workspace_id, aliases, emails, merge=merge)
    return _with_errors(errors, aliases_processed=len(aliases) + len(emails) - len(errors))


@_route("/users/delete", "Delete users", schemas.DELETE)
def delete(store: Store, workspace_id: int, body: dict[str, Any]) -> dict[str, Any]:
    """Deletes the users with all they hold: aliases, devices, memberships, fields, events."""
    request = rest.parse_delete(body)
    return {"deleted": identity_operations.delete_users(store, workspace_id, request)}


@_route("/users/export/ids", "Export user profiles", schemas.EXPORT_IDS)
def export_ids(store: Store, workspace_id: int, body: dict[str, Any]) -> dict[str, Any]:
    """Profiles by external ids, aliases, a device id, a braze_id, an email or a phone.

    Braze's profile fields at the top level, ``custom_attributes``,
    ``custom_events`` and ``purchases`` summaries, ``devices`` and the
    ``cohorts`` the profile belongs to; a field the profile lacks is left out.
    """
    return rest_operations.export_users(store, workspace_id, rest.parse_export(body))
