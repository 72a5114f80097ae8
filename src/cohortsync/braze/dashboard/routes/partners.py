"""Partner Integrations > Technology Partners: partners, enabling, data import keys.

A partner's page is where the warehouse side's *Create Authentication*
starts: it shows the REST endpoint to enter and the data import keys. A new
key is shown once, on the page that answers *Generate new key*, and never
again: afterwards only its fingerprint names it (to invalidate it, say).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from cohortsync.braze import admin
from cohortsync.braze.dashboard.context import DashboardDep, Workspace, WorkspaceDep
from cohortsync.errors import ConfigError
from cohortsync.web.pages import redirect

router = APIRouter()


def rest_endpoint(request: Request) -> str:
    """The REST endpoint a partner's exporter calls: this server's own origin.

    The partner API lives at the root of the server the dashboard is mounted
    in (at ``/dashboard``), so the scheme and host of the request are it.
    """
    return f"{request.url.scheme}://{request.url.netloc}"


def _partner(dashboard: DashboardDep, workspace: Workspace, name: str) -> dict[str, Any]:
    """The partner ``name`` with the workspace's keys; an unknown name is a 404 page."""
    try:
        return admin.workspace_partner(dashboard.store, name, workspace=workspace.id)
    except ConfigError as error:
        if error.message.startswith("no partner"):
            raise ConfigError(
                f"unknown partner {name!r}",
                hint="Pick a partner from Technology Partners.",
            ) from error
        raise


def _partner_page(
    request: Request,
    dashboard: DashboardDep,
    workspace: Workspace,
    partner: dict[str, Any],
    *,
    new_key: str | None = None,
    notice: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    return dashboard.render(
        request,
        "dashboard/partners_page.html",
        workspace,
        {
            "partner": partner,
            "endpoint": rest_endpoint(request),
            "new_key": new_key,
            "notice": notice,
            "error": error,
        },
        status_code=status_code,
    )


@router.get("/w/{workspace_id}/partners")
def partners_list(request: Request, dashboard: DashboardDep, workspace: WorkspaceDep) -> Response:
    """Every partner, enabled in this workspace or not, with the number of active keys."""
    partners = admin.list_partners(dashboard.store, workspace=workspace.id)
    active = {
        partner["name"]: sum(
            1
            for key in admin.list_keys(
                dashboard.store, workspace=workspace.id, partner=partner["name"]
            )
            if key["active"]
        )
        for partner in partners
        if partner["enabled"]
    }
    return dashboard.render(
        request,
        "dashboard/partners_list.html",
        workspace,
        {"partners": partners, "active_keys": active},
    )


@router.get("/w/{workspace_id}/partners/{name}")
def partner_page(
    request: Request,
    dashboard: DashboardDep,
    workspace: WorkspaceDep,
    name: str,
    invalidated: str = "",
    enabled: str = "",
) -> Response:
    """The REST endpoint, the partner's segment filter and the workspace's keys."""
    partner = _partner(dashboard, workspace, name)
    notice = None
    known = {key["fingerprint"] for key in partner["keys"] if not key["active"]}
    if invalidated and invalidated in known:
        notice = (
            f"Key {invalidated} is invalidated: an exporter that still uses it "
            "gets 401 Invalid client secret."
        )
    elif enabled and partner["enabled"]:
        notice = f"{partner['display_name']} is enabled. Generate a data import key next."
    return _partner_page(request, dashboard, workspace, partner, notice=notice)


@router.post("/w/{workspace_id}/partners/{name}/enable")
def enable(
    request: Request, dashboard: DashboardDep, workspace: WorkspaceDep, name: str
) -> Response:
    """Let the workspace accept this partner's cohorts; then its page, to make a key."""
    _partner(dashboard, workspace, name)
    admin.enable_partner(dashboard.store, name, workspace=workspace.id)
    return redirect(request, workspace.path(f"/partners/{name}?enabled=1"))


@router.post("/w/{workspace_id}/partners/{name}/keys")
def generate(
    request: Request, dashboard: DashboardDep, workspace: WorkspaceDep, name: str
) -> Response:
    """A new data import key, shown on this answer only (never in a URL, never again)."""
    partner = _partner(dashboard, workspace, name)
    if not partner["enabled"]:
        return _partner_page(
            request,
            dashboard,
            workspace,
            partner,
            error=f"Enable {partner['display_name']} first: a key of a partner that is not "
            "enabled would be refused with 401 Partner not enabled.",
            status_code=400,
        )
    made = admin.generate_key(dashboard.store, workspace=workspace.id, partner=name)
    partner = _partner(dashboard, workspace, name)
    return _partner_page(request, dashboard, workspace, partner, new_key=made["data_import_key"])


def _key(partner: dict[str, Any], fingerprint: str) -> dict[str, Any]:
    """The workspace's key of this partner with ``fingerprint``; another's is a 404 page."""
    for key in partner["keys"]:
        if key["fingerprint"] == fingerprint.strip().lower():
            return key
    raise ConfigError(
        f"unknown data import key {fingerprint!r}",
        hint="Pick the key from the partner's list of keys.",
    )


@router.get("/w/{workspace_id}/partners/{name}/keys/{fingerprint}/invalidate")
def confirm_invalidate(
    request: Request, dashboard: DashboardDep, workspace: WorkspaceDep, name: str, fingerprint: str
) -> Response:
    """Say what invalidating does before doing it: the exporter using the key stops."""
    partner = _partner(dashboard, workspace, name)
    key = _key(partner, fingerprint)
    return dashboard.render(
        request,
        "dashboard/partners_invalidate.html",
        workspace,
        {"partner": partner, "key": key},
    )


@router.post("/w/{workspace_id}/partners/{name}/keys/{fingerprint}/invalidate")
def invalidate(
    request: Request, dashboard: DashboardDep, workspace: WorkspaceDep, name: str, fingerprint: str
) -> Response:
    """Refuse the key from the next request on; back to the partner's page."""
    key = _key(_partner(dashboard, workspace, name), fingerprint)
    admin.invalidate_key_by_fingerprint(
        dashboard.store, key["fingerprint"], workspace=workspace.id, partner=name
    )
    return redirect(request, workspace.path(f"/partners/{name}?invalidated={key['fingerprint']}"))
