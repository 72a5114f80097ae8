"""The dashboard's FastAPI app, mounted by the service at ``/dashboard``."""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI

from cohortsync.braze.dashboard.accounts import StoreAccounts, StoreLoginLinks
from cohortsync.braze.dashboard.context import Dashboard, dashboard_pages
from cohortsync.braze.dashboard.routes import ROUTERS
from cohortsync.braze.store import Store
from cohortsync.web.app import install
from cohortsync.web.guard import Guard
from cohortsync.web.sessions import SessionCookie
from cohortsync.web.throttle import LoginThrottle

SESSION_COOKIE = "cohortsync_dashboard"
MOUNT_PATH = "/dashboard"


def create_dashboard(store: Store, *, throttle: LoginThrottle | None = None) -> FastAPI:
    """The dashboard over ``store``: the shared web layer, then one router per screen.

    Args:
        store: the service's open store; the dashboard reads and writes it
            through the same queries as the API.
        throttle: failed-login throttling (tests pass a faster one).
    """
    pages = dashboard_pages()
    accounts = StoreAccounts(store)
    guard = Guard(
        accounts,
        SessionCookie(accounts.session_secret, cookie_name=SESSION_COOKIE),
        pages,
        throttle=throttle,
        links=StoreLoginLinks(store),
    )
    app = FastAPI(title="Braze sandbox dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.dashboard = Dashboard(store=store, pages=pages)
    app.state.guard = guard
    install(app, guard)
    protected = APIRouter(dependencies=[Depends(guard.protect)])
    for router in ROUTERS:
        protected.include_router(router)
    app.include_router(protected)
    return app
