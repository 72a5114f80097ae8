"""The HTTP routes of the Braze-compatible service (FastAPI).

Partner routes check, in the spec's order, the partner API key, the client
secret and the partner's enablement, then the rate limit of (partner,
workspace), then the body, then the cohort's lock; only then do they write.
REST routes authenticate with the workspace's REST API key (Bearer).

Every handler reads its raw body through :mod:`.validation`, so statuses and
messages are the spec's, and does its store work in one thread-pool hop.
Every answer of a rate-limited route carries ``X-RateLimit-*`` headers;
requests that could not be tied to a workspace count against an anonymous
budget of their partner (or of the REST API).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import sqlalchemy as sa
from fastapi import FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

import cohortsync
from cohortsync.braze import matching, messages, rest, schemas
from cohortsync.braze.keys import PartnerCaller, authenticate_partner, authenticate_rest
from cohortsync.braze.profiles import rest_operations
from cohortsync.braze.ratelimit import Decision, RateLimit, RateLimiter, parse_rate_limit
from cohortsync.braze.segments import describe_filter
from cohortsync.braze.store import Store, StoreBusy
from cohortsync.braze.store import segments as segments_table
from cohortsync.braze.validation import (
    ApiError,
    credential,
    is_identifier,
    parse_cohort_definition,
    parse_membership_changes,
    read_json_object,
)

SEGMENTS_PAGE_SIZE = 100
PARTNER_ERRORS = schemas.error_responses(400, 401, 413, 415, 423, 429, 500, 503)
REST_ERRORS = schemas.error_responses(400, 401, 409, 413, 415, 429, 500, 503)

# What SQLite and PostgreSQL say when a statement meets a table or column the
# store does not have: a schema that does not match the code, not a busy store.
_SCHEMA_FAILURES = ("no such table", "no such column", "has no column named")
_SCHEMA_SQLSTATES = ("42P01", "42703")  # undefined_table, undefined_column


def is_schema_error(error: sa.exc.DBAPIError) -> bool:
    """Whether ``error`` comes from a schema that does not match the code."""
    if getattr(error.orig, "sqlstate", None) in _SCHEMA_SQLSTATES:
        return True
    reason = str(error.orig).lower()
    return any(failure in reason for failure in _SCHEMA_FAILURES)


SUCCESS_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"description": 'Done: {"message": "success"}.'}
}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, headers=headers, media_type="application/json"
    )


def create_app(store: Store, *, rate_limit: RateLimit | str | int = RateLimit()) -> FastAPI:
    """The service over an open store, with its own rate-limit counters."""
    app = FastAPI(
        title="cohortsync Braze-compatible service",
        version=getattr(cohortsync, "__version__", "0.1.0"),
        description=(
            "Braze's partner cohort import API (`/partners/{partner}/cohorts[/users]`) and the "
            "REST endpoints around it, over a real store of users, cohorts and segments."
        ),
    )
    limiter = RateLimiter(parse_rate_limit(rate_limit))
    app.state.store = store
    app.state.limiter = limiter

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, error: StarletteHTTPException) -> Response:
        return json_response(
            {"message": str(error.detail)}, error.status_code, dict(error.headers or {})
        )

    async def answer(
        key: tuple[Any, ...],
        work: Callable[[dict[str, Any], list[Decision]], Any],
        request: Request,
    ) -> Response:
        """Run ``work`` in the thread pool and turn its outcome into a response.

        ``work`` appends the rate-limit decision once it knows the workspace;
        failures before that count against ``key``, the anonymous budget.
        """
        decisions: list[Decision] = []
        try:
            body = await read_json_object(
                request.headers.get("content-type"),
                request.headers.get("content-length"),
                request.stream(),
            )
            result = await run_in_threadpool(work_with_body, work, body, decisions)
            status, payload = 200, result
        except ApiError as error:
            status, payload = error.status, error.body()
            extra = error.headers
        else:
            extra = {}
        if not decisions:
            decisions.append(limiter.hit(key))
        headers = {**decisions[0].headers(), **extra}
        return json_response(payload, status, headers)

    def work_with_body(
        work: Callable[[dict[str, Any], list[Decision]], Any],
        body: dict[str, Any],
        decisions: list[Decision],
    ) -> Any:
        """Run ``work``, turning store failures into answers a client can act on."""
        try:
            return work(body, decisions)
        except (sa.exc.OperationalError, sa.exc.ProgrammingError) as error:
            if is_schema_error(error):
                # The operator's to fix: retrying cannot help, so no 503 and no Retry-After.
                raise ApiError(500, messages.STORE_SCHEMA_MISMATCH) from None
            if isinstance(error, sa.exc.ProgrammingError):
                raise
            raise ApiError(503, messages.STORE_UNAVAILABLE, headers={"Retry-After": "1"}) from None
        except StoreBusy:
            raise ApiError(503, messages.STORE_UNAVAILABLE, headers={"Retry-After": "1"}) from None
        except sa.exc.DataError:
            # A value the database cannot hold slipped past validation (e.g. a NUL byte).
            raise ApiError(400, "A value in the request cannot be stored as given") from None
        except sa.exc.IntegrityError:
            # PostgreSQL: a concurrent request created the same user or alias first.
            raise ApiError(409, messages.CONFLICT, headers={"Retry-After": "1"}) from None

    def partner_work(
        partner: str,
        prepare: Callable[[sa.Connection, PartnerCaller, dict[str, Any]], Any],
        finish: Callable[[PartnerCaller, Any], None],
    ) -> Callable[[dict[str, Any], list[Decision]], Any]:
        """Checks and reads on one snapshot (``prepare``), then the write (``finish``)."""

        def work(body: dict[str, Any], decisions: list[Decision]) -> Any:
            with store.read() as conn:
                caller = authenticate_partner(
                    conn,
                    partner,
                    credential(body.get("partner_api_key")),
                    credential(body.get("client_secret")),
                )
                decision = limiter.hit(("partner", partner, caller.workspace_id))
                decisions.append(decision)
                if not decision.allowed:
                    raise ApiError(429, messages.RATE_LIMITED)
                prepared = prepare(conn, caller, body)
            finish(caller, prepared)
            return {"message": messages.SUCCESS}

        return work

    @app.post(
        "/partners/{partner}/cohorts",
        summary="Create or rename a cohort",
        tags=["partner cohort import"],
        openapi_extra=schemas.json_body(schemas.COHORT_DEFINITION),
        responses={**SUCCESS_RESPONSE, **PARTNER_ERRORS},
    )
    async def create_cohort(partner: str, request: Request) -> Response:
        """Called when a cohort is first exported and whenever its name changes."""

        def prepare(_conn: sa.Connection, _caller: PartnerCaller, body: dict[str, Any]) -> Any:
            return parse_cohort_definition(body)

        def finish(caller: PartnerCaller, definition: Any) -> None:
            matching.define_cohort(store, caller, definition)

        work = partner_work(partner, prepare, finish)
        return await answer(("partner", partner, None), work, request)

    @app.post(
        "/partners/{partner}/cohorts/users",
        summary="Add users to a cohort or remove them",
        tags=["partner cohort import"],
        openapi_extra=schemas.json_body(schemas.MEMBERSHIP_CHANGES),
        responses={**SUCCESS_RESPONSE, **PARTNER_ERRORS},
    )
    async def change_cohort_users(partner: str, request: Request) -> Response:
        """At most 1,000 identifiers per request; unknown identifiers are dropped."""

        def prepare(conn: sa.Connection, caller: PartnerCaller, body: dict[str, Any]) -> Any:
            changes = parse_membership_changes(body)
            return changes, matching.resolve_request(store, conn, caller, changes)

        def finish(caller: PartnerCaller, prepared: Any) -> None:
            matching.write_changes(store, caller, *prepared)

        work = partner_work(partner, prepare, finish)
        return await answer(("partner", partner, None), work, request)

    def rest_work(
        request: Request, operation: Callable[[int, dict[str, Any]], Any]
    ) -> Callable[[dict[str, Any], list[Decision]], Any]:
        """Bearer authentication and the workspace's REST budget around ``operation``."""
        authorization = request.headers.get("authorization")

        def work(body: dict[str, Any], decisions: list[Decision]) -> Any:
            with store.read() as conn:
                workspace_id = authenticate_rest(conn, authorization)
            decision = limiter.hit(("rest", workspace_id))
            decisions.append(decision)
            if not decision.allowed:
                raise ApiError(429, messages.RATE_LIMITED)
            return {**operation(workspace_id, body), "message": messages.SUCCESS}

        return work

    def with_errors(errors: list[str], **fields: Any) -> dict[str, Any]:
        return {**fields, "errors": errors} if errors else fields

    rest_route: dict[str, Any] = {
        "tags": ["users"],
        "responses": {**SUCCESS_RESPONSE, **REST_ERRORS},
    }

    @app.post(
        "/users/track",
        summary="Create or update users",
        openapi_extra=schemas.json_body(schemas.TRACK),
        **rest_route,
    )
    async def track(request: Request) -> Response:
        """Each object names a user by external_id or user_alias; other keys are attributes."""

        def operation(workspace_id: int, body: dict[str, Any]) -> dict[str, Any]:
            items = rest.parse_track(body)
            errors = rest_operations.track_users(store, workspace_id, items)
            return with_errors(errors, attributes_processed=len(items) - len(errors))

        return await answer(("rest", None), rest_work(request, operation), request)

    @app.post(
        "/users/alias/new",
        summary="Add aliases",
        openapi_extra=schemas.json_body(schemas.ALIAS_NEW),
        **rest_route,
    )
    async def alias_new(request: Request) -> Response:
        """With external_id: an alias on that user; without: a new alias-only user."""

        def operation(workspace_id: int, body: dict[str, Any]) -> dict[str, Any]:
            items = rest.parse_alias_new(body)
            return with_errors(rest_operations.add_aliases(store, workspace_id, items))

        return await answer(("rest", None), rest_work(request, operation), request)

    @app.post(
        "/users/identify",
        summary="Identify alias-only users",
        openapi_extra=schemas.json_body(schemas.IDENTIFY),
        **rest_route,
    )
    async def identify(request: Request) -> Response:
        """Gives an alias-only user an external id, merging it into that user when one exists."""

        def operation(workspace_id: int, body: dict[str, Any]) -> dict[str, Any]:
            items = rest.parse_identify(body)
            return with_errors(rest_operations.identify_users(store, workspace_id, items))

        return await answer(("rest", None), rest_work(request, operation), request)

    @app.post(
        "/users/export/ids",
        summary="Export user profiles",
        openapi_extra=schemas.json_body(schemas.EXPORT_IDS),
        **rest_route,
    )
    async def export_ids(request: Request) -> Response:
        """Profiles by external ids, aliases or a device id, with the cohorts each belongs to."""

        def operation(workspace_id: int, body: dict[str, Any]) -> dict[str, Any]:
            external_ids, aliases, device_id = rest.parse_export(body)
            exported = rest_operations.export_users(
                store, workspace_id, external_ids, aliases, device_id
            )
            fields = body.get("fields_to_export") or []
            if fields:
                exported["users"] = [
                    {k: v for k, v in u.items() if k in fields} for u in exported["users"]
                ]
            return exported

        return await answer(("rest", None), rest_work(request, operation), request)

    async def answer_get(
        request: Request, operation: Callable[[int, dict[str, Any]], Any]
    ) -> Response:
        """GET routes have no body: their query parameters stand in for it."""
        decisions: list[Decision] = []
        try:
            params = dict(request.query_params)
            result = await run_in_threadpool(
                work_with_body, rest_work(request, operation), params, decisions
            )
            status, payload, extra = 200, result, {}
        except ApiError as error:
            status, payload, extra = error.status, error.body(), error.headers
        if not decisions:
            decisions.append(limiter.hit(("rest", None)))
        return json_response(payload, status, {**decisions[0].headers(), **extra})

    segments_route: dict[str, Any] = {
        "tags": ["segments"],
        "responses": {**SUCCESS_RESPONSE, **schemas.error_responses(400, 401, 404, 429, 500, 503)},
    }

    @app.get(
        "/segments/list",
        summary="List segments",
        openapi_extra={
            "parameters": [
                {
                    "name": "page",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 0},
                },
                {
                    "name": "sort_direction",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "enum": ["asc", "desc"]},
                },
            ]
        },
        **segments_route,
    )
    async def segments_list(request: Request) -> Response:
        """One hundred segments a page, oldest first unless sort_direction=desc."""

        def operation(workspace_id: int, params: dict[str, Any]) -> dict[str, Any]:
            page_text = params.get("page", "0")
            if not page_text.isdigit() or len(page_text) > 9:
                raise ApiError(400, "page must be a non-negative integer")
            direction = params.get("sort_direction", "asc")
            if direction not in ("asc", "desc"):
                raise ApiError(400, "sort_direction must be asc or desc")
            keys = [segments_table.c.created_at, segments_table.c.name]
            with store.read() as conn:
                rows = conn.execute(
                    sa.select(segments_table.c.id, segments_table.c.name)
                    .where(segments_table.c.workspace_id == workspace_id)
                    .order_by(*(k.desc() if direction == "desc" else k for k in keys))
                    .offset(int(page_text) * SEGMENTS_PAGE_SIZE)
                    .limit(SEGMENTS_PAGE_SIZE)
                ).all()
            return {
                "segments": [
                    {
                        "id": row.id,
                        "name": row.name,
                        "analytics_tracking_enabled": False,
                        "tags": [],
                    }
                    for row in rows
                ]
            }

        return await answer_get(request, operation)

    @app.get(
        "/segments/details",
        summary="Describe a segment",
        openapi_extra={
            "parameters": [
                {
                    "name": "segment_id",
                    "in": "query",
                    "required": True,
                    "schema": {"type": "string"},
                }
            ]
        },
        **segments_route,
    )
    async def segments_details(request: Request) -> Response:
        """The segment's filters in words (text_description) and as a tree (filter)."""

        def operation(workspace_id: int, params: dict[str, Any]) -> dict[str, Any]:
            segment_id = params.get("segment_id")
            if not segment_id or not is_identifier(segment_id):
                raise ApiError(400, "segment_id is required: the id from /segments/list")
            with store.read() as conn:
                row = conn.execute(
                    sa.select(segments_table).where(
                        segments_table.c.workspace_id == workspace_id,
                        segments_table.c.id == segment_id,
                    )
                ).first()
                if row is None:
                    raise ApiError(404, f"no segment with segment_id {segment_id}")
                tree = orjson.loads(row.filter)
                text = describe_filter(conn, workspace_id, tree)
            return {
                "created_at": row.created_at,
                "updated_at": row.updated_at,
                "name": row.name,
                "description": None,
                "text_description": text,
                "filter": tree,
                "tags": [],
            }

        return await answer_get(request, operation)

    return app
