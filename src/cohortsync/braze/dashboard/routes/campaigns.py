"""Campaigns and Canvases: Target Audiences, Launch or Send at, and the outbox.

The two areas are one set of screens: a campaign is one message, a Canvas
ordered steps (:mod:`cohortsync.braze.campaigns` defines both), so each
route below is registered once under ``/campaigns`` and once under
``/canvases`` with its kind. Everything the library is asked names the
checked workspace; ids from the address or the form that are not of this
workspace (another's campaign, segment) are unknown, answered 404 before
anything is counted, saved or launched.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.datastructures import FormData

from cohortsync.braze import admin, campaigns
from cohortsync.braze.dashboard.campaign_form import (
    CHANNEL_WORDS,
    INCLUDE_MISSING,
    MAX_STEPS,
    CampaignForm,
    field_error,
    field_of,
    local_input,
    read_send_at,
    said,
)
from cohortsync.braze.dashboard.context import Dashboard, DashboardDep, Workspace, WorkspaceDep
from cohortsync.errors import ConfigError
from cohortsync.web.pages import redirect

router = APIRouter()

AREAS = {"campaign": "/campaigns", "canvas": "/canvases"}
WORDS = {"campaign": "campaign", "canvas": "Canvas"}
PLURALS = {"campaign": "Campaigns", "canvas": "Canvases"}
IN_TEXT = {"campaign": "campaigns", "canvas": "Canvases"}
OUTBOX_PAGE = 25
"""Messages per page of the outbox on a campaign's page."""


async def posted(request: Request) -> FormData:
    """The posted form (already read, and its CSRF token checked, by the guard)."""
    return await request.form()


FormDep = Depends(posted)


def _segments(dashboard: Dashboard, workspace: Workspace) -> list[dict[str, Any]]:
    return admin.list_segments(dashboard.store, workspace=workspace.id)


def _refuse_unknown(form: CampaignForm, segments: list[dict[str, Any]]) -> None:
    """A segment id that is not this workspace's is an unknown address, not a typo."""
    unknown = form.unknown_segments(s["id"] for s in segments)
    if unknown:
        raise ConfigError(
            f"unknown segment {unknown[0]}",
            hint="It is not a segment of this workspace. Reload the form and choose again.",
        )


def _campaign(dashboard: Dashboard, workspace: Workspace, kind: str, ref: str) -> dict[str, Any]:
    """The workspace's campaign (or Canvas) ``ref``; 404 when it has none of that id."""
    try:
        return campaigns.get_campaign(dashboard.store, ref, workspace=workspace.id, kind=kind)
    except ConfigError:
        raise ConfigError(
            f"unknown {WORDS[kind]} {ref}",
            hint=f"It is not a {WORDS[kind]} of workspace {workspace.name}; "
            f"see the list of {IN_TEXT[kind]}.",
        ) from None


def _reachable(
    dashboard: Dashboard, workspace: Workspace, include: list[str], exclude: list[str]
) -> int | None:
    if not include:
        return None
    return campaigns.audience_count(
        dashboard.store, workspace=workspace.id, segments=include, exclude=exclude
    )


def _values(kind: str, workspace: Workspace) -> dict[str, Any]:
    """What every template of the area reads: its kind, words and paths."""
    return {
        "kind": kind,
        "word": WORDS[kind],
        "plural": PLURALS[kind],
        "plural_word": IN_TEXT[kind],
        "area": workspace.path(AREAS[kind]),
        "channel_words": CHANNEL_WORDS,
    }


def _render_form(
    request: Request,
    dashboard: Dashboard,
    workspace: Workspace,
    form: CampaignForm,
    *,
    action: str,
    editing: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    problem: str = "",
    status_code: int = 200,
) -> Response:
    segments = _segments(dashboard, workspace)
    known = {s["id"] for s in segments}
    reachable = _reachable(
        dashboard,
        workspace,
        [s for s in form.include if s in known],
        [s for s in form.exclude if s in known],
    )
    return dashboard.render(
        request,
        "dashboard/campaigns_form.html",
        workspace,
        {
            **_values(form.kind, workspace),
            "form": form,
            "segments": segments,
            "segment_options": [(s["id"], s["name"]) for s in segments],
            "max_steps": MAX_STEPS,
            "reachable": reachable,
            "errors": errors or {},
            "problem": problem,
            "action": action,
            "editing": editing,
        },
        status_code=status_code,
    )


