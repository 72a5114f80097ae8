"""Segments: the builder on a parent's table, its live count and fragments, save and delete.

Adding or removing a rule or a group posts the builder's form and re-renders
it; typing posts it to the live count, which compiles the rules against the
parent table and counts the rows in the warehouse. Saving builds the same
:class:`~cohortsync.definitions.Segment` as the command line and calls the
same library functions (``cohortsync audience segment create|update``), so
the checks against the warehouse and the catalog are the library's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import ValidationError

from cohortsync.audience import activations, parents, segments
from cohortsync.audience.rules import NULL_TESTS
from cohortsync.catalog.audiences import SavedParent
from cohortsync.console.context import Console, console_of
from cohortsync.console.routes.audience.deletion import Deletable, add_delete_routes
from cohortsync.console.routes.audience.parents import columns_of
from cohortsync.console.routes.audience.rule_forms import (
    Builder,
    Evaluation,
    apply_action,
    builder_from_form,
    builder_from_rules,
    evaluate,
)
from cohortsync.definitions import Segment, field_problems
from cohortsync.errors import CohortsyncError
from cohortsync.web.pages import redirect

router = APIRouter()

# How each operator reads in the builder.
OPERATOR_TEXT = {
    "=": "equals",
    "!=": "does not equal",
    "<": "is less than",
    "<=": "is at most",
    ">": "is greater than",
    ">=": "is at least",
    "in": "is one of",
    "between": "is between",
    "like": "matches",
    "is null": "is empty",
    "is not null": "is not empty",
}
JOIN_TEXT = {"and": "all", "or": "any"}


@router.post("/audience/parents/{name}/builder")
async def builder_fragment(
    request: Request,
    name: str,
    console: Console = Depends(console_of),
    action: str = "",
    group: int = -1,
    rule: int = -1,
) -> Response:
    """The builder re-rendered after a button or an attribute change, with the count beside it."""
    parent = parents.get_parent(name, settings=console.settings)
    builder = apply_action(builder_from_form(await request.form()), action, group, rule)
    evaluation = evaluate(builder, parent, console)
    context = {**_builder_context(parent, builder, evaluation, console), "oob": True}
    return console.pages.render(request, "console/_audience_builder.html", context)


@router.post("/audience/parents/{name}/count")
async def count_fragment(
    request: Request, name: str, console: Console = Depends(console_of)
) -> Response:
    """The live count of the rules posted, and each rule's problem in its place."""
    parent = parents.get_parent(name, settings=console.settings)
    builder = builder_from_form(await request.form())
    evaluation = evaluate(builder, parent, console)
    context = {**_builder_context(parent, builder, evaluation, console), "oob": True}
    return console.pages.render(request, "console/_audience_count.html", context)


@router.get("/audience/parents/{name}/segments/new")
def new_segment_form(
    request: Request, name: str, console: Console = Depends(console_of)
) -> Response:
    parent = parents.get_parent(name, settings=console.settings)
    builder = Builder()
    return _segment_form(request, console, parent, builder, {})


@router.post("/audience/parents/{name}/segments/new")
async def create_segment(
    request: Request, name: str, console: Console = Depends(console_of)
) -> Response:
    parent = parents.get_parent(name, settings=console.settings)
    return await _save_segment(request, console, parent, existing=None)


@router.get("/audience/segments/{name}")
def segment_page(
    request: Request, name: str, console: Console = Depends(console_of), saved: str = ""
) -> Response:
    segment = segments.get_segment(name, settings=console.settings)
    parent = parents.get_parent(segment.parent, settings=console.settings)
    builder = builder_from_rules(segment.rules)
    values = {"name": segment.name, "description": segment.description or ""}
    return _segment_form(
        request,
        console,
        parent,
        builder or Builder(),
        values,
        existing=name,
        saved=saved,
        unshowable=segment.rules if builder is None else None,
    )


@router.post("/audience/segments/{name}")
async def update_segment(
    request: Request, name: str, console: Console = Depends(console_of)
) -> Response:
    segment = segments.get_segment(name, settings=console.settings)
    parent = parents.get_parent(segment.parent, settings=console.settings)
    return await _save_segment(request, console, parent, existing=name)


async def _save_segment(
    request: Request, console: Console, parent: SavedParent, *, existing: str | None
) -> Response:
    form = await request.form()
    builder = builder_from_form(form)
    name = existing or str(form.get("name", "")).strip()
    description = str(form.get("description", "")).strip()
    values = {"name": name, "description": description}
    evaluation = evaluate(builder, parent, console, count=False)
    errors: dict[str, str] = {}
    if evaluation.rules is None:
        if not evaluation.problems:
            errors["rules"] = (
                "Complete every rule: choose an attribute and give a value (or remove the rule)."
            )
        else:
            errors["rules"] = "Fix the rules marked below."
    data = {
        "name": name,
        "parent": parent.name,
        "rules": evaluation.rules or {},
        "description": description or None,
    }
    segment: Segment | None = None
    try:
        segment = Segment.model_validate(data)
    except ValidationError as error:
        errors = {**{k: v for k, v in field_problems(error).items() if k != "rules"}, **errors}
    if errors or segment is None:
        return _segment_form(
            request,
            console,
            parent,
            builder,
            values,
            existing=existing,
            errors=errors,
            evaluation=evaluation,
            status=422,
        )
    try:
        if existing is None:
            segments.create_segment(
                segment.name,
                segment.parent,
                segment.rules,
                description=segment.description,
                settings=console.settings,
            )
        else:
            segments.update_segment(
                segment.name,
                rules=segment.rules,
                description=description,
                settings=console.settings,
            )
    except CohortsyncError as error:
        return _segment_form(
            request,
            console,
            parent,
            builder,
            values,
            existing=existing,
            failure=error,
            evaluation=evaluation,
            status=422,
        )
    return redirect(request, f"/audience/segments/{name}?saved=1")


def _segment_form(
    request: Request,
    console: Console,
    parent: SavedParent,
    builder: Builder,
    values: Mapping[str, Any],
    *,
    existing: str | None = None,
    errors: dict[str, str] | None = None,
    failure: CohortsyncError | None = None,
    evaluation: Evaluation | None = None,
    saved: str = "",
    unshowable: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    if evaluation is None or (evaluation.count is None and evaluation.rules is not None):
        evaluation = evaluate(builder, parent, console)
    context = {
        **_builder_context(parent, builder, evaluation, console),
        "oob": False,
        "values": values,
        "errors": errors or {},
        "failure": failure,
        "existing": existing,
        "saved": saved,
        "unshowable": unshowable,
        "activations": (
            activations.list_activations(segment=existing, settings=console.settings)
            if existing
            else []
        ),
    }
    return console.pages.render(
        request, "console/audience_segment.html", context, status_code=status
    )


add_delete_routes(
    router,
    Deletable(
        "segment",
        get=segments.get_segment,
        delete=segments.delete_segment,
        explanation="Its rules are lost. A segment that activations still export cannot be "
        "deleted: delete those activations first.",
    ),
)


def _builder_context(
    parent: SavedParent, builder: Builder, evaluation: Evaluation, console: Console
) -> dict[str, Any]:
    columns, failure = columns_of(parent, console)
    return {
        "parent": parent,
        "builder": builder,
        "evaluation": evaluation,
        "columns": columns,
        "column_by_name": {column.name: column for column in columns},
        "columns_failure": failure,
        "operator_text": OPERATOR_TEXT,
        "join_text": JOIN_TEXT,
        "null_tests": NULL_TESTS,
    }
