"""Run saved queries and activations on their cron schedules.

The scheduler is stateless: everything it knows lives in the catalog
(:mod:`cohortsync.catalog.schedules`), so it can stop, restart, run as a
daemon (``cohortsync scheduler``) or be called from cron (``--once``).

Rules, each one a test in ``tests/scheduler``:

- **Due.** A job is due when its latest cron slot at or before *now* (read in
  the job's time zone, UTC by default) is later than the last slot it consumed
  (or than the moment it was scheduled, for a new schedule).
- **Missed while down.** Slots missed during downtime are consumed together by
  one run: after a weekend off, a daily job runs once, not three times.
- **No overlap.** A run first wins the job's lease; a job whose lease is held
  (by another scheduler or a manual ``query run``) is left due, and runs once
  the lease is free.
- **SIGTERM.** The daemon stops taking jobs, requests the stop of each
  running job's :class:`~cohortsync.export.stopping.StopToken`, waits for them
  and releases their leases. Nothing is injected into the job's thread: the
  job stops at its next boundary. An export that is sending stops gracefully:
  no new batch, the requests in flight finish and are recorded, so nothing
  reaches Braze unacknowledged; a second SIGTERM cancels them at once.
- **Failures** leave a failed run in the run history with the message and,
  when configured, POST the run's report to a webhook.

Time comes from an injected clock so tests can move it.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from types import FrameType
from typing import Any

import sqlalchemy as sa

from cohortsync.audience.activations import run_activation_job
from cohortsync.catalog import schedules as catalog
from cohortsync.catalog.db import open_catalog
from cohortsync.catalog.leases import Lease, abandoned_leases, acquire_lease, release_lease
from cohortsync.errors import CohortsyncError, RunInterrupted
from cohortsync.export.report import ExportReport
from cohortsync.export.reporting import LoggingReporter
from cohortsync.export.stopping import StopToken
from cohortsync.jobs.cron import (
    CRON_HINT,
    Clock,
    DueJob,
    abandoned_jobs,
    check_cron,
    due_jobs,
    latest_slot,
    next_run,
    next_slot,
    utc_now,
    zone,
)
from cohortsync.jobs.history import find_run_since, record_failed_run
from cohortsync.jobs.kinds import JobContext, JobResult, JobRunner, job_runner, register_job_kind
from cohortsync.jobs.leases import LEASE_TTL, held_lease, new_owner
from cohortsync.jobs.metrics import SchedulerMetrics
from cohortsync.logs import bind, log_context
from cohortsync.queries import run_query_job
from cohortsync.settings import Settings
from cohortsync.webhooks import failure_payload, post_webhook

__all__ = [  # the names this module has always offered, now defined in cohortsync.jobs
    "CRON_HINT",
    "LEASE_TTL",
    "Clock",
    "DueJob",
    "JobContext",
    "JobResult",
    "JobRunner",
    "Scheduler",
    "check_cron",
    "due_jobs",
    "execute_job",
    "find_run_since",
    "held_lease",
    "job_runner",
    "latest_slot",
    "new_owner",
    "next_run",
    "next_slot",
    "record_failed_run",
    "register_job_kind",
    "run_activation_job",
    "run_query_job",
    "utc_now",
    "zone",
]

log = logging.getLogger(__name__)


# The built-in kinds of job.
register_job_kind("query", run_query_job)
register_job_kind("activation", run_activation_job)


# --- running one job -------------------------------------------------------------


class FieldsReporter(LoggingReporter):
    """The scheduler's reporter: its lines also carry the run as fields (JSON logs).

    Once the run has an id, every later line of the job carries ``run_id``;
    the line of the run's end also ``cohort``, ``status`` and ``duration_s``.
    """

    def run_started(self, run_id: str) -> None:
        bind(run_id=run_id)
        super().run_started(run_id)

    def finished(self, report: ExportReport) -> None:
        with log_context(
            run_id=report.run_id,
            cohort=report.cohort_id,
            status=report.status,
            duration_s=round(report.duration_s, 3),
        ):
            super().finished(report)


@dataclass(frozen=True)
class JobOutcome:
    """A finished job as the scheduler reports it."""

    job: str
    slot: datetime | None
    started_at: datetime
    finished_at: datetime
    result: JobResult
    webhook_sent: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "slot": self.slot.isoformat() if self.slot else None,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "status": self.result.status,
            "run_id": self.result.run_id,
            "error": self.result.error,
            "webhook_sent": self.webhook_sent,
        }


def execute_job(context: JobContext, runner: JobRunner | None = None) -> JobResult:
    """Run one job through its kind's runner and turn any failure into a result.

    A failure that happened before an export run existed (bad SQL, a deleted
    query, a missing authentication) still leaves a failed run in the run
    history, so the history answers "why did last night's job not run".
    """
    started = datetime.now(UTC)
    try:
        result = (runner or job_runner(context.kind))(context)
    except RunInterrupted as error:
        result = JobResult("interrupted", error.run_id, str(error))
    except CohortsyncError as error:
        result = JobResult("failed", error.run_id, str(error), error.report)
    except Exception as error:
        log.exception("job %s crashed", context.job)
        result = JobResult("failed", None, f"{type(error).__name__}: {error}")
    if result.failed and result.run_id is None:
        run_id = find_run_since(context.catalog, context.job, started) or record_failed_run(
            context.catalog, context.job, result.error or result.status, status=result.status
        )
        result = JobResult(result.status, run_id, result.error, result.report)
    return result


# --- the scheduler -------------------------------------------------------------------


class Scheduler:
    """Finds due jobs in the catalog and runs them, at most ``max_parallel`` at a time.

    Args:
        settings: where the catalog and the warehouse are.
        clock: where *now* comes from (tests pass a controlled clock).
        max_parallel: how many different jobs may run at the same time.
        webhook_url: where to POST the report of a failed run, if anywhere.
        on_outcome: called with each finished job (the CLI prints it).
        metrics: where the runs are counted (``--metrics-port`` serves them); a
            registry of the scheduler's own unless given.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        clock: Clock = utc_now,
        max_parallel: int = 2,
        webhook_url: str | None = None,
        webhook_timeout: float = 5.0,
        lease_ttl: timedelta = LEASE_TTL,
        on_outcome: Callable[[JobOutcome], None] | None = None,
        metrics: SchedulerMetrics | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self.engine = open_catalog(self.settings.catalog_path)
        self.clock = clock
        self.webhook_url = webhook_url
        self.webhook_timeout = webhook_timeout
        self.lease_ttl = lease_ttl
        self.on_outcome = on_outcome
        self.max_parallel = max_parallel
        self.metrics = metrics or SchedulerMetrics()
        self.owner = new_owner("scheduler")
        self.stopping = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=max_parallel, thread_name_prefix="job")
        self._running: dict[str, Future[JobOutcome]] = {}
        self._lock = threading.Lock()
        self._stops: dict[str, StopToken] = {}  # job -> the stop token of its running runner

    # one pass -----------------------------------------------------------------

    def tick(self) -> list[Future[JobOutcome]]:
        """Start the jobs due now, as many as there are free workers; returns their futures."""
        return [future for _job, future in self._tick(frozenset())]

    def _tick(self, skip: frozenset[str]) -> list[tuple[str, Future[JobOutcome]]]:
        """Claim and start due jobs, except those of ``skip``.

        A job is claimed (its lease taken, its slot consumed) only when a worker
        is free to start it, so a job waiting for a worker never blocks a
        manual run, and one still due after this tick is simply taken later.
        Jobs whose lease is held elsewhere stay due. A job whose scheduler died
        running it (its lease left behind, :func:`abandoned_leases`) is due
        again at once, without a new slot: its run is continued from its
        checkpoints by whichever scheduler takes the dead one's lease first.
        """
        started = []
        now = self.clock()
        scheduled = catalog.list_schedules(self.engine)
        due_now = due_jobs(scheduled, now)
        abandoned = abandoned_leases(self.engine, "scheduler", now=now)
        fresh = {due.job for due in due_now}
        due_now += [due for due in abandoned_jobs(scheduled, abandoned) if due.job not in fresh]
        for due in due_now:
            if self.stopping.is_set():
                break
            with self._lock:
                busy = {job for job, future in self._running.items() if not future.done()}
            if due.job in busy or due.job in skip:
                continue
            if len(busy) >= self.max_parallel:
                break
            lease = acquire_lease(
                self.engine,
                due.job,
                self.owner,
                now=now,
                ttl=self.lease_ttl,
                replacing=due.abandoned,
            )
            if lease is None:
                if due.abandoned is None:
                    log.info("%s is due but already running elsewhere; it runs when free", due.job)
                continue  # an abandoned run another scheduler took over first
            if due.abandoned is not None:
                log.warning(
                    "%s was left running by %s, which died; continuing its run now",
                    due.job,
                    due.abandoned.owner,
                )
            elif not catalog.consume_slot(
                self.engine, due.job, due.slot, seen=due.schedule.last_slot
            ):  # another scheduler ran this slot since the schedules were read
                release_lease(self.engine, lease)
                continue
            future = self._pool.submit(self._run, due, lease)
            with self._lock:
                self._running[due.job] = future
            future.add_done_callback(partial(self._forget, due.job))
            started.append((due.job, future))
        return started

    def run_once(self) -> list[JobOutcome]:
        """Run every job due now, each once, and wait for them (``--once``)."""
        outcomes: list[JobOutcome] = []
        seen: set[str] = set()
        pending: set[Future[JobOutcome]] = set()
        while True:
            if not self.stopping.is_set():
                started = self._tick(frozenset(seen))
                seen.update(job for job, _future in started)
                pending.update(future for _job, future in started)
            if not pending:
                return outcomes
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            outcomes.extend(future.result() for future in done)

    def run_forever(self, *, poll_interval: float = 30.0) -> list[JobOutcome]:
        """Tick every ``poll_interval`` seconds until :meth:`stop`, then drain and close.

        A look at the schedules that fails (the catalog is locked for longer
        than its busy timeout, say) is logged and retried at the next poll: a
        daemon does not die of a transient error. Returns the outcomes of the
        jobs that were still running at the stop.
        """
        try:
            while not self.stopping.is_set():
                try:
                    self.tick()
                except (sa.exc.SQLAlchemyError, OSError):
                    log.exception(
                        "could not read the schedules; trying again in %ss", poll_interval
                    )
                self.stopping.wait(poll_interval)
            return self.drain()
        finally:
            self.close()

    def stop(self, signal_name: str = "SIGTERM") -> None:
        """Stop taking jobs and request the stop of each running one; thread-safe.

        Each running job's :class:`~cohortsync.export.stopping.StopToken` is
        requested, as a first SIGTERM requests ``cohortsync export``'s: an
        export that is sending hands out no new batch, the requests in flight
        get their answers and are recorded, and the run ends ``interrupted``,
        so no batch reaches the destination unacknowledged. A job that is not
        sending (reading its query, waiting for a lock) stops at its next
        boundary, its DuckDB statement interrupted; a second call (a second
        SIGTERM) also cancels the requests in flight. Call :meth:`drain` to
        wait for the jobs. An interrupted job's slot is handed back, so the
        next scheduler runs it again.
        """
        self.stopping.set()
        with self._lock:
            stops = list(self._stops.values())
        for stop in stops:
            stop.request(signal_name)

    def drain(self) -> list[JobOutcome]:
        """Wait for the running jobs to finish or checkpoint."""
        with self._lock:
            futures = list(self._running.values())
        return [future.result() for future in futures]

    def close(self) -> None:
        """Wait for the worker threads and close the catalog."""
        self._pool.shutdown(wait=True)
        self.engine.dispose()

    def __enter__(self) -> Scheduler:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT stop the scheduler gracefully (main thread only)."""

        def handler(signum: int, _frame: FrameType | None) -> None:
            log.warning(
                "received %s: no new jobs; running ones stop at a checkpoint",
                signal.Signals(signum).name,
            )
            self.stop(signal.Signals(signum).name)

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    # internals -------------------------------------------------------------------

    def _forget(self, job: str, future: Future[JobOutcome]) -> None:
        with self._lock:
            if self._running.get(job) is future:
                del self._running[job]

    def _stoppable(self, context: JobContext) -> JobResult:
        """Run the job with its stop token known to :meth:`stop` while the runner runs."""
        with self._lock:
            if self.stopping.is_set():  # stopped before it began: nothing ran or to record
                return JobResult("interrupted", None, "not started: the scheduler was stopping")
            self._stops[context.job] = context.stop
        try:
            return execute_job(context)
        finally:
            with self._lock:
                del self._stops[context.job]

    def _run(self, due: DueJob, lease: Lease) -> JobOutcome:
        # Every line logged while the job runs, the export's own too, names the job.
        with log_context(job=due.job), self.metrics.running():
            return self._run_job(due, lease)

    def _run_job(self, due: DueJob, lease: Lease) -> JobOutcome:
        schedule = due.schedule
        context = JobContext(
            self.engine,
            self.settings,
            schedule.kind,
            schedule.name,
            self.owner,
            StopToken(),
            self.metrics.reporter(due.job, FieldsReporter(due.job)),
        )
        started = self.clock()
        log.info("running %s (slot %s)", due.job, due.slot.isoformat())
        with held_lease(
            self.engine, due.job, self.owner, clock=self.clock, ttl=self.lease_ttl, lease=lease
        ):
            result = self._stoppable(context)
            if result.status == "interrupted":
                catalog.restore_slot(self.engine, due.job, schedule.last_slot)
        finished = self.clock()
        catalog.record_outcome(
            self.engine,
            due.job,
            run_id=result.run_id,
            status=result.status,
            error=result.error,
            finished_at=finished,
        )
        self.metrics.job_finished(due.job, result.status, finished)
        sent = None
        if result.status == "failed" and self.webhook_url:
            payload = failure_payload(
                due.job,
                run_id=result.run_id,
                status=result.status,
                error=result.error,
                report=result.report,
            )
            sent = post_webhook(self.webhook_url, payload, timeout=self.webhook_timeout)
        outcome = JobOutcome(due.job, due.slot, started, finished, result, sent)
        if self.on_outcome is not None:
            self.on_outcome(outcome)
        return outcome
