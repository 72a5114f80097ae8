"""Prometheus metrics of the jobs a process runs, served over HTTP by ``--metrics-port``.

Two processes run jobs and serve these metrics: ``cohortsync scheduler``
(its scheduled runs) and ``cohortsync console`` (the runs started by *Run
now* and *Resume*). One :class:`JobMetrics` per process, named by it: the
metrics are ``cohortsync_<process>_*`` (``cohortsync_scheduler_runs_total``,
``cohortsync_console_runs_total``), the same metrics under each process's
prefix, so a dashboard or an alert on the scheduler's names never counts
the console's runs by accident, and the two add up with one ``sum``.

Each over a ``CollectorRegistry`` of its own (never the process-wide
default one), so several in one process (the test suite) count apart, as
the receiving service's apps do (:mod:`cohortsync.braze.metrics`). What is
counted, and where:

* the runs of each job by their status, the last success and the runs in
  flight: the process, around each job it runs (:meth:`JobMetrics.running`,
  :meth:`JobMetrics.job_finished`);
* identifiers acknowledged, retries and the cohort's size: the job's export,
  through the :class:`MetricsReporter` the process hands it, so identifiers
  are counted as each batch is acknowledged (a resumed run counts only what
  it sent itself, never again what the run it continues sent).

The ``job`` label is a job's name (``query:NAME``, ``activation:NAME``):
the series are as many as the jobs, never a run id or a cohort's
identifiers.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from cohortsync.errors import ConfigError
from cohortsync.export.report import ExportReport
from cohortsync.export.reporting import RunReporter, Stage

STATUSES = ("succeeded", "failed", "interrupted")

# The processes that run jobs, the ``<process>`` of their metrics' names.
PROCESSES = ("scheduler", "console")


class JobMetrics:
    """The metrics of the jobs one process runs, registered in a registry of their own.

    Args:
        process: ``scheduler`` or ``console``: the metrics are ``cohortsync_<process>_*``.
    """

    def __init__(self, process: str = "scheduler") -> None:
        if process not in PROCESSES:
            raise ValueError(f"unknown process {process!r}: one of {', '.join(PROCESSES)}")
        self.process = process
        prefix = f"cohortsync_{process}"
        self.registry = CollectorRegistry(auto_describe=True)
        self.runs = Counter(
            f"{prefix}_runs",
            f"Job runs the {process} finished, by job and status (succeeded, failed, interrupted).",
            ("job", "status"),
            registry=self.registry,
        )
        self.identifiers_sent = Counter(
            f"{prefix}_identifiers_sent",
            "Identifiers the destination acknowledged, by job.",
            ("job",),
            registry=self.registry,
        )
        self.retries = Counter(
            f"{prefix}_retries",
            "Requests the exports of a job sent again after a retriable answer, by job.",
            ("job",),
            registry=self.registry,
        )
        self.last_success = Gauge(
            f"{prefix}_last_success_timestamp_seconds",
            "When the job's last succeeded run finished, in Unix seconds.",
            ("job",),
            registry=self.registry,
        )
        self.cohort_members = Gauge(
            f"{prefix}_cohort_members",
            "Members of the result the job's last succeeded export synced, by job.",
            ("job",),
            registry=self.registry,
        )
        self.in_flight = Gauge(
            f"{prefix}_runs_in_flight",
            "Job runs under way now.",
            registry=self.registry,
        )

    @contextmanager
    def running(self) -> Iterator[None]:
        """Count a job run in flight while the block runs, however it ends."""
        with self.in_flight.track_inprogress():
            yield

    def job_finished(self, job: str, status: str, finished_at: datetime) -> None:
        """A run of ``job`` ended with ``status`` at ``finished_at``."""
        self.runs.labels(job, status).inc()
        if status == "succeeded":
            self.last_success.labels(job).set(finished_at.timestamp())

    def reporter(self, job: str, inner: RunReporter) -> MetricsReporter:
        """A reporter for ``job``'s export that counts into these metrics, then calls ``inner``."""
        return MetricsReporter(self, job, inner)

    def serve(self, host: str, port: int) -> MetricsServer:
        """Serve these metrics at ``http://HOST:PORT/metrics`` in a thread (port 0: any free one).

        Raises:
            ConfigError: the address cannot be listened on (busy, or not this machine's).
        """
        try:
            server, thread = start_http_server(port, host, registry=self.registry)
        except OSError as error:
            raise ConfigError(
                f"cannot serve the metrics on {host}:{port}: {error.strerror or error}",
                hint="pick a free --metrics-port (or stop what listens there) and an "
                "address of this machine for --metrics-host",
            ) from None
        return MetricsServer(server, thread)


class SchedulerMetrics(JobMetrics):
    """The scheduler's metrics: ``cohortsync_scheduler_*``."""

    def __init__(self) -> None:
        super().__init__("scheduler")


class ConsoleMetrics(JobMetrics):
    """The console's metrics: ``cohortsync_console_*``, for the runs it launches."""

    def __init__(self) -> None:
        super().__init__("console")


class MetricsServer:
    """The HTTP server of the metrics, running in a daemon thread."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def url(self) -> str:
        host, port = self._server.socket.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class MetricsReporter:
    """Counts a job's export into its process's metrics and passes every call on.

    The job's counters exist (at 0) from its first run on; the cohort's size
    only once a run succeeded. ``batches_sent`` counts the identifiers as
    they are acknowledged, so a run that fails or is interrupted half way
    still counts what it got in;
    ``finished`` adds the run's retries and, when it succeeded, sets the
    cohort's size: a mirror's result members, else the identifiers the run
    sent (its whole deduplicated result).
    """

    def __init__(self, metrics: JobMetrics, job: str, inner: RunReporter) -> None:
        self._sent = metrics.identifiers_sent.labels(job)
        self._retries = metrics.retries.labels(job)
        self._members = metrics.cohort_members  # a size only once a run succeeded
        self._job = job
        self._inner = inner

    def run_started(self, run_id: str) -> None:
        self._inner.run_started(run_id)

    def stage_started(self, stage: Stage, *, total: int | None = None) -> None:
        self._inner.stage_started(stage, total=total)

    def rows_read(self, rows: int) -> None:
        self._inner.rows_read(rows)

    def batches_sent(self, batches: int, identifiers: int) -> None:
        self._sent.inc(identifiers)
        self._inner.batches_sent(batches, identifiers)

    def finished(self, report: ExportReport) -> None:
        if not report.dry_run:
            self._retries.inc(report.retries)
            if report.status == "succeeded":
                self._members.labels(self._job).set(cohort_members(report))
        self._inner.finished(report)


def cohort_members(report: ExportReport) -> int:
    """The size of the result a succeeded run synced."""
    if report.mirror is not None and "result_members" in report.mirror:
        return int(report.mirror["result_members"])
    return report.sent_total
