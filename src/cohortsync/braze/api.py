"""The Braze-compatible service as a FastAPI application.

:func:`create_app` only assembles: the routers of each API family
(:mod:`.routes`), the error handlers (:mod:`.error_handlers`), and the store
and rate-limit counters the dependencies (:mod:`.dependencies`) hand to the
routes. Every handler reads its raw body through :mod:`.validation`, so
statuses and messages are the spec's.
"""

from __future__ import annotations

from fastapi import FastAPI

import cohortsync
from cohortsync.braze.dashboard.app import MOUNT_PATH, create_dashboard
from cohortsync.braze.error_handlers import install_error_handlers
from cohortsync.braze.metrics import (
    METRICS_PATH,
    MetricsMiddleware,
    ServiceMetrics,
    metrics_endpoint,
)
from cohortsync.braze.ratelimit import RateLimit, RateLimiter, parse_rate_limit
from cohortsync.braze.routes import campaigns, partner, segments, users
from cohortsync.braze.store import Store
from cohortsync.web.throttle import LoginThrottle


def create_app(
    store: Store,
    *,
    rate_limit: RateLimit | str | int = RateLimit(),
    login_throttle: LoginThrottle | None = None,
    metrics: bool = True,
) -> FastAPI:
    """The service over an open store, with its own rate-limit counters, and the dashboard.

    The dashboard (:mod:`.dashboard`) is mounted at ``/dashboard`` over the
    same store; ``login_throttle`` is its failed-login throttling. With
    ``metrics``, every request is counted in a registry of this app's own,
    served at ``GET /metrics`` (:mod:`.metrics`); without, neither exists.
    """
    app = FastAPI(
        title="cohortsync Braze-compatible service",
        version=getattr(cohortsync, "__version__", "0.1.0"),
        description=(
            "Braze's partner cohort import API (`/partners/{partner}/cohorts[/users]`) and the "
            "REST endpoints around it, over a real store of users, cohorts and segments. "
            "The dashboard is served at `/dashboard`."
        ),
    )
    app.state.store = store
    app.state.limiter = RateLimiter(parse_rate_limit(rate_limit))
    app.state.metrics = ServiceMetrics() if metrics else None
    if app.state.metrics is not None:
        app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
        # An API route (not a plain one): FastAPI's routes name themselves in the
        # request's scope, which is where the middleware reads the route label.
        app.add_api_route(
            METRICS_PATH,
            metrics_endpoint(app.state.metrics),
            methods=["GET"],
            include_in_schema=False,
        )
    install_error_handlers(app)
    for router in (partner.router, users.router, segments.router, campaigns.router):
        app.include_router(router)
    app.mount(MOUNT_PATH, create_dashboard(store, throttle=login_throttle))
    return app
