"""`cohortsync runs`: export run history, and resuming interrupted runs.

Every export (the ``export`` command, saved queries, activations, the
scheduler) is recorded as a run. A run marked ``running`` whose cohort lock
no process holds has died (killed, crashed): it is shown as such, and running
the same export again, or ``runs resume``, continues it.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cohortsync.cli.export_options import (
    MAX_SECONDS,
    MAX_SHOWN,
    THREADS_HELP,
    THREADS_METAVAR,
    parse_threads,
)
from cohortsync.cli.output import JsonOption, echo_json_line
from cohortsync.cli.progress import console_reporter
from cohortsync.cli.run_report import (
    concurrency_line,
    match_line,
    render_report,
    unaddressable_line,
)
from cohortsync.export.locks import DEFAULT_LOCK_TIMEOUT
from cohortsync.export.rest_attribute import REST_API_KEY_ENV
from cohortsync.jobs.run_history import (
    STATUSES,
    list_run_views,
    resume_run,
    show_run_view,
    status_text,
)
from cohortsync.secrets import DATA_IMPORT_KEY_ENV
from cohortsync.settings import Settings

app = typer.Typer(
    help=(
        "Export run history, and resuming interrupted runs.\n\n"
        "'runs list' shows the latest runs, 'runs show RUN_ID' one run with its counts and "
        "error, 'runs resume RUN_ID' continues an interrupted or killed run: it sends only "
        "the batches the server never acknowledged, then finishes the run."
    ),
    no_args_is_help=True,
)

RunIdArgument = Annotated[str, typer.Argument(help="The run's id, as 'runs list' shows it.")]


@app.command("list")
def list_(
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=MAX_SHOWN, help="How many runs to show.")
    ] = 20,
    cohort: Annotated[
        str | None, typer.Option("--cohort", help="Only the runs of this cohort id.")
    ] = None,
    status: Annotated[
        str | None,
        typer.Option("--status", help="Only runs with this status: " + ", ".join(STATUSES) + "."),
    ] = None,
    job: Annotated[
        str | None,
        typer.Option(
            "--job",
            metavar="KIND:NAME",
            help=(
                "Only the runs of this saved job: a saved query's 'query:NAME' or an "
                "activation's 'activation:NAME', e.g. query:vip."
            ),
        ),
    ] = None,
    json: JsonOption = False,
) -> None:
    """The latest export runs first: id, status, cohort, operation, start, counts.

    A 'running' run whose process is gone shows as 'running (dead)': run the
    same export again or 'cohortsync runs resume RUN_ID' to continue it.

    Example: cohortsync runs list --job activation:vip --status failed
    """
    views = list_run_views(Settings(), cohort_id=cohort, status=status, job=job, limit=limit)
    if json:
        echo_json_line(views)
        return
    if not views and job is not None:
        typer.echo(f"no export runs of {job} (see 'cohortsync runs list' for every job)")
        return
    if not views:
        typer.echo("no export runs yet (see 'cohortsync export --help')")
        return
    table = Table(title=f"Export runs (latest {limit})", title_justify="left")
    table.add_column("run", no_wrap=True)
    for column in ("status", "cohort", "operation", "started (UTC)", "took", "sent"):
        table.add_column(column)
    for view in views:
        report = view["report"] or {}
        table.add_row(
            view["id"],
            status_text(view),
            view["cohort_id"],
            view["operation"],
            view["started_at"][:19].replace("T", " "),
            _duration(view),
            f"{report.get('sent_total', 0):,}" if report else "-",
        )
    Console().print(table)


@app.command()
def show(run_id: RunIdArgument, json: JsonOption = False) -> None:
    """One run: what it exported, when, its status, counts, checkpoints and error."""
    view = show_run_view(Settings(), run_id)
    acknowledged = view["acknowledged_batches"]
    if json:
        echo_json_line(view)
        return
    report = view["report"] or {}
    table = Table(title=f"Export run {run_id}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    # A run that failed before its export was built (a saved query without an
    # export) records the job alone: show what there is.
    job = view["job"] or {}
    source = job.get("source") or {}
    destination = job.get("destination") or {}
    table.add_row("status", status_text(view))
    table.add_row("cohort", f"{view['cohort_id']} ({view['operation']})")
    endpoint = destination.get("endpoint") or view.get("endpoint") or "-"
    table.add_row("destination", f"{endpoint} ({view['partner']})")
    if destination.get("auth_name"):
        table.add_row("authentication", destination["auth_name"])
    if job.get("job"):
        table.add_row("job", job["job"])
    shown = f"table {source['table']}" if source.get("table") else source.get("sql") or "-"
    table.add_row("source", shown)
    table.add_row("started (UTC)", view["started_at"])
    table.add_row("finished (UTC)", view["finished_at"] or "-")
    if report:
        table.add_row("rows read", f"{report.get('rows_read', 0):,}")
        sent = ", ".join(f"{k} {v:,}" for k, v in report.get("sent", {}).items())
        table.add_row("sent", sent or "nothing")
        table.add_row("batches", f"{acknowledged:,} of {report.get('batches', 0):,} acknowledged")
        mirror = report.get("mirror")
        if mirror:
            table.add_row(
                "mirror",
                f"{mirror['entries']:,} entries, {mirror['exits']:,} exits, "
                f"{mirror['unchanged']:,} unchanged",
            )
        if report.get("unaddressable"):
            table.add_row("not addressable", unaddressable_line(report["unaddressable"]))
        if report.get("match") is not None:
            table.add_row("match", match_line(report["match"]))
        if report.get("concurrency") is not None:
            table.add_row("concurrency", concurrency_line(report["concurrency"]))
    else:
        table.add_row("batches", f"{acknowledged:,} acknowledged")
    if view["error"]:
        table.add_row("error", view["error"])
    for delivery in view["alerts"]:
        table.add_row("alert", alert_line(delivery))
    Console().print(table)
    if view["resumable"]:
        typer.echo(f"continue it with: cohortsync runs resume {run_id}")


def alert_line(delivery: dict[str, Any]) -> str:
    """One alert delivery: its triggers, where it went, how it ended, after how many attempts."""
    names = ", ".join(trigger["trigger"] for trigger in delivery["triggers"])
    held = " (run held)" if delivery["held"] else ""
    attempts = f"{delivery['attempts']} attempt" + ("s" if delivery["attempts"] != 1 else "")
    outcome = delivery["status"]
    if delivery["error"]:
        outcome += f": {delivery['error']}"
    return (
        f"{names}{held} -> {delivery['destination']} ({delivery['format']}): {outcome}, {attempts}"
    )


@app.command()
def resume(
    run_id: RunIdArgument,
    data_import_key: Annotated[
        str | None,
        typer.Option(
            "--data-import-key",
            help=(
                "The key, when the run was given --endpoint rather than a saved --auth; "
                f"'-' reads stdin; default ${DATA_IMPORT_KEY_ENV} (${REST_API_KEY_ENV} for "
                "a rest-attribute run)."
            ),
            show_default=False,
        ),
    ] = None,
    threads: Annotated[
        Any,
        typer.Option(
            "--threads",
            parser=parse_threads,
            metavar=THREADS_METAVAR,
            help=f"{THREADS_HELP} Default: as the run had.",
        ),
    ] = None,
    lock_timeout: Annotated[
        float,
        typer.Option(
            "--lock-timeout", min=0, max=MAX_SECONDS, help="Seconds to wait for another run."
        ),
    ] = DEFAULT_LOCK_TIMEOUT,
    json: JsonOption = False,
) -> None:
    """Continue an interrupted or killed run from its plan and checkpoints.

    Only the batches the server never acknowledged are sent; a mirror run then
    commits its snapshot. The run must be the latest of its cohort: once a
    later run has planned, run the export again instead.

    Example: cohortsync runs resume 20261128T110512-3f9a
    """
    report = resume_run(
        run_id,
        data_import_key=data_import_key,
        threads=threads,
        lock_timeout=lock_timeout,
        reporter=console_reporter(None),  # on stderr, so also with --json
    )
    if json:
        echo_json_line(report.to_dict())
    else:
        render_report(Console(), report)


def _duration(view: dict[str, Any]) -> str:
    seconds = view["duration_s"]
    return "-" if seconds is None else f"{seconds:.1f} s"
