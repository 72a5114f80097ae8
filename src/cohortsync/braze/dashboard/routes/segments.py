"""Segments: the builder with the partner cohort filter, reachable users, members.

The builder is one server-rendered form (see :mod:`..segment_form` for its
fields and how they make a filter tree). Its buttons work with and without
JavaScript: *Add filter*, *Remove* and the filter type post the whole form,
either to the builder's partial (htmx swaps the builder in place) or, as a
plain submit with ``action``, to the page itself, which answers with the
page again. The *Reachable users* count is another partial, asked for on
every change; it saves nothing, and a filter not complete yet gets a hint,
not an error.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response

from cohortsync.braze import admin, segments
from cohortsync.braze.dashboard import segment_form
from cohortsync.braze.dashboard.context import Dashboard, DashboardDep, Workspace, WorkspaceDep
from cohortsync.braze.dashboard.segment_form import Builder, Outcome
from cohortsync.errors import ConfigError
from cohortsync.web.pages import redirect

router = APIRouter()

MEMBERS_PER_PAGE = 50
BUILDER_HINT = (
    "Filters in a group combine as the group says (all of them, or any of them); "
    "the groups then combine as the segment says. Use one group with “any” for an OR "
    "of filters, and several groups for (A or B) and C."
)


def words(segment: dict[str, Any]) -> str:
    """The filter in words without the parentheses around the whole of it."""
    text = str(segment["text_description"])
    if segment["filter"]["type"] in ("and", "or"):
        return text[1:-1]
    return text


def _segment(dashboard: Dashboard, workspace: Workspace, segment_id: str) -> dict[str, Any]:
    """The workspace's segment; one of another workspace, or none, is a 404 page."""
    try:
        return admin.segment_details(dashboard.store, segment_id, workspace=workspace.id)
    except ConfigError as error:
        if error.message.startswith("no segment"):
            raise ConfigError(
                f"unknown segment {segment_id!r}",
                hint="It is not a segment of this workspace. Choose one from Segments.",
            ) from error
        raise


async def _posted(request: Request) -> tuple[dict[str, str], str]:
    """The posted fields as text, and the ``action`` button pressed (``save`` by default)."""
    form = await request.form()
    values = {key: value for key, value in form.items() if isinstance(value, str)}
    return values, values.get("action", "save") or "save"


def _check(dashboard: Dashboard, workspace: Workspace, builder: Builder) -> Outcome:
    choices = admin.cohort_choices(dashboard.store, workspace=workspace.id)
    with dashboard.store.read() as conn:
        return segment_form.check(conn, workspace.id, builder, choices)


def _count(dashboard: Dashboard, workspace: Workspace, outcome: Outcome) -> dict[str, Any]:
    """What the Reachable users box shows: the count, or the hint of what is missing."""
    if outcome.tree is None:
        return {"size": None, "hint": outcome.first_problem()}
    try:
        size = admin.segment_size(dashboard.store, workspace.id, outcome.tree)
    except ConfigError as error:
        return {"size": None, "hint": error.message}
    return {"size": size, "hint": ""}