def _submitted(
    request: Request,
    dashboard: Dashboard,
    workspace: Workspace,
    kind: str,
    data: FormData,
    *,
    action: str,
    editing: dict[str, Any] | None,
    save: Callable[[CampaignForm], dict[str, Any]],
) -> Response:
    """A posted form: a step added or removed (shown again), or saved, or refused (400)."""
    form = CampaignForm.read(kind, data, data.getlist)
    _refuse_unknown(form, _segments(dashboard, workspace))
    step_action = str(data.get("action") or "")
    if kind == "canvas" and step_action == "add-step":
        form.add_step()
        return _render_form(request, dashboard, workspace, form, action=action, editing=editing)
    if kind == "canvas" and step_action.startswith("remove-step-"):
        index = step_action.removeprefix("remove-step-")
        form.remove_step(int(index) if index.isdigit() else -1)
        return _render_form(request, dashboard, workspace, form, action=action, editing=editing)
    errors = form.check()
    if not errors:
        try:
            saved = save(form)
        except ConfigError as error:
            where = field_of(error)
            if where:
                errors[where] = said(error)
            else:
                return _render_form(
                    request, dashboard, workspace, form, action=action, editing=editing,
                    problem=said(error), status_code=400,
                )  # fmt: skip
        else:
            return redirect(request, workspace.path(f"{AREAS[kind]}/{saved['id']}"))
    return _render_form(
        request, dashboard, workspace, form, action=action, editing=editing,
        errors=errors, status_code=400,
    )  # fmt: skip


