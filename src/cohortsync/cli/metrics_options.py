"""The --metrics-port and --metrics-host options of the commands that run jobs (scheduler, console).

Both serve the same Prometheus metrics of the jobs they run
(:mod:`cohortsync.jobs.metrics`), each under its own prefix, on a port of
their own; the options are defined once here so they read and behave alike.
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from cohortsync.jobs.metrics import JobMetrics, MetricsServer
from cohortsync.logs import announce

DEFAULT_METRICS_HOST = "127.0.0.1"

MetricsPortOption = Annotated[
    int | None,
    typer.Option(
        "--metrics-port",
        min=0,
        max=65535,
        metavar="PORT",
        help="Serve Prometheus metrics at http://HOST:PORT/metrics (0: any free port).",
    ),
]

MetricsHostOption = Annotated[
    str,
    typer.Option("--metrics-host", metavar="HOST", help="The address the metrics listen on."),
]


def serve_metrics(
    metrics: JobMetrics, host: str, port: int | None, *, logger: str, as_log: bool = True
) -> MetricsServer | None:
    """Serve ``metrics`` when ``--metrics-port`` was given, and say where; ``None`` otherwise.

    ``as_log``: the line ``metrics on URL`` is an INFO record of ``logger``
    (the scheduler's log lines); otherwise it is announced as the console
    announces where it serves (:func:`cohortsync.logs.announce`), with the
    URL as the ``metrics_url`` field in JSON.

    Raises:
        ConfigError: the address cannot be listened on.
    """
    if port is None:
        return None
    served = metrics.serve(host, port)
    if as_log:
        logging.getLogger(logger).info("metrics on %s", served.url)
    else:
        announce(f"metrics on {served.url}", logger=logger, metrics_url=served.url)
    return served
