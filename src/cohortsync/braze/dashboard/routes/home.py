"""Where a logged-in user lands: their workspace, or the choice of one."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from cohortsync.braze.dashboard.accounts import workspaces_of
from cohortsync.braze.dashboard.context import DashboardDep, WorkspaceDep, user_of
from cohortsync.braze.store import dashboard_queries
from cohortsync.web.pages import redirect

router = APIRouter()


@router.get("/")
def start(request: Request, dashboard: DashboardDep) -> Response:
    """One workspace: straight into it. Several: the list to choose from."""
    mine = workspaces_of(dashboard.store, user_of(request))
    if len(mine) == 1:
        return redirect(request, f"/w/{mine[0][0]}")
    return dashboard.render(request, "dashboard/workspaces.html", None, {"workspaces": mine})


@router.get("/w/{workspace_id}")
def workspace_home(request: Request, dashboard: DashboardDep, workspace: WorkspaceDep) -> Response:
    """The workspace's home: the workflow's steps, each with what this workspace has."""
    with dashboard.store.read() as conn:
        counts = dashboard_queries.workspace_counts(conn, workspace.id)
    return dashboard.render(request, "dashboard/home.html", workspace, {"counts": counts})
