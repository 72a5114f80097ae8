"""The console's FastAPI app: the shared web layer and one router per area."""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response

from cohortsync.catalog.db import open_catalog
from cohortsync.console.accounts import CatalogAccounts
from cohortsync.console.context import Console, console_pages
from cohortsync.console.launches import Launches
from cohortsync.console.routes import ROUTERS
from cohortsync.jobs.metrics import ConsoleMetrics, JobMetrics
from cohortsync.settings import Settings
from cohortsync.web.app import install
from cohortsync.web.guard import Guard, OneTimeLinks
from cohortsync.web.pages import redirect
from cohortsync.web.sessions import SessionCookie
from cohortsync.web.throttle import LoginThrottle

SESSION_COOKIE = "cohortsync_console"


def create_app(
    settings: Settings,
    *,
    links: OneTimeLinks | None = None,
    throttle: LoginThrottle | None = None,
    metrics: JobMetrics | None = None,
) -> FastAPI:
    """The console over the home of ``settings``.

    Args:
        settings: the home (catalog, warehouse, secrets) the console works on.
        links: where the one-time login links printed at start are kept.
        throttle: failed-login throttling (tests pass a faster one).
        metrics: where the runs the console launches are counted; a registry of
            its own unless given (``console --metrics-port`` serves the one it gives).
    """
    catalog = open_catalog(settings.catalog_path)
    pages = console_pages()
    accounts = CatalogAccounts(catalog)
    guard = Guard(
        accounts,
        SessionCookie(accounts.session_secret, cookie_name=SESSION_COOKIE),
        pages,
        throttle=throttle,
        links=links,
    )
    app = FastAPI(title="cohortsync console", docs_url=None, redoc_url=None, openapi_url=None)
    launches = Launches(metrics or ConsoleMetrics())
    app.state.console = Console(settings=settings, catalog=catalog, pages=pages, launches=launches)
    app.state.guard = guard
    install(app, guard)

    protected = APIRouter(dependencies=[Depends(guard.protect)])

    @protected.get("/")
    def home(request: Request) -> Response:
        return redirect(request, "/hub")

    for router in ROUTERS:
        protected.include_router(router)
    app.include_router(protected)
    # Runs started here stop at their next checkpoint (interrupted, resumable) on shutdown.
    app.router.on_shutdown.append(launches.stop_all)
    app.router.on_shutdown.append(catalog.dispose)
    return app
