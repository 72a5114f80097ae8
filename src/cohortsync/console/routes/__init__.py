"""One router per area of the console, in the order of the navigation."""

from cohortsync.console.routes import audience, hub, runs, workbench

ROUTERS = (hub.router, workbench.router, audience.router, runs.router)
