"""Braze's partner cohort import API: define a cohort, change its members.

By the time a handler runs, its dependencies have read the body and passed
the partner's keys and rate limit (:mod:`cohortsync.braze.dependencies`);
the handler checks the body's shape, then writes, in one thread-pool call.
"""

from __future__ import annotations

from typing import Any

from cohortsync.braze import matching, schemas
from cohortsync.braze.dependencies import partner_budget, partner_caller
from cohortsync.braze.keys import PartnerCaller
from cohortsync.braze.metrics import ServiceMetrics
from cohortsync.braze.routes.registration import operations_router
from cohortsync.braze.store import Store
from cohortsync.braze.validation import parse_cohort_definition, parse_membership_changes

PARTNER_ERRORS = schemas.error_responses(400, 401, 413, 415, 423, 429, 500, 503)

router, _route = operations_router(
    tag="partner cohort import", budget=partner_budget, caller=partner_caller, errors=PARTNER_ERRORS
)


@_route("/partners/{partner}/cohorts", "Create or rename a cohort", schemas.COHORT_DEFINITION)
def create_cohort(store: Store, caller: PartnerCaller, body: dict[str, Any]) -> None:
    """Called when a cohort is first exported and whenever its name changes."""
    matching.define_cohort(store, caller, parse_cohort_definition(body))


@_route(
    "/partners/{partner}/cohorts/users",
    "Add users to a cohort or remove them",
    schemas.MEMBERSHIP_CHANGES,
)
def change_cohort_users(
    store: Store,
    caller: PartnerCaller,
    body: dict[str, Any],
    metrics: ServiceMetrics | None = None,
) -> None:
    """At most 1,000 identifiers per request; unknown identifiers are dropped."""
    changes = parse_membership_changes(body)
    # Checks and lookups on a read snapshot, then the write holding the cohort.
    with store.read() as conn:
        resolved = matching.resolve_request(store, conn, caller, changes)
    report = matching.write_changes(store, caller, changes, resolved)
    if metrics is not None:  # counted once the write has committed
        metrics.count_import(
            {kind: (c.received, c.matched) for kind, c in report.counts.items()},
            report.added,
            report.removed,
        )
