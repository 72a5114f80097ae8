"""Runs started from the console: each in its own thread, followed while it works.

*Run now* and *Resume* must not hold the browser's request while a run
sends its batches, so the work runs in a thread and the request only waits
until the run is recorded in the history (its id is known), then the browser
goes to the run's page. That page reads the launch's live progress
(:class:`LaunchProgress`: stage, batches acknowledged, rate, ETA), which the
run reports through the same :class:`~cohortsync.export.reporting.RunReporter`
protocol as the command line's progress bar.

Launches live in the console's process; a run started elsewhere (the CLI,
the scheduler) is followed through its checkpoints in the catalog instead.
A stop token is kept per launch, so stopping the console stops its runs at
their next checkpoint: they end interrupted, and resume.

Each launch is counted in the console's metrics (:mod:`cohortsync.jobs.metrics`,
served by ``console --metrics-port``) under its job's name, as the scheduler
counts its runs: in flight while it works, then by the status it ended with
(succeeded, failed, or interrupted when stopped), its identifiers as they are
acknowledged (a resumed run only what it sent itself).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from cohortsync.errors import CohortsyncError, RunInterrupted
from cohortsync.export.report import ExportReport
from cohortsync.export.reporting import RunReporter, Stage
from cohortsync.export.stopping import StopToken
from cohortsync.jobs.metrics import ConsoleMetrics, JobMetrics
from cohortsync.web.pages import redirect

# Seconds the browser's request waits for the run's id before showing the launch's own page.
WAIT_FOR_RUN_ID = 10.0

# The job of a resumed run that belongs to no saved query or activation (a bare ``export``).
EXPORT_JOB = "export"


@dataclass
class LaunchProgress:
    """What the run reported so far; read by the run page while it updates."""

    stage: Stage | None = None
    rows_read: int = 0
    total: int | None = None  # identifiers to send, once sending starts
    batches: int = 0
    identifiers: int = 0
    sending_since: float | None = None
    # What an earlier attempt of a resumed run had acknowledged: counted in ``batches`` and
    # ``identifiers`` (the plan's ``total`` counts them too), not in the rate of this attempt.
    identifiers_before: int = 0

    @classmethod
    def resuming(cls, batches: int, identifiers: int) -> LaunchProgress:
        """A resumed run's progress, starting from what its earlier attempts got acknowledged."""
        return cls(batches=batches, identifiers=identifiers, identifiers_before=identifiers)

    @property
    def rate(self) -> float | None:
        """Identifiers acknowledged per second since this attempt started sending."""
        sent = self.identifiers - self.identifiers_before
        if self.sending_since is None or sent <= 0:
            return None
        elapsed = time.monotonic() - self.sending_since
        return sent / elapsed if elapsed > 0 else None

    @property
    def eta_seconds(self) -> float | None:
        """Seconds until every identifier is acknowledged, at the rate so far."""
        rate = self.rate
        if rate is None or self.total is None:
            return None
        return max(0.0, (self.total - self.identifiers) / rate)

    @property
    def percent(self) -> float | None:
        if not self.total:
            return None
        return min(100.0, 100.0 * self.identifiers / self.total)


