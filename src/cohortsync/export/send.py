"""Send a plan: the cohort name first, then its batches, ``threads`` at a time.

Exactly ``threads`` workers pull the next batch from one shared iterator, so
no more than ``threads`` requests are ever in flight, and a batch body is only
built when a worker is free to send it: memory holds ``threads`` bodies, not
the plan. The first failure that retrying cannot fix cancels the other
workers; their batches stay unacknowledged, so a resumed run sends them again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

from cohortsync.errors import CohortsyncError
from cohortsync.export.batches import Batch
from cohortsync.export.client import PartnerClient


async def send_all(
    client: PartnerClient,
    name_body: bytes,
    batches: Iterator[Batch],
    *,
    pending: int,
    on_ack: Callable[[Batch], None],
) -> None:
    """Create or rename the cohort, then send every batch and report each ack.

    Args:
        client: an open partner API client.
        name_body: the ``cohorts`` request body.
        batches: the ``cohorts/users`` requests still to send.
        pending: how many they are, for the rate limiter's pacing.
        on_ack: called after the server acknowledged a batch (2xx).
    """
    client.limiter.pending = pending + 1
    await client.post("cohorts", name_body, what="cohort name")

    async def worker() -> None:
        for batch in batches:  # one shared iterator: each batch goes to one worker
            await client.post("cohorts/users", batch.body, what=f"batch {batch.number}")
            on_ack(batch)

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(client.threads):
                group.create_task(worker())
    except BaseExceptionGroup as group_error:
        raise _first_user_error(group_error) from None


def _first_user_error(group_error: BaseExceptionGroup) -> BaseException:
    """The error to show from a failed task group: a user-facing one if any."""
    for error in _leaves(group_error):
        if isinstance(error, CohortsyncError):
            return error
    return next(iter(_leaves(group_error)))


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]
