"""The dashboard's screens, one router per area, in the order of the sidebar."""

from cohortsync.braze.dashboard.routes import campaigns, cohorts, home, partners, segments, users

ROUTERS = (
    home.router,
    partners.router,
    cohorts.router,
    segments.router,
    campaigns.router,
    users.router,
)
