"""Check a destination's credentials before saving them.

An empty ``cohort_changes`` request touches nothing in Braze but goes through
the same key checks as a real export, so a bad key or a wrong endpoint is
caught when the authentication is created, not at 3 a.m. in a schedule.
"""

from __future__ import annotations

import asyncio

from cohortsync.errors import ConfigError, RetriesExhausted
from cohortsync.export.client import PartnerClient, RetryPolicy
from cohortsync.export.spec import Destination

CHECK_COHORT_ID = "cohortsync-credentials-check"


def check_credentials(destination: Destination, *, timeout: float = 15.0) -> None:
    """Send ``cohort_changes: []`` and return when the destination accepts it.

    Raises:
        DestinationRefused: the server refused the keys (its message included).
        ConfigError: the endpoint could not be reached or kept failing.
    """
    policy = RetryPolicy(max_attempts=3, backoff_base=0.2, backoff_max=1.0, timeout=timeout)

    async def check() -> None:
        async with PartnerClient(destination, threads=1, policy=policy) as client:
            body = client.body(cohort_id=CHECK_COHORT_ID, cohort_changes=[])
            await client.post("cohorts/users", body, what="credentials check")

    try:
        asyncio.run(check())
    except RetriesExhausted as error:
        raise ConfigError(
            f"the endpoint {destination.endpoint} is unreachable or failing: {error.message}",
            hint="check the REST endpoint URL of the workspace and the network",
        ) from None
