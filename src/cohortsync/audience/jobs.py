"""The scheduler's ``activation`` job kind: run a saved activation on its schedule."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cohortsync.audience.activations import run_activation

if TYPE_CHECKING:
    from cohortsync.scheduler import JobContext, JobResult


def run_activation_job(context: JobContext) -> JobResult:
    """Run ``activation:NAME`` under the lease the scheduler already holds for it.

    Failures propagate: the scheduler turns them into a failed result, and
    :func:`run_activation` has already recorded them in the run history.
    """
    from cohortsync.scheduler import JobResult

    report = run_activation(
        context.name,
        settings=context.settings,
        lease_owner=context.lease_owner,
        progress=False,
    )
    return JobResult(report.status, report.run_id, None, report.to_dict())
