"""Send a plan: an opening request (a cohort's name), then batches, several at a time.

As many workers as the client could ever have requests in flight (``threads``,
or the ceiling of ``auto``) take turns: a worker waits for a place among the
requests in flight the client's concurrency allows now, then pulls the next
batch from one shared iterator and sends it. So no more requests than that
are ever in flight, and a batch body is only built when it is about to be
sent: memory holds one body per request in flight, not the plan. The first
failure that retrying cannot fix cancels the other workers; their batches
stay unacknowledged, so a resumed run sends them again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

from cohortsync.errors import CohortsyncError
from cohortsync.export.batches import Batch
from cohortsync.export.client import PartnerClient


async def send_all(
    client: PartnerClient,
    opening: tuple[str, bytes, str] | None,
    batches: Iterator[Batch],
    *,
    batch_path: str,
    pending: int,
    on_ack: Callable[[Batch, bytes], None],
) -> None:
    """Send the opening request (if any), then every batch, and report each ack.

    Args:
        client: an open client of the destination.
        opening: ``(path, body, what)`` of the request before the batches
            (the partner path's ``cohorts``: create or rename the cohort).
        batches: the requests still to send.
        batch_path: where each batch is posted (``cohorts/users``, ``users/track``).
        pending: how many they are, for the rate limiter's pacing.
        on_ack: called with the batch and the body of its 2xx answer.
    """
    client.limiter.pending = pending + (opening is not None)
    if opening is not None:
        path, body, what = opening
        await client.post(path, body, what=what)

    async def worker() -> None:
        while True:
            # a place in flight first: a batch taken is a batch about to be sent
            async with client.concurrency.slot():
                batch = next(batches, None)  # one shared iterator: each batch to one worker
                if batch is None:
                    return
                what = f"batch {batch.number}"
                answer = await client.post(batch_path, batch.body, what=what, in_slot=True)
            on_ack(batch, answer)

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(client.concurrency.connections):
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
