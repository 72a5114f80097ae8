"""Braze's REST endpoints for user profiles: track, alias, identify, export.

Each operation is a plain function of the store, the caller's workspace and
the request body, run in the thread pool (see :mod:`.registration`).
"""

from __future__ import annotations

from typing import Any

from cohortsync.braze import rest, schemas
from cohortsync.braze.dependencies import rest_budget, rest_workspace
from cohortsync.braze.profiles import identity_operations, rest_operations
from cohortsync.braze.routes.registration import operations_router
from cohortsync.braze.store import Store

REST_ERRORS = schemas.error_responses(400, 401, 409, 413, 415, 429, 500, 503)

router, _route = operations_router(
    tag="users", budget=rest_budget, caller=rest_workspace, errors=REST_ERRORS
)


def _with_errors(errors: list[str], **fields: Any) -> dict[str, Any]:
    return {**fields, "errors": errors} if errors else fields


@_route("/users/track", "Create or update users", schemas.TRACK)
def track(store: Store, workspace_id: int, body: dict[str, Any]) -> dict[str, Any]:
    """Each object names a user by external_id or user_alias; other keys are attributes."""
    items = rest.parse_track(body)
    errors = rest_operations.track_users(store, workspace_id, items)
    return _with_errors(errors, attributes_processed=len(items) - len(errors))


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
    """Deletes the users with their aliases, devices, cohort memberships and attributes."""
    request = rest.parse_delete(body)
    return {"deleted": identity_operations.delete_users(store, workspace_id, request)}


@_route("/users/export/ids", "Export user profiles", schemas.EXPORT_IDS)
def export_ids(store: Store, workspace_id: int, body: dict[str, Any]) -> dict[str, Any]:
    """Profiles by external ids, aliases or a device id, with the cohorts each belongs to."""
    external_ids, aliases, device_id = rest.parse_export(body)
    exported = rest_operations.export_users(store, workspace_id, external_ids, aliases, device_id)
    fields = body.get("fields_to_export") or []
    if fields:
        exported["users"] = [{k: v for k, v in u.items() if k in fields} for u in exported["users"]]
    return exported
