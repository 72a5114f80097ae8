"""Braze's REST export endpoints for campaigns and Canvases: the lists and one's details.

Shaped as Braze documents them (https://www.braze.com/docs/api/endpoints/export/campaigns/
and .../export/canvas/): ``/campaigns/list`` and ``/canvas/list`` return one
hundred a page by creation time, ``/campaigns/details`` and
``/canvas/details`` one campaign or Canvas with its messages. Fields Braze
has and this service does not (tags, teams, conversion behaviours,
archiving) are present and empty, so clients read them as they would.

``/sandbox/campaigns/sends`` is this service's own, not Braze's: the outbox
of a launch, since nothing is delivered.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from cohortsync.braze import messages, schemas
from cohortsync.braze.campaigns.launching import campaign_sends
from cohortsync.braze.dependencies import RestWorkspace, StoreDep, rest_budget
from cohortsync.braze.responses import SUCCESS_RESPONSE, answer
from cohortsync.braze.store import Store, campaign_queries
from cohortsync.braze.validation import ApiError, is_identifier

PAGE_SIZE = 100
SENDS_PAGE_SIZE = 100
EDITED_AFTER = "last_edit.time[gt]"
# The spelling some clients use for Braze's parameter; read the same.
EDITED_AFTER_ALIAS = "last_edited.time[gt]"

router = APIRouter(
    tags=["campaigns"],
    dependencies=[Depends(rest_budget)],
    responses={**SUCCESS_RESPONSE, **schemas.error_responses(400, 401, 404, 429, 500, 503)},
)


def _query(name: str, schema: dict[str, Any], *, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema}


LIST_PARAMETERS = [
    _query("page", {"type": "integer", "minimum": 0}),
    _query("include_archived", {"type": "boolean"}),
    _query("sort_direction", {"type": "string", "enum": ["asc", "desc"]}),
    _query(EDITED_AFTER, {"type": "string", "format": "date-time"}),
]


def _page(params: dict[str, str]) -> int:
    text = params.get("page", "0")
    if not text.isdigit() or len(text) > 9:
        raise ApiError(400, "page must be a non-negative integer")
    return int(text)


def _boolean(params: dict[str, str], name: str) -> bool:
    text = params.get(name, "false").lower()
    if text not in ("true", "false"):
        raise ApiError(400, f"{name} must be true or false")
    return text == "true"


_SHORT_OFFSET = re.compile(r"([+-])(\d):(\d\d)$")


def _edited_after(params: dict[str, str]) -> str | None:
    """``last_edit.time[gt]`` as the store's UTC text; Braze's own example writes ``-5:00``."""
    text = params.get(EDITED_AFTER, params.get(EDITED_AFTER_ALIAS))
    if text is None:
        return None
    normalised = _SHORT_OFFSET.sub(r"\g<1>0\2:\3", text.strip()).replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(normalised)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat(timespec="milliseconds")
    except (ValueError, OverflowError):
        raise ApiError(
            400, f"{EDITED_AFTER} must be a time as yyyy-MM-DDTHH:mm:ss (optionally with offset)"
        ) from None


def _listing(request: Request, store: Store, workspace_id: int, kind: str) -> list[Any]:
    params = dict(request.query_params)
    page = _page(params)
    _boolean(params, "include_archived")  # nothing is archived here: both answers are the same
    direction = params.get("sort_direction", "asc")
    if direction not in ("asc", "desc"):
        raise ApiError(400, "sort_direction must be asc or desc")
    edited_after = _edited_after(params)
    with store.read() as conn:
        return campaign_queries.campaign_rows(
            conn,
            workspace_id,
            kind,
            descending=direction == "desc",
            edited_after=edited_after,
            offset=page * PAGE_SIZE,
            limit=PAGE_SIZE,
        )


@router.get(
    "/campaigns/list",
    summary="Export campaigns list",
    openapi_extra={"parameters": LIST_PARAMETERS},
)
async def campaigns_list(
    request: Request, workspace_id: RestWorkspace, store: StoreDep
) -> Response:
    """One hundred campaigns a page, oldest first unless sort_direction=desc."""
    rows = await run_in_threadpool(_listing, request, store, workspace_id, "campaign")
    listed = [
        {
            "id": row.id,
            "last_edited": row.updated_at,
            "name": row.name,
            "is_api_campaign": False,
            "tags": [],
        }
        for row in rows
    ]
    return answer(request, {"campaigns": listed, "message": messages.SUCCESS})


@router.get(
    "/canvas/list",
    summary="Export Canvas list",
    openapi_extra={"parameters": LIST_PARAMETERS},
)
async def canvas_list(request: Request, workspace_id: RestWorkspace, store: StoreDep) -> Response:
    """One hundred Canvases a page, oldest first unless sort_direction=desc."""
    rows = await run_in_threadpool(_listing, request, store, workspace_id, "canvas")
    listed = [
        {"id": row.id, "last_edited": row.updated_at, "name": row.name, "tags": []} for row in rows
    ]
    return answer(request, {"canvases": listed, "message": messages.SUCCESS})


def step_id(campaign_id: str, position: int) -> str:
    """A stable API identifier of a step (its message variation), derived from its place."""
    return str(uuid.uuid5(uuid.UUID(campaign_id), f"step-{position}"))


def _message(step: Any) -> dict[str, Any]:
    """A step's message as Braze describes one of that channel."""
    content = "alert" if step.channel == "push" else "body"
    return {"channel": step.channel, "name": step.name, content: step.message}


