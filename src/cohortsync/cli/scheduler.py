"""`cohortsync scheduler`: run saved queries and activations on their schedules."""

from __future__ import annotations

import logging
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from cohortsync.catalog import schedules
from cohortsync.catalog.db import open_catalog
from cohortsync.cli.export_options import MAX_SECONDS
from cohortsync.cli.log_options import LogFormatChoice, LogFormatOption
from cohortsync.cli.metrics_options import (
    DEFAULT_METRICS_HOST,
    MetricsHostOption,
    MetricsPortOption,
    serve_metrics,
)
from cohortsync.jobs.metrics import SchedulerMetrics
from cohortsync.logs import configure as configure_logs
from cohortsync.scheduler import JobOutcome, Scheduler, next_run, utc_now
from cohortsync.settings import Settings
from cohortsync.webhooks import check_webhook_url


def scheduler(
    once: Annotated[
        bool,
        typer.Option("--once", help="Run what is due now, wait for it, and exit (for cron)."),
    ] = False,
    poll_interval: Annotated[
        float,
        typer.Option(
            "--poll-interval",
            min=0.05,
            max=MAX_SECONDS,
            help="Seconds between looks at the schedules.",
        ),
    ] = 30.0,
    webhook: Annotated[
        str | None,
        typer.Option(
            "--webhook",
            metavar="URL",
            envvar="COHORTSYNC_WEBHOOK_URL",
            help="POST each failed run's report (JSON) to this URL.",
        ),
    ] = None,
    max_parallel: Annotated[
        int, typer.Option("--max-parallel", min=1, max=32, help="Different jobs run at once.")
    ] = 2,
    list_only: Annotated[
        bool,
        typer.Option(
            "--list", help="Only list the scheduled jobs, their next run and last status."
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object per line for scripts.")
    ] = False,
    log_format: LogFormatOption = LogFormatChoice.text,
    metrics_port: MetricsPortOption = None,
    metrics_host: MetricsHostOption = DEFAULT_METRICS_HOST,
) -> None:
    """Run every due saved query and activation by its cron schedule.

    Schedules are five-field cron expressions read in each job's time zone
    (UTC unless one was given). Slots missed while no scheduler ran are run
    once, not once per slot. A job never runs twice at once: two schedulers,
    or a scheduler and a manual 'query run', share a lease in the catalog.
    Every run lands in the run history ('cohortsync runs list'), failures
    with their message; --webhook also POSTs each failure as JSON:
    {"event": "run.failed", "job", "run_id", "status", "error", "report"}.

    SIGTERM or Ctrl-C: no new jobs start; running exports stop at their next
    checkpoint (acknowledged batches are recorded) and run again at the next
    start.

    \b
    Examples:
      cohortsync scheduler                       # a daemon, e.g. under systemd
      */5 * * * *  cohortsync scheduler --once   # from cron or an orchestrator

    With --log-format json every log line on stderr is one JSON object (with
    the job, run id, cohort, status and duration where they exist), and each
    finished job is printed on stdout as with --json.

    With --metrics-port the scheduler serves Prometheus metrics over HTTP:
    runs by job and status, identifiers sent, retries, the last success and
    the cohort's size by job, and the runs in flight (docs/scheduling.md).

    Exit code with --once: 0 when every job succeeded, 1 when one failed.
    """
    configure_logs(log_format.value, text_format="%(asctime)s %(levelname)s %(message)s")
    as_json = as_json or log_format is LogFormatChoice.json
    settings = Settings()
    if list_only:
        _list(settings, as_json)
        return
    # Imported here: DuckDB is loaded only when the scheduler runs jobs, not for --list.
    from cohortsync.warehouse.connect import require_stored_warehouse

    require_stored_warehouse(settings.warehouse, "the scheduler (COHORTSYNC_WAREHOUSE)")
    url = check_webhook_url(webhook) if webhook else None
    failed: list[JobOutcome] = []

    def report(outcome: JobOutcome) -> None:
        if outcome.result.status == "failed":
            failed.append(outcome)
        if as_json:
            typer.echo(orjson.dumps(outcome.to_dict()).decode())
            return
        line = f"{outcome.job}: {outcome.result.status}"
        if outcome.result.run_id:
            line += f" (run {outcome.result.run_id})"
        if outcome.result.error:
            line += f": {outcome.result.error}"
        typer.echo(line)

    metrics = SchedulerMetrics()
    served = serve_metrics(metrics, metrics_host, metrics_port, logger="cohortsync.scheduler")
    runner = Scheduler(
        settings, max_parallel=max_parallel, webhook_url=url, on_outcome=report, metrics=metrics
    )
    runner.install_signal_handlers()
    try:
        _run(runner, once=once, poll_interval=poll_interval, as_json=as_json, failed=failed)
    finally:
        if served is not None:
            served.close()


def _run(
    runner: Scheduler,
    *,
    once: bool,
    poll_interval: float,
    as_json: bool,
    failed: list[JobOutcome],
) -> None:
    """Run what is due once (``--once``) or as a daemon until SIGTERM."""
    if once:
        try:
            outcomes = runner.run_once()
        finally:
            runner.close()
        if not outcomes and not as_json:
            typer.echo("nothing due now; 'cohortsync scheduler --list' shows the next runs")
        if failed:
            raise typer.Exit(1)
        return
    logging.getLogger("cohortsync.scheduler").info(
        "scheduler started: every %ss, up to %d jobs at once", poll_interval, runner.max_parallel
    )
    runner.run_forever(poll_interval=poll_interval)


def _list(settings: Settings, as_json: bool) -> None:
    catalog = open_catalog(settings.catalog_path)
    try:
        scheduled = schedules.list_schedules(catalog)
    finally:
        catalog.dispose()
    now = utc_now()
    rows = []
    for item in scheduled:
        upcoming = next_run(item, now)
        rows.append(
            {
                "job": item.job,
                "cron": item.cron,
                "timezone": item.timezone,
                "next_run": upcoming.isoformat() if upcoming else None,
                "last_status": item.last_status,
                "last_run_id": item.last_run_id,
                "last_error": item.last_error,
            }
        )
    if as_json:
        typer.echo(orjson.dumps({"jobs": rows}).decode())
        return
    if not rows:
        typer.echo("nothing scheduled; give a query or activation a --schedule")
        return
    table = Table(header_style="bold")
    for column in ("job", "schedule", "next run", "last run"):
        table.add_column(column)
    for row in rows:
        last = row["last_status"] or "-"
        if row["last_run_id"]:
            last += f" ({row['last_run_id']})"
        table.add_row(
            str(row["job"]), f"{row['cron']} ({row['timezone']})", str(row["next_run"]), last
        )
    Console().print(table)