def _render_page(
    request: Request,
    dashboard: Dashboard,
    workspace: Workspace,
    campaign: dict[str, Any],
    *,
    offset: int = 0,
    launched: int | None = None,
    scheduled: bool = False,
    send_at: str | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    kind = campaign["kind"]
    store = dashboard.store
    by_step = campaigns.reachable_by_step(store, campaign["id"], workspace=workspace.id, kind=kind)
    outbox = campaigns.campaign_sends(
        store,
        campaign["id"],
        workspace=workspace.id,
        kind=kind,
        offset=max(offset, 0),
        limit=OUTBOX_PAGE,
    )
    latest = campaign["launches"][-1] if campaign["launches"] else None
    now = datetime.now(UTC)
    return dashboard.render(
        request,
        "dashboard/campaigns_page.html",
        workspace,
        {
            **_values(kind, workspace),
            "campaign": campaign,
            "by_step": by_step,
            "reachable": by_step[0]["reachable"] if by_step else 0,
            "outbox": outbox,
            "latest": latest,
            "launched": latest if latest and launched == latest["id"] else None,
            "scheduled": scheduled,
            "send_at": local_input(campaign["send_at"]) if send_at is None else send_at,
            "now": now.strftime("%Y-%m-%d %H:%M UTC"),
            "min_send_at": now.strftime("%Y-%m-%dT%H:%M"),
            "errors": errors or {},
        },
        status_code=status_code,
    )


def _area(kind: str) -> None:
    """Register the list, form, page, launch and schedule routes of one kind."""
    base = "/w/{workspace_id}" + AREAS[kind]

    def listed(request: Request, dashboard: DashboardDep, workspace: WorkspaceDep) -> Response:
        """Every campaign (or Canvas) of the workspace, newest first, with its last launch."""
        rows = campaigns.list_campaigns(
            dashboard.store, workspace=workspace.id, kind=kind, descending=True
        )
        return dashboard.render(
            request,
            "dashboard/campaigns_list.html",
            workspace,
            {
                **_values(kind, workspace),
                "rows": rows,
                "has_segments": bool(_segments(dashboard, workspace)),
            },
        )

    def new(request: Request, dashboard: DashboardDep, workspace: WorkspaceDep) -> Response:
        form = CampaignForm(kind=kind)
        return _render_form(
            request, dashboard, workspace, form, action=workspace.path(f"{AREAS[kind]}/new")
        )

    def create(
        request: Request,
        dashboard: DashboardDep,
        workspace: WorkspaceDep,
        data: FormData = FormDep,
    ) -> Response:
        def save(form: CampaignForm) -> dict[str, Any]:
            if kind == "campaign":
                return campaigns.create_campaign(
                    dashboard.store, form.name, workspace=workspace.id, channel=form.channel,
                    message=form.message, segments=form.include, exclude=form.exclude,
                )  # fmt: skip
            return campaigns.create_canvas(
                dashboard.store, form.name, workspace=workspace.id, steps=form.library_steps(),
                segments=form.include, exclude=form.exclude,
            )  # fmt: skip

        return _submitted(
            request, dashboard, workspace, kind, data,
            action=workspace.path(f"{AREAS[kind]}/new"), editing=None, save=save,
        )  # fmt: skip

    def audience(request: Request, dashboard: DashboardDep, workspace: WorkspaceDep) -> Response:
        """The live *Reachable users* of the form's audience; nothing is saved."""
        form = CampaignForm(
            kind=kind,
            include=request.query_params.getlist("include"),
            exclude=request.query_params.getlist("exclude"),
        )
        _refuse_unknown(form, _segments(dashboard, workspace))
        return dashboard.render(
            request,
            "dashboard/_campaigns_reachable.html",
            workspace,
            {
                "reachable": _reachable(dashboard, workspace, form.include, form.exclude),
                "live": INCLUDE_MISSING,
            },
        )

    def check(request: Request, dashboard: DashboardDep, workspace: WorkspaceDep) -> Response:
        """The mistake of the one field in the query, as typed (empty: none); nothing saved.

        ``?campaign=ID`` names the campaign being edited, whose own name is not taken.
        """
        editing = request.query_params.get("campaign")
        typed = [(k, v) for k, v in request.query_params.multi_items() if k != "campaign"]
        field, value = typed[0] if typed else ("", "")
        error = field_error(kind, field, value)
        if field == "name" and not error:
            taken = campaigns.list_campaigns(dashboard.store, workspace=workspace.id, kind=kind)
            if any(c["name"] == value.strip() and c["id"] != editing for c in taken):
                error = (
                    f"A {WORDS[kind]} named {value.strip()!r} exists already: pick another name."
                )
        return dashboard.render(
            request,
            "dashboard/_campaigns_check.html",
            workspace,
            {"field": field, "error": error},
        )

    def page(
        request: Request,
        dashboard: DashboardDep,
        workspace: WorkspaceDep,
        campaign_id: str,
        offset: str = "0",
        launched: str = "",
        scheduled: str = "",
    ) -> Response:
        """A campaign's definition, who it reaches now, its launch or schedule, its outbox.

        The query is read leniently (a hand-edited ``?offset=`` shows the first page):
        ``launched`` and ``scheduled`` only say which notice to show after a POST.
        """
        campaign = _campaign(dashboard, workspace, kind, campaign_id)
        return _render_page(
            request, dashboard, workspace, campaign,
            offset=int(offset) if offset.isdigit() else 0,
            launched=int(launched) if launched.isdigit() else None,
            scheduled=scheduled == "1",
        )  # fmt: skip

    def _editable(
        workspace: Workspace, dashboard: Dashboard, campaign_id: str, doing: str = "change"
    ) -> dict[str, Any]:
        """The campaign, unless it was sent: a sent one is never changed or sent again."""
        campaign = _campaign(dashboard, workspace, kind, campaign_id)
        if campaign["status"] == "sent":
            raise ConfigError(
                f"{WORDS[kind]} {campaign['name']!r} was sent; it cannot {doing}",
                hint=f"Its page shows the outbox of what it sent. To send again, "
                f"create another {WORDS[kind]}.",
            )
        return campaign

    def edit(
        request: Request, dashboard: DashboardDep, workspace: WorkspaceDep, campaign_id: str
    ) -> Response:
        campaign = _editable(workspace, dashboard, campaign_id)
        return _render_form(
            request, dashboard, workspace, CampaignForm.of(campaign),
            action=workspace.path(f"{AREAS[kind]}/{campaign['id']}/edit"), editing=campaign,
        )  # fmt: skip

    def update(
        request: Request,
        dashboard: DashboardDep,
        workspace: WorkspaceDep,
        campaign_id: str,
        data: FormData = FormDep,
    ) -> Response:
        campaign = _editable(workspace, dashboard, campaign_id)

        def save(form: CampaignForm) -> dict[str, Any]:
            if kind == "campaign":
                return campaigns.update_campaign(
                    dashboard.store, campaign["id"], workspace=workspace.id, kind=kind,
                    name=form.name, segments=form.include, exclude=form.exclude,
                    channel=form.channel, message=form.message,
                )  # fmt: skip
            return campaigns.update_campaign(
                dashboard.store, campaign["id"], workspace=workspace.id, kind=kind,
                name=form.name, segments=form.include, exclude=form.exclude,
                steps=form.library_steps(),
            )  # fmt: skip

        return _submitted(
            request, dashboard, workspace, kind, data,
            action=workspace.path(f"{AREAS[kind]}/{campaign['id']}/edit"),
            editing=campaign, save=save,
        )  # fmt: skip

    def confirm_launch(
        request: Request, dashboard: DashboardDep, workspace: WorkspaceDep, campaign_id: str
    ) -> Response:
        """*Launch now?* with who it reaches: a launch is once and cannot be undone."""
        campaign = _editable(workspace, dashboard, campaign_id, "be launched again")
        by_step = campaigns.reachable_by_step(
            dashboard.store, campaign["id"], workspace=workspace.id, kind=kind
        )
        return dashboard.render(
            request,
            "dashboard/campaigns_launch.html",
            workspace,
            {**_values(kind, workspace), "campaign": campaign, "by_step": by_step},
        )

    def launch(
        request: Request,
        dashboard: DashboardDep,
        workspace: WorkspaceDep,
        campaign_id: str,
        data: FormData = FormDep,
    ) -> Response:
        """Resolve the audience now and write its messages to the outbox; show how many."""
        campaign = _editable(workspace, dashboard, campaign_id, "be launched again")
        done = campaigns.launch_campaign(
            dashboard.store, campaign["id"], workspace=workspace.id, kind=kind
        )
        return redirect(
            request,
            workspace.path(f"{AREAS[kind]}/{campaign['id']}?launched={done['launch_id']}"),
        )

    def schedule(
        request: Request,
        dashboard: DashboardDep,
        workspace: WorkspaceDep,
        campaign_id: str,
        data: FormData = FormDep,
    ) -> Response:
        """*Send at* a UTC time (the service launches it then), or back to a draft."""
        campaign = _editable(workspace, dashboard, campaign_id)
        typed = str(data.get("send_at") or "")
        when = None
        if data.get("action") != "unschedule":
            try:
                when = read_send_at(typed)
            except ConfigError as error:
                return _render_page(
                    request, dashboard, workspace, campaign, send_at=typed,
                    errors={"send_at": said(error)}, status_code=400,
                )  # fmt: skip
        campaigns.schedule_campaign(
            dashboard.store, campaign["id"], workspace=workspace.id, kind=kind, send_at=when
        )
        return redirect(request, workspace.path(f"{AREAS[kind]}/{campaign['id']}?scheduled=1"))

    router.add_api_route(base, listed, methods=["GET"], name=f"{kind}_list")
    router.add_api_route(base + "/new", new, methods=["GET"], name=f"{kind}_new")
    router.add_api_route(base + "/new", create, methods=["POST"], name=f"{kind}_create")
    router.add_api_route(base + "/audience", audience, methods=["GET"], name=f"{kind}_audience")
    router.add_api_route(base + "/check", check, methods=["GET"], name=f"{kind}_check")
    router.add_api_route(base + "/{campaign_id}", page, methods=["GET"], name=f"{kind}_page")
    router.add_api_route(base + "/{campaign_id}/edit", edit, methods=["GET"], name=f"{kind}_edit")
    router.add_api_route(
        base + "/{campaign_id}/edit", update, methods=["POST"], name=f"{kind}_update"
    )
    router.add_api_route(
        base + "/{campaign_id}/launch", confirm_launch, methods=["GET"], name=f"{kind}_confirm"
    )
    router.add_api_route(
        base + "/{campaign_id}/launch", launch, methods=["POST"], name=f"{kind}_launch"
    )
    router.add_api_route(
        base + "/{campaign_id}/schedule", schedule, methods=["POST"], name=f"{kind}_schedule"
    )


for _kind in AREAS:
    _area(_kind)
