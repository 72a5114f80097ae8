"""What every dashboard route reaches: the store, the pages, and the workspace it is in.

Every screen lives under ``/w/{workspace_id}/...``. Its routes take the
:func:`workspace_of` dependency, which lets the request through only when
the logged-in user belongs to that workspace: a workspace of someone else
answers exactly as one that does not exist (404), so its id says nothing.
The queries a route then runs all take that checked workspace's id.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse

from cohortsync.braze.dashboard.accounts import workspaces_of
from cohortsync.braze.store import Store
from cohortsync.errors import ConfigError
from cohortsync.web.guard import LoginRequired
from cohortsync.web.pages import NavItem, Pages

TEMPLATES = Path(__file__).with_name("templates")
TITLE = "Braze sandbox"

# (label, path under /w/{id}); the sidebar of every workspace page, in workflow order.
AREAS = (
    ("Home", ""),
    ("Technology Partners", "/partners"),
    ("Cohorts", "/cohorts"),
    ("Segments", "/segments"),
    ("Campaigns", "/campaigns"),
    ("Canvases", "/canvases"),
    ("User Search", "/users"),
)


@dataclass(frozen=True)
class Workspace:
    """The workspace a page is in, checked against the user's memberships."""

    id: int
    name: str
    others: tuple[tuple[int, str], ...]
    """The user's other workspaces, for the switcher."""

    def path(self, rest: str = "") -> str:
        """The path of a page of this workspace: ``/w/{id}`` + ``rest``."""
        return f"/w/{self.id}{rest}"


@dataclass
class Dashboard:
    """The dashboard's shared state, built once per app (:func:`.app.create_dashboard`)."""

    store: Store
    pages: Pages

    def render(
        self,
        request: Request,
        template: str,
        workspace: Workspace | None,
        context: dict[str, Any] | None = None,
        *,
        status_code: int = 200,
    ) -> HTMLResponse:
        """A page of ``workspace``: its sidebar and switcher, then the template's own values."""
        values: dict[str, Any] = {"workspace": workspace, "nav": ()}
        if workspace is not None:
            values["nav"] = tuple(
                NavItem(label, workspace.path(rest), exact=not rest) for label, rest in AREAS
            )
        return self.pages.render(
            request, template, {**values, **(context or {})}, status_code=status_code
        )


def dashboard_pages() -> Pages:
    return Pages(TEMPLATES, title=TITLE, nav=(), home="/", user_label="Email")


def dashboard_of(request: Request) -> Dashboard:
    """The route dependency that hands the dashboard's state to a route."""
    dashboard: Dashboard = request.app.state.dashboard
    return dashboard


def user_of(request: Request) -> str:
    """The logged-in user's email (the router's guard has checked the session)."""
    session = getattr(request.state, "session", None)
    if session is None:
        raise LoginRequired()
    return str(session.user)


def workspace_of(
    request: Request, workspace_id: int, dashboard: Dashboard = Depends(dashboard_of)
) -> Workspace:
    """The workspace of the path, if the user belongs to it; otherwise a 404 page."""
    mine = workspaces_of(dashboard.store, user_of(request))
    for found_id, name in mine:
        if found_id == workspace_id:
            others = tuple(w for w in mine if w[0] != workspace_id)
            return Workspace(id=found_id, name=name, others=others)
    raise ConfigError(
        f"unknown workspace {workspace_id}",
        hint="It does not exist, or you are not a member. Choose one of your workspaces.",
    )


DashboardDep = Annotated[Dashboard, Depends(dashboard_of)]
WorkspaceDep = Annotated[Workspace, Depends(workspace_of)]
