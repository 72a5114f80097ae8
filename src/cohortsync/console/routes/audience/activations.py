"""Activations: Create Activation on a segment, its output mapping rows, next runs, Run now, delete.

An activation exports a segment's members to a Braze cohort. Saving builds
the same :class:`~cohortsync.definitions.Activation` as the command line and
calls the same library functions (``cohortsync audience activation
create|update``); the form shows the next run times of its schedule as the
cron expression is typed, and its page offers Run now and its last runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import ValidationError

from cohortsync.audience import activations, parents, segments
from cohortsync.catalog.audiences import SavedActivation
from cohortsync.catalog.auths import list_auths
from cohortsync.console.alert_form import FORMAT_OPTIONS
from cohortsync.console.attribute_form import attribute_context, is_rest_attribute
from cohortsync.console.context import Console, console_of
from cohortsync.console.field_errors import said
from cohortsync.console.launches import launched
from cohortsync.console.routes.audience.activation_forms import (
    MappingRow,
    activation_data,
    activation_problems,
    activation_values,
    mapping_from_form,
    new_activation_values,
    values_of,
)
from cohortsync.console.routes.audience.deletion import Deletable, add_delete_routes
from cohortsync.console.routes.audience.parents import columns_of
from cohortsync.console.schedule_form import UPCOMING_RUNS, time_zones
from cohortsync.definitions import Activation
from cohortsync.definitions.fields import MAX_THREADS, OPERATIONS
from cohortsync.errors import CohortsyncError
from cohortsync.jobs.cron import check_cron, upcoming_slots
from cohortsync.web.pages import prefixed, redirect

router = APIRouter()


@router.get("/audience/segments/{name}/activations/new")
def new_activation_form(
    request: Request, name: str, console: Console = Depends(console_of)
) -> Response:
    segment = segments.get_segment(name, settings=console.settings)
    return _activation_form(request, console, segment.name, new_activation_values(), [MappingRow()])


@router.post("/audience/segments/{name}/activations/new")
async def create_activation(
    request: Request, name: str, console: Console = Depends(console_of)
) -> Response:
    segment = segments.get_segment(name, settings=console.settings)
    return await _save_activation(request, console, segment.name, existing=None)


@router.post("/audience/segments/{name}/mapping")
async def mapping_fragment(
    request: Request,
    name: str,
    console: Console = Depends(console_of),
    action: str = "",
    row: int = -1,
) -> Response:
    """The output mapping rows after *Add mapping* or *Remove*."""
    mapping = mapping_from_form(await request.form())
    if action == "add":
        mapping.append(MappingRow())
    elif action == "remove" and 0 <= row < len(mapping):
        del mapping[row]
    if not mapping:
        mapping.append(MappingRow())
    context = {
        "segment_name": name,
        "mapping": mapping,
        "errors": {},
        **_segment_columns(name, console),
    }
    return console.pages.render(request, "console/_audience_mapping.html", context)


@router.post("/audience/attribute-fields")
async def attribute_fields(request: Request, console: Console = Depends(console_of)) -> Response:
    """The attribute fields for the authentication chosen (an htmx fragment)."""
    values = activation_values(await request.form())
    shown = is_rest_attribute(values["auth"], list_auths(console.catalog))
    return console.pages.render(
        request,
        "console/_attribute_fields.html",
        {"values": values, "errors": {}, **attribute_context(values, shown, _fields_url(request))},
    )


def _fields_url(request: Request) -> str:
    return prefixed(request, "/audience/attribute-fields")


@router.get("/audience/next-runs")
def next_runs_fragment(
    request: Request,
    console: Console = Depends(console_of),
    schedule: str = "",
    timezone: str = "UTC",
) -> Response:
    """The next run times of a cron expression in its zone, as it is typed."""
    return console.pages.render(
        request, "console/_audience_next_runs.html", next_runs(schedule, timezone or "UTC")
    )


def next_runs(schedule: str, timezone: str) -> dict[str, Any]:
    """The next runs of ``schedule`` in ``timezone`` (:data:`.UPCOMING_RUNS`), or why none."""
    if not schedule.strip():
        return {"times": [], "problem": None, "timezone": timezone}
    try:
        expr = check_cron(schedule, timezone)
    except CohortsyncError as error:
        return {"times": [], "problem": said(error), "timezone": timezone}
    times = upcoming_slots(expr, timezone, UPCOMING_RUNS)
    return {"times": times, "problem": None, "timezone": timezone}


@router.get("/audience/activations/{name}")
def activation_page(
    request: Request, name: str, console: Console = Depends(console_of), saved: str = ""
) -> Response:
    activation = activations.get_activation(name, settings=console.settings)
    values, mapping = values_of(activation)
    return _activation_form(
        request, console, activation.segment, values, mapping, existing=activation, saved=saved
    )


@router.post("/audience/activations/{name}")
async def update_activation(
    request: Request, name: str, console: Console = Depends(console_of)
) -> Response:
    activation = activations.get_activation(name, settings=console.settings)
    return await _save_activation(request, console, activation.segment, existing=activation)


@router.post("/audience/activations/{name}/run")
def run_now(request: Request, name: str, console: Console = Depends(console_of)) -> Response:
    activations.get_activation(name, settings=console.settings)
    settings = console.settings
    launch = console.launches.start(
        activations.job_label(name),
        lambda reporter, stop: activations.run_activation(
            name, reporter=reporter, stop=stop, settings=settings
        ),
    )
    return launched(request, launch)


add_delete_routes(
    router,
    Deletable(
        "activation",
        get=activations.get_activation,
        delete=activations.delete_activation,
        explanation="Its schedule stops. The cohort in Braze keeps its members, and the "
        "activation's runs stay in the history.",
    ),
)


async def _save_activation(
    request: Request, console: Console, segment: str, *, existing: SavedActivation | None
) -> Response:
    form = await request.form()
    values = activation_values(form)
    if existing is not None:
        values["name"] = existing.name
    mapping = mapping_from_form(form)
    rest_attribute = is_rest_attribute(values["auth"], list_auths(console.catalog))
    data = activation_data(values, mapping, segment, rest_attribute=rest_attribute)
    try:
        definition = Activation.model_validate(data)
    except ValidationError as error:
        return _activation_form(
            request,
            console,
            segment,
            values,
            mapping,
            existing=existing,
            errors=activation_problems(error),
            status=422,
        )
    try:
        if existing is None:
            activations.create_activation(definition, settings=console.settings)
        else:
            changes = {k: v for k, v in definition.model_dump().items() if k != "name"}
            activations.update_activation(existing.name, settings=console.settings, **changes)
    except CohortsyncError as error:
        return _activation_form(
            request,
            console,
            segment,
            values,
            mapping,
            existing=existing,
            failure=error,
            status=422,
        )
    return redirect(request, f"/audience/activations/{definition.name}?saved=1")


def _segment_columns(segment: str, console: Console) -> dict[str, Any]:
    try:
        saved = segments.get_segment(segment, settings=console.settings)
        parent = parents.get_parent(saved.parent, settings=console.settings)
    except CohortsyncError:
        return {"columns": [], "parent": None}
    columns, _ = columns_of(parent, console)
    return {"columns": columns, "parent": parent}


def _activation_form(
    request: Request,
    console: Console,
    segment: str,
    values: Mapping[str, Any],
    mapping: list[MappingRow],
    *,
    existing: SavedActivation | None = None,
    errors: dict[str, str] | None = None,
    failure: CohortsyncError | None = None,
    saved: str = "",
    status: int = 200,
) -> Response:
    runs = (
        activations.activation_runs(existing.name, limit=5, settings=console.settings)
        if existing is not None
        else []
    )
    auths = list_auths(console.catalog)
    shown = is_rest_attribute(str(values.get("auth", "")), auths)
    context = {
        "segment_name": segment,
        "values": values,
        "mapping": mapping,
        "errors": errors or {},
        "failure": failure,
        "existing": existing,
        "saved": saved,
        "runs": runs,
        "auths": [auth.name for auth in auths],
        **attribute_context(values, shown, _fields_url(request)),
        "operations": OPERATIONS,
        "alert_format_options": FORMAT_OPTIONS,
        "max_threads": MAX_THREADS,
        "zones": time_zones(),
        "next": next_runs(str(values.get("schedule", "")), str(values.get("timezone") or "UTC")),
        **_segment_columns(segment, console),
    }
    return console.pages.render(
        request, "console/audience_activation.html", context, status_code=status
    )
