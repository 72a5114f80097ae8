"""`cohortsync console`: the web console, over the same home as the command line."""

from __future__ import annotations

from typing import Annotated

import typer

from cohortsync.cli.log_options import LogFormatChoice, LogFormatOption
from cohortsync.cli.metrics_options import (
    DEFAULT_METRICS_HOST,
    MetricsHostOption,
    MetricsPortOption,
    serve_metrics,
)
from cohortsync.console.serving import DEFAULT_HOST, DEFAULT_PORT, serve
from cohortsync.jobs.metrics import ConsoleMetrics
from cohortsync.logs import configure as configure_logs
from cohortsync.settings import Settings


def console(
    host: Annotated[
        str,
        typer.Option(
            "--host",
            help="Address to listen on. The default keeps the console on this machine; "
            "give 0.0.0.0 only behind a TLS proxy you trust.",
        ),
    ] = DEFAULT_HOST,
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port to listen on (0: any free one).")
    ] = DEFAULT_PORT,
    log_format: LogFormatOption = LogFormatChoice.text,
    metrics_port: MetricsPortOption = None,
    metrics_host: MetricsHostOption = DEFAULT_METRICS_HOST,
) -> None:
    """Serve the web console: Integrations Hub, Data Workbench, Audience Studio and Runs.

    It works on the same home as the other commands (COHORTSYNC_HOME): the
    same catalog, warehouse and saved authentications, so what is made in the
    browser shows in 'cohortsync query list' and the other way round.

    Log in as 'admin'. With COHORTSYNC_CONSOLE_PASSWORD set, that is the password;
    without it, the console prints a one-time login link, and you choose a
    password in the browser.

    SIGTERM or Ctrl-C: the runs started here stop at their next checkpoint
    (interrupted: resume them from the run's page), then the console exits 0.

    With --metrics-port the console serves Prometheus metrics of the runs it
    starts (Run now, Resume) on a port of its own, as the scheduler does for
    its runs, named cohortsync_console_* (docs/console.md#metrics): runs by
    job and status, identifiers sent, retries, the last success and the
    cohort's size by job, and the runs in flight. Nothing listens without it.

    Examples:

    \b
      COHORTSYNC_CONSOLE_PASSWORD=... cohortsync console --port 8484
      cohortsync console --log-format json   # one JSON object a line on stderr
      cohortsync console --metrics-port 9465 # scrape http://127.0.0.1:9465/metrics
    """
    configure_logs(log_format.value)
    metrics = ConsoleMetrics()
    served = serve_metrics(
        metrics, metrics_host, metrics_port, logger="cohortsync.console", as_log=False
    )
    try:
        serve(Settings(), host=host, port=port, log_format=log_format.value, metrics=metrics)
    finally:
        if served is not None:
            served.close()
