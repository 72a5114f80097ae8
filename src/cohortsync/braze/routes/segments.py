"""Braze's REST endpoints for segments: the list, and one segment's details."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from cohortsync.braze import messages, schemas
from cohortsync.braze.dependencies import RestWorkspace, StoreDep, rest_budget
from cohortsync.braze.responses import SUCCESS_RESPONSE, answer
from cohortsync.braze.segments import describe_filter
from cohortsync.braze.store import Store, segment_queries
from cohortsync.braze.validation import ApiError, is_identifier

SEGMENTS_PAGE_SIZE = 100

router = APIRouter(
    tags=["segments"],
    dependencies=[Depends(rest_budget)],
    responses={**SUCCESS_RESPONSE, **schemas.error_responses(400, 401, 404, 429, 500, 503)},
)


@router.get(
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
)
async def segments_list(request: Request, workspace_id: RestWorkspace, store: StoreDep) -> Response:
    """One hundred segments a page, oldest first unless sort_direction=desc."""
    params = dict(request.query_params)
    page_text = params.get("page", "0")
    if not page_text.isdigit() or len(page_text) > 9:
        raise ApiError(400, "page must be a non-negative integer")
    direction = params.get("sort_direction", "asc")
    if direction not in ("asc", "desc"):
        raise ApiError(400, "sort_direction must be asc or desc")
    rows = await run_in_threadpool(
        _segment_page, store, workspace_id, int(page_text), direction == "desc"
    )
    segments = [
        {"id": row.id, "name": row.name, "analytics_tracking_enabled": False, "tags": []}
        for row in rows
    ]
    return answer(request, {"segments": segments, "message": messages.SUCCESS})


def _segment_page(store: Store, workspace_id: int, page: int, descending: bool) -> list[Any]:
    with store.read() as conn:
        return segment_queries.segment_rows(
            conn,
            workspace_id,
            order="created",
            descending=descending,
            offset=page * SEGMENTS_PAGE_SIZE,
            limit=SEGMENTS_PAGE_SIZE,
        )


@router.get(
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
)
async def segments_details(
    request: Request, workspace_id: RestWorkspace, store: StoreDep
) -> Response:
    """The segment's filters in words (text_description) and as a tree (filter)."""
    segment_id = request.query_params.get("segment_id")
    if not segment_id or not is_identifier(segment_id):
        raise ApiError(400, "segment_id is required: the id from /segments/list")
    details = await run_in_threadpool(_segment_details, store, workspace_id, segment_id)
    return answer(request, {**details, "message": messages.SUCCESS})


def _segment_details(store: Store, workspace_id: int, segment_id: str) -> dict[str, Any]:
    with store.read() as conn:
        row = segment_queries.segment_row(conn, workspace_id, segment_id)
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
