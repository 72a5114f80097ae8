"""Cohorts: the list with match rates, lock and unlock, a cohort's members and history.

The match counts (identifiers received, matched, dropped) are what Braze
does not show and what explains a cohort smaller than the warehouse query
that fed it. A cohort's page pages its members and its history by keyset,
each with its own parameter (``after`` for members, ``before`` for history),
so one can page through one while the other stays where it is.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from cohortsync.braze import admin, cohort_views
from cohortsync.braze.dashboard.context import DashboardDep, Workspace, WorkspaceDep
from cohortsync.errors import ConfigError
from cohortsync.web.pages import redirect

router = APIRouter()

KIND_LABELS = {"external_id": "External ids", "alias": "Aliases", "device_id": "Device ids"}


def _unknown_cohort(error: ConfigError, cohort_id: str) -> ConfigError:
    """The library's "no cohort" as the dashboard's 404 (another workspace's id included)."""
    if error.message.startswith("no cohort"):
        return ConfigError(
            f"unknown cohort {cohort_id!r}",
            hint="Pick a cohort from Cohorts; a cohort exists once a partner sent it.",
        )
    return error


def kind_label(kind: str) -> str:
    return KIND_LABELS.get(kind, kind.replace("_", " "))


@router.get("/w/{workspace_id}/cohorts")
def cohorts_list(request: Request, dashboard: DashboardDep, workspace: WorkspaceDep) -> Response:
    """Every cohort, its size, its match counts per identifier kind and whether it is locked."""
    cohorts = admin.list_cohorts(dashboard.store, workspace=workspace.id)
    return dashboard.render(
        request,
        "dashboard/cohorts_list.html",
        workspace,
        {"cohorts": cohorts, "kind_label": kind_label},
    )


def _int_or_none(value: str, name: str) -> int | None:
    if not value.strip():
        return None
    try:
        return int(value)
    except ValueError:
        raise ConfigError(
            f"{name} must be a whole number, not {value!r}", hint="Open the first page instead."
        ) from None


@router.get("/w/{workspace_id}/cohorts/{cohort_id:path}")
def cohort_page(
    request: Request,
    dashboard: DashboardDep,
    workspace: WorkspaceDep,
    cohort_id: str,
    q: str = "",
    match: str = "exact",
    after: str = "",
    before: str = "",
    limit: int = cohort_views.PAGE_SIZE,
    history_limit: int = cohort_views.PAGE_SIZE,
) -> Response:
    """The cohort's summary, a page of its members (searchable) and a page of its history."""
    prefix = match == "prefix"
    try:
        summary = cohort_views.cohort_summary(dashboard.store, cohort_id, workspace=workspace.id)
        members = cohort_views.cohort_member_page(
            dashboard.store,
            cohort_id,
            workspace=workspace.id,
            after=_int_or_none(after, "after"),
            search=q,
            prefix=prefix,
            limit=limit,
        )
        history = cohort_views.cohort_history(
            dashboard.store,
            cohort_id,
            workspace=workspace.id,
            before=_int_or_none(before, "before"),
            limit=history_limit,
        )
    except ConfigError as error:
        raise _unknown_cohort(error, cohort_id) from error
    keys = admin.list_keys(dashboard.store, workspace=workspace.id, partner=summary["partner"])
    base = {"q": q.strip(), "match": "prefix" if prefix else "exact"}
    kept: dict[str, Any] = {key: value for key, value in base.items() if base["q"]}
    if limit != cohort_views.PAGE_SIZE:
        kept["limit"] = limit
    if history_limit != cohort_views.PAGE_SIZE:
        kept["history_limit"] = history_limit
    links = {
        "members_next": None
        if members["next_after"] is None
        else urlencode({**kept, "after": members["next_after"], "before": before}),
        "history_next": None
        if history["next_before"] is None
        else urlencode({**kept, "after": after, "before": history["next_before"]}),
        "members_first": urlencode({**kept, "before": before}) if after else None,
        "history_first": urlencode({**kept, "after": after}) if before else None,
    }
    return dashboard.render(
        request,
        "dashboard/cohorts_page.html",
        workspace,
        {
            "cohort": summary,
            "here": workspace.path(f"/cohorts/{quote(cohort_id, safe='/')}"),
            "members": members["members"],
            "history": history["changes"],
            "key_active": {key["fingerprint"]: key["active"] for key in keys},
            "links": links,
            "q": base["q"],
            "prefix": prefix,
            "paged_members": bool(after),
            "paged_history": bool(before),
            "kind_label": kind_label,
        },
    )


def _back(request: Request, workspace: Workspace, cohort_id: str, back: str) -> Response:
    """After lock or unlock: the cohort's page when the form was there, else the list."""
    if back == "page":
        return redirect(request, workspace.path(f"/cohorts/{quote(cohort_id, safe='/')}"))
    return redirect(request, workspace.path("/cohorts"))


def _set_lock(
    request: Request,
    dashboard: DashboardDep,
    workspace: WorkspaceDep,
    cohort_id: str,
    back: str,
    *,
    locked: bool,
) -> Response:
    change = admin.lock_cohort if locked else admin.unlock_cohort
    try:
        change(dashboard.store, cohort_id, workspace=workspace.id)
    except ConfigError as error:
        raise _unknown_cohort(error, cohort_id) from error
    return _back(request, workspace, cohort_id, back)


@router.post("/w/{workspace_id}/cohorts/{cohort_id:path}/lock")
def lock(
    request: Request,
    dashboard: DashboardDep,
    workspace: WorkspaceDep,
    cohort_id: str,
    back: str = Form(""),
) -> Response:
    """Make the partner's calls on this cohort answer 423 until it is unlocked."""
    return _set_lock(request, dashboard, workspace, cohort_id, back, locked=True)


@router.post("/w/{workspace_id}/cohorts/{cohort_id:path}/unlock")
def unlock(
    request: Request,
    dashboard: DashboardDep,
    workspace: WorkspaceDep,
    cohort_id: str,
    back: str = Form(""),
) -> Response:
    """Accept the partner's calls on this cohort again."""
    return _set_lock(request, dashboard, workspace, cohort_id, back, locked=False)