@dataclass
class Launch:
    """One piece of work started from the console, and what became of it."""

    id: str
    label: str
    job: str = ""  # the job's name, the ``job`` label of its metrics
    progress: LaunchProgress = field(default_factory=LaunchProgress)
    stop: StopToken = field(default_factory=StopToken)
    run_id: str | None = None
    resumes: str | None = None  # the run a Resume continues, named before it is reopened
    report: ExportReport | None = None
    result: Any = None
    error: CohortsyncError | None = None
    done: bool = False  # the work returned or raised
    _known: threading.Event = field(default_factory=threading.Event, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def wait_for_run_id(self, timeout: float) -> str | None:
        """The run's id once recorded (or the work ended), waiting at most ``timeout`` s."""
        self._known.wait(timeout)
        return self.run_id

    # -- the RunReporter protocol, called from the run's threads ------------------------

    def run_started(self, run_id: str) -> None:
        self.run_id = run_id
        self._known.set()

    def stage_started(self, stage: Stage, *, total: int | None = None) -> None:
        with self._lock:
            self.progress.stage = stage
            if stage == "sending":
                self.progress.total = total
                self.progress.sending_since = time.monotonic()

    def rows_read(self, rows: int) -> None:
        with self._lock:
            self.progress.rows_read += rows

    def batches_sent(self, batches: int, identifiers: int) -> None:
        with self._lock:
            self.progress.batches += batches
            self.progress.identifiers += identifiers

    def finished(self, report: ExportReport) -> None:
        self.report = report
        if report.run_id and self.run_id is None:
            self.run_id = report.run_id


class Launches:
    """The console's launches, by launch id and by run id, counted in ``metrics``."""

    def __init__(self, metrics: JobMetrics | None = None) -> None:
        self._launches: dict[str, Launch] = {}
        self._lock = threading.Lock()
        self.metrics = metrics or ConsoleMetrics()

    def start(
        self,
        label: str,
        work: Callable[[RunReporter, StopToken], Any],
        *,
        job: str | None = None,
        progress: LaunchProgress | None = None,
        resumes: str | None = None,
    ) -> Launch:
        """Run ``work(reporter, stop)`` in a thread; the launch is its reporter.

        ``work`` calls a library function with ``reporter=`` and ``stop=``
        (``queries.run_query``, ``activations.run_activation``,
        ``run_history.resume_run``). A :class:`CohortsyncError` it raises is
        kept on the launch (with the run it names, if any); anything else is a
        bug and is raised in the thread, with its traceback in the log.
        ``job`` is the job's name (``query:NAME``, ``activation:NAME``) the
        run is counted under in :attr:`metrics`; the label when not given.
        ``progress`` is where a resumed run starts (:meth:`LaunchProgress.resuming`),
        ``resumes`` the run it continues, for the launch's page if it fails first.
        """
        launch = Launch(
            id=secrets.token_hex(6),
            label=label,
            job=job or label,
            progress=progress or LaunchProgress(),
            resumes=resumes,
        )
        with self._lock:
            self._launches[launch.id] = launch
        metrics = self.metrics
        # The launch is the run's reporter, through the metrics' one that counts what it sends.
        reporter = metrics.reporter(launch.job, launch)

        def target() -> None:
            status = "failed"  # unless the work returns, or is stopped
            try:
                with metrics.running():
                    try:
                        launch.result = work(reporter, launch.stop)
                        status = str(getattr(launch.result, "status", None) or "succeeded")
                        run_id = getattr(launch.result, "run_id", None)
                        if launch.run_id is None and isinstance(run_id, str):
                            launch.run_id = run_id
                    except CohortsyncError as error:
                        status = "interrupted" if isinstance(error, RunInterrupted) else "failed"
                        launch.error = error
                        if launch.run_id is None:
                            launch.run_id = error.run_id
                    finally:
                        metrics.job_finished(launch.job, status, datetime.now(UTC))
            finally:
                launch.done = True
                launch._known.set()

        threading.Thread(target=target, name=f"console-{label}", daemon=True).start()
        return launch

    def get(self, launch_id: str) -> Launch | None:
        with self._lock:
            return self._launches.get(launch_id)

    def for_run(self, run_id: str) -> Launch | None:
        """The latest launch of this process that is (or resumed) the run ``run_id``."""
        with self._lock:
            found = [launch for launch in self._launches.values() if launch.run_id == run_id]
        return found[-1] if found else None

    def running(self) -> list[Launch]:
        with self._lock:
            return [launch for launch in self._launches.values() if not launch.done]

    def stop_all(self, timeout: float = 10.0) -> None:
        """Ask every unfinished launch to stop at its next checkpoint, and wait a little."""
        launches = self.running()
        for launch in launches:
            launch.stop.request("the console stopping")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(not launch.done for launch in launches):
            time.sleep(0.05)


def launched(request: Request, launch: Launch, *, wait: float | None = None) -> Response:
    """Where the browser goes after starting ``launch``: the run's page, or the launch's own.

    The launch's page (``/runs/launches/{id}``) shows a launch whose run is
    not recorded yet (a long query still staging) or that failed before any
    run was recorded; it sends the browser on to the run once there is one.
    """
    run_id = launch.wait_for_run_id(WAIT_FOR_RUN_ID if wait is None else wait)
    if run_id is not None:
        return redirect(request, f"/runs/{run_id}")
    return redirect(request, f"/runs/launches/{launch.id}")