def _builder_page(
    request: Request,
    dashboard: Dashboard,
    workspace: Workspace,
    *,
    builder: Builder | None,
    name: str,
    segment: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    problems: dict[str, str] | None = None,
    failure: ConfigError | None = None,
    count: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    """The builder page, new or editing ``segment``, with what was typed and its problems."""
    choices = admin.cohort_choices(dashboard.store, workspace=workspace.id)
    unshowable = builder is None
    if builder is None:
        builder = segment_form.new_builder(choices)
    if count is None:
        count = (
            {"size": segment["size"], "hint": ""}
            if segment and not unshowable
            else _count(dashboard, workspace, _check(dashboard, workspace, builder))
        )
    return dashboard.render(
        request,
        "dashboard/segments_builder.html",
        workspace,
        {
            "segment": segment,
            "name": name,
            "errors": errors or {},
            "failure": failure,
            "unshowable": unshowable,
            "count": count,
            **_builder_values(
                workspace,
                builder,
                choices,
                problems or {},
                admin.list_partners(dashboard.store, workspace=workspace.id),
            ),
        },
        status_code=status_code,
    )


def _builder_values(
    workspace: Workspace,
    builder: Builder,
    choices: list[dict[str, Any]],
    problems: dict[str, str],
    partners: list[dict[str, Any]],
) -> dict[str, Any]:
    """What ``_segments_builder.html`` needs, on the page and in the htmx partial."""
    by_partner: dict[str, list[dict[str, Any]]] = {}
    for choice in choices:
        by_partner.setdefault(choice["partner"], []).append(choice)
    return {
        "builder": builder,
        "problems": problems,
        "kinds": segment_form.kinds(choices, partners),
        "cohorts_of": by_partner,
        "operators": segment_form.ATTRIBUTE_OPERATORS,
        "value_types": segment_form.VALUE_TYPES,
        "value_operators": segments.VALUE_OPERATORS,
        "number_operators": segments.NUMBER_OPERATORS,
        "cohort_kind": segment_form.COHORT_KIND,
        "max_rows": segment_form.MAX_ROWS,
        "max_groups": segment_form.MAX_GROUPS,
        "builder_hint": BUILDER_HINT,
        "builder_url": workspace.path("/segments/builder"),
        "count_url": workspace.path("/segments/count"),
    }


async def _submitted(
    request: Request,
    dashboard: Dashboard,
    workspace: Workspace,
    segment: dict[str, Any] | None,
) -> Response:
    """A posted builder form: a row or group added or removed (the page again), or a save."""
    values, action = await _posted(request)
    choices = admin.cohort_choices(dashboard.store, workspace=workspace.id)
    builder = segment_form.parse(values)
    name = values.get("name", "").strip()
    if segment_form.apply(builder, action, choices):
        return _builder_page(
            request, dashboard, workspace, builder=builder, name=name, segment=segment
        )
    outcome = _check(dashboard, workspace, builder)
    errors = {} if name else {"name": "Enter a name for the segment, e.g. VIP buyers."}
    if errors or outcome.tree is None:
        return _builder_page(
            request,
            dashboard,
            workspace,
            builder=builder,
            name=name,
            segment=segment,
            errors=errors,
            problems=outcome.problems,
            count=_count(dashboard, workspace, outcome),
            status_code=400,
        )
    try:
        if segment is None:
            saved = admin.create_segment(
                dashboard.store, name, workspace=workspace.id, filter=outcome.tree
            )
        else:
            saved = admin.update_segment(
                dashboard.store, segment["id"], workspace=workspace.id, name=name,
                filter=outcome.tree,
            )  # fmt: skip
    except ConfigError as error:
        named = error.message.endswith("exists already")
        return _builder_page(
            request,
            dashboard,
            workspace,
            builder=builder,
            name=name,
            segment=segment,
            errors={"name": f"A segment named {name!r} exists already: pick another name."}
            if named
            else {},
            failure=None if named else error,
            count=_count(dashboard, workspace, outcome),
            status_code=400,
        )
    return redirect(request, workspace.path(f"/segments/{saved['id']}?saved=1"))


# ---------------------------------------------------------------- the list


@router.get("/w/{workspace_id}/segments")
def segments_list(
    request: Request, dashboard: DashboardDep, workspace: WorkspaceDep, deleted: str = ""
) -> Response:
    """Every segment by name: its size now, its filter in words, when it last changed."""
    rows = [
        admin.segment_details(dashboard.store, row["id"], workspace=workspace.id)
        for row in admin.list_segments(dashboard.store, workspace=workspace.id)
    ]
    return dashboard.render(
        request,
        "dashboard/segments_list.html",
        workspace,
        {
            "segments": rows,
            "deleted": deleted,
            "words": words,
            "has_cohorts": bool(admin.cohort_choices(dashboard.store, workspace=workspace.id)),
        },
    )


# ---------------------------------------------------------------- the builder


@router.get("/w/{workspace_id}/segments/new")
def new_segment(request: Request, dashboard: DashboardDep, workspace: WorkspaceDep) -> Response:
    choices = admin.cohort_choices(dashboard.store, workspace=workspace.id)
    builder = segment_form.new_builder(choices)
    return _builder_page(request, dashboard, workspace, builder=builder, name="")


@router.post("/w/{workspace_id}/segments/new")
async def create_segment(
    request: Request, dashboard: DashboardDep, workspace: WorkspaceDep
) -> Response:
    return await _submitted(request, dashboard, workspace, None)


@router.post("/w/{workspace_id}/segments/builder")
async def builder_partial(
    request: Request, dashboard: DashboardDep, workspace: WorkspaceDep
) -> Response:
    """The builder again after *Add filter*, *Remove* or a new filter type (htmx)."""
    values, action = await _posted(request)
    choices = admin.cohort_choices(dashboard.store, workspace=workspace.id)
    builder = segment_form.parse(values)
    segment_form.apply(builder, action, choices)
    count = _count(dashboard, workspace, _check(dashboard, workspace, builder))
    return dashboard.render(
        request,
        "dashboard/_segments_builder.html",
        workspace,
        {
            **_builder_values(
                workspace,
                builder,
                choices,
                {},
                admin.list_partners(dashboard.store, workspace=workspace.id),
            ),
            "count_oob": count,
        },
    )


@router.post("/w/{workspace_id}/segments/count")
async def count_partial(
    request: Request, dashboard: DashboardDep, workspace: WorkspaceDep
) -> Response:
    """The Reachable users box for the form as it is now; nothing is saved."""
    values, _action = await _posted(request)
    outcome = _check(dashboard, workspace, segment_form.parse(values))
    return dashboard.render(
        request,
        "dashboard/_segments_count.html",
        workspace,
        {"count": _count(dashboard, workspace, outcome)},
    )


# ---------------------------------------------------------------- one segment


@router.get("/w/{workspace_id}/segments/{segment_id}")
def segment_page(
    request: Request,
    dashboard: DashboardDep,
    workspace: WorkspaceDep,
    segment_id: str,
    offset: str = "0",
    saved: str = "",
) -> Response:
    """A segment: its filter in words, its size, its members a page at a time.

    The query is read leniently: an offset typed wrong shows the first page.
    """
    segment = _segment(dashboard, workspace, segment_id)
    page = admin.segment_member_page(
        dashboard.store,
        segment["id"],
        workspace=workspace.id,
        offset=int(offset) if offset.isdigit() else 0,
        limit=MEMBERS_PER_PAGE,
    )
    return dashboard.render(
        request,
        "dashboard/segments_page.html",
        workspace,
        {
            "segment": segment,
            "page": {**page, "limit": MEMBERS_PER_PAGE},
            "saved": saved == "1",
            "words": words,
        },
    )


@router.get("/w/{workspace_id}/segments/{segment_id}/edit")
def edit_segment(
    request: Request, dashboard: DashboardDep, workspace: WorkspaceDep, segment_id: str
) -> Response:
    segment = _segment(dashboard, workspace, segment_id)
    choices = admin.cohort_choices(dashboard.store, workspace=workspace.id)
    builder = segment_form.from_tree(segment["filter"], choices)
    return _builder_page(
        request, dashboard, workspace, builder=builder, name=segment["name"], segment=segment
    )


@router.post("/w/{workspace_id}/segments/{segment_id}/edit")
async def update_segment(
    request: Request, dashboard: DashboardDep, workspace: WorkspaceDep, segment_id: str
) -> Response:
    segment = _segment(dashboard, workspace, segment_id)
    return await _submitted(request, dashboard, workspace, segment)


@router.get("/w/{workspace_id}/segments/{segment_id}/delete")
def confirm_delete(
    request: Request, dashboard: DashboardDep, workspace: WorkspaceDep, segment_id: str
) -> Response:
    """Delete? [Delete segment] [Cancel]: a step of its own, no JavaScript confirm()."""
    segment = _segment(dashboard, workspace, segment_id)
    return dashboard.render(
        request, "dashboard/segments_delete.html", workspace, {"segment": segment, "refused": None}
    )


@router.post("/w/{workspace_id}/segments/{segment_id}/delete")
def delete_segment(
    request: Request, dashboard: DashboardDep, workspace: WorkspaceDep, segment_id: str
) -> Response:
    """Delete the segment, unless a campaign or Canvas targets it (then say which)."""
    segment = _segment(dashboard, workspace, segment_id)
    try:
        admin.delete_segment(dashboard.store, segment["id"], workspace=workspace.id)
    except ConfigError as error:
        return dashboard.render(
            request,
            "dashboard/segments_delete.html",
            workspace,
            {"segment": segment, "refused": error},
            status_code=409,
        )
    return redirect(request, workspace.path(f"/segments?deleted={quote(segment['name'])}"))