def _campaign(
    store: Store, workspace_id: int, kind: str, campaign_id: str
) -> tuple[Any, list[Any], list[Any]]:
    with store.read() as conn:
        row = campaign_queries.campaign_row(conn, workspace_id, kind, campaign_id)
        if row is None or row.id != campaign_id:
            word = "campaign_id" if kind == "campaign" else "canvas_id"
            raise ApiError(404, f"no {kind} with {word} {campaign_id}")
        return (
            row,
            campaign_queries.steps_of(conn, row.id),
            campaign_queries.launches_of(conn, row.id),
        )


def _identifier(request: Request, name: str, listing: str) -> str:
    value = request.query_params.get(name)
    if not value or not is_identifier(value):
        raise ApiError(400, f"{name} is required: the id from {listing}")
    return value


def _common(row: Any, steps: list[Any]) -> dict[str, Any]:
    return {
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "name": row.name,
        "description": "",
        "archived": False,
        "draft": row.status == "draft",
        "enabled": row.status != "draft",
        "has_post_launch_draft": False,
        "schedule_type": "time_based",
        "channels": list(dict.fromkeys(step.channel for step in steps)),
        "tags": [],
        "teams": [],
    }


@router.get(
    "/campaigns/details",
    summary="Export campaign details",
    openapi_extra={"parameters": [_query("campaign_id", {"type": "string"}, required=True)]},
)
async def campaigns_details(
    request: Request, workspace_id: RestWorkspace, store: StoreDep
) -> Response:
    """The campaign's schedule, channels and its message, by message variation id."""
    campaign_id = _identifier(request, "campaign_id", "/campaigns/list")
    row, steps, launches = await run_in_threadpool(
        _campaign, store, workspace_id, "campaign", campaign_id
    )
    body = {
        **_common(row, steps),
        "first_sent": launches[0].started_at if launches else None,
        "last_sent": launches[-1].started_at if launches else None,
        "messages": {step_id(row.id, step.position): _message(step) for step in steps},
        "conversion_behaviors": [],
        "message": messages.SUCCESS,
    }
    return answer(request, body)


@router.get(
    "/canvas/details",
    summary="Export Canvas details",
    openapi_extra={"parameters": [_query("canvas_id", {"type": "string"}, required=True)]},
)
async def canvas_details(
    request: Request, workspace_id: RestWorkspace, store: StoreDep
) -> Response:
    """The Canvas's one variant and its steps in order, each leading to the next."""
    canvas_id = _identifier(request, "canvas_id", "/canvas/list")
    row, steps, launches = await run_in_threadpool(
        _campaign, store, workspace_id, "canvas", canvas_id
    )
    ids = [step_id(row.id, step.position) for step in steps]
    described = []
    for index, step in enumerate(steps):
        following = ids[index + 1 : index + 2]
        described.append(
            {
                "name": step.name,
                "type": "message",
                "id": ids[index],
                "next_step_ids": following,
                "next_paths": [{"name": None, "next_step_id": n} for n in following],
                "channels": [step.channel],
                "messages": {ids[index]: _message(step)},
            }
        )
    body = {
        **_common(row, steps),
        "first_entry": launches[0].started_at if launches else None,
        "last_entry": launches[-1].started_at if launches else None,
        "variants": [
            {
                "name": "Variant 1",
                "id": str(uuid.uuid5(uuid.UUID(row.id), "variant-1")),
                "first_step_ids": ids[:1],
                "first_step_id": ids[0] if ids else None,
            }
        ],
        "steps": described,
        "message": messages.SUCCESS,
    }
    return answer(request, body)


@router.get(
    "/sandbox/campaigns/sends",
    summary="The outbox of a campaign's or Canvas's latest launch (this sandbox only)",
    openapi_extra={
        "parameters": [
            _query("campaign_id", {"type": "string"}),
            _query("canvas_id", {"type": "string"}),
            _query("page", {"type": "integer", "minimum": 0}),
        ]
    },
)
async def sandbox_sends(request: Request, workspace_id: RestWorkspace, store: StoreDep) -> Response:
    """Not a Braze endpoint: nothing is delivered here, so the outbox is what there is to read.

    One hundred messages a page, by step then user, of the latest launch.
    """
    params = dict(request.query_params)
    kind = "canvas" if "canvas_id" in params else "campaign"
    campaign_id = _identifier(
        request, f"{kind}_id", "/campaigns/list" if kind == "campaign" else "/canvas/list"
    )
    page = _page(params)
    await run_in_threadpool(_campaign, store, workspace_id, kind, campaign_id)  # 404 first
    found = await run_in_threadpool(
        lambda: campaign_sends(
            store,
            campaign_id,
            workspace=workspace_id,
            kind=kind,
            offset=page * SENDS_PAGE_SIZE,
            limit=SENDS_PAGE_SIZE,
        )
    )
    return answer(request, {**found, "message": messages.SUCCESS})
