"""`cohortsync runs`: export run history, and resuming interrupted runs.

Every export (the ``export`` command, saved queries, activations, the
scheduler) is recorded as a run. A run marked ``running`` whose cohort lock
no process holds has died (killed, crashed): it is shown as such, and running
the same export again, or ``runs resume``, continues it.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cohortsync.catalog import runs as history
from cohortsync.catalog.db import open_catalog
from cohortsync.catalog.runs import RunRecord
from cohortsync.cli.export_options import MAX_SECONDS, MAX_SHOWN, MAX_THREADS
from cohortsync.cli.output import JsonOption, echo_json_line
from cohortsync.cli.progress import console_reporter
from cohortsync.cli.run_report import render_report
from cohortsync.errors import ConfigError
from cohortsync.export.destinations import destination_for_auth
from cohortsync.export.locks import DEFAULT_LOCK_TIMEOUT, CohortLock
from cohortsync.export.run import run_export
from cohortsync.export.snapshots import CohortKey
from cohortsync.export.spec import Destination, ExportSpec, MirrorOptions, Source
from cohortsync.secrets import DATA_IMPORT_KEY_ENV, read_data_import_key
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
STATUSES = ("running", "succeeded", "failed", "interrupted")


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
    json: JsonOption = False,
) -> None:
    """The latest export runs first: id, status, cohort, operation, start, counts.

    A 'running' run whose process is gone shows as 'running (dead)': run the
    same export again or 'cohortsync runs resume RUN_ID' to continue it.
    """
    if status is not None and status not in STATUSES:
        raise ConfigError(f"unknown --status {status!r}", hint="use one of " + ", ".join(STATUSES))
    settings = Settings()
    catalog = open_catalog(settings.catalog_path)
    try:
        records = history.list_runs(catalog, cohort_id=cohort, status=status, limit=limit)
    finally:
        catalog.dispose()
    views = [run_view(settings, record) for record in records]
    if json:
        echo_json_line(views)
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
            _status_text(view),
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
    settings = Settings()
    catalog = open_catalog(settings.catalog_path)
    try:
        record = history.get_run(catalog, run_id)
        acknowledged = len(history.acknowledged_batches(catalog, run_id))
    finally:
        catalog.dispose()
    view = run_view(settings, record)
    view["acknowledged_batches"] = acknowledged
    if json:
        echo_json_line(view)
        return
    report = view["report"] or {}
    table = Table(title=f"Export run {run_id}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    job = view["job"]
    source = job.get("source", {})
    table.add_row("status", _status_text(view))
    table.add_row("cohort", f"{view['cohort_id']} ({view['operation']})")
    table.add_row("destination", f"{job['destination']['endpoint']} ({view['partner']})")
    if job["destination"].get("auth_name"):
        table.add_row("authentication", job["destination"]["auth_name"])
    if job.get("job"):
        table.add_row("job", job["job"])
    table.add_row("source", f"table {source['table']}" if source.get("table") else source["sql"])
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
    else:
        table.add_row("batches", f"{acknowledged:,} acknowledged")
    if view["error"]:
        table.add_row("error", view["error"])
    Console().print(table)
    if view["resumable"]:
        typer.echo(f"continue it with: cohortsync runs resume {run_id}")


@app.command()
def resume(
    run_id: RunIdArgument,
    data_import_key: Annotated[
        str | None,
        typer.Option(
            "--data-import-key",
            help=(
                "The key, when the run was given --endpoint rather than a saved --auth; "
                f"'-' reads stdin; default ${DATA_IMPORT_KEY_ENV}."
            ),
            show_default=False,
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads", min=1, max=MAX_THREADS, help="Requests in flight (default: as before)."
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
    settings = Settings()
    catalog = open_catalog(settings.catalog_path)
    try:
        record = history.get_run(catalog, run_id)
    finally:
        catalog.dispose()
    spec = spec_of(record, settings, data_import_key, threads)
    report = run_export(
        spec,
        settings=settings,
        resume_run_id=run_id,
        lock_timeout=lock_timeout,
        reporter=console_reporter(None),  # on stderr, so also with --json
    )
    if json:
        echo_json_line(report.to_dict())
    else:
        render_report(Console(), report)


def spec_of(
    record: RunRecord, settings: Settings, data_import_key: str | None, threads: int | None
) -> ExportSpec:
    """Rebuild a run's export from its public record and the keys kept elsewhere.

    Raises:
        ConfigError: the run never reached its export (nothing to resume), or
            the key given does not belong to the run's workspace.
    """
    job = record.job
    if "destination" not in job:
        raise never_sent(record)
    target = job["destination"]
    auth_name = target.get("auth_name")
    if auth_name and data_import_key is None:
        destination = destination_for_auth(auth_name, settings)
    else:
        key = read_data_import_key(data_import_key)
        destination = Destination(
            endpoint=target["endpoint"],
            data_import_key=key,
            partner_api_key=settings.partner_api_key_for(target["endpoint"]),
            partner=target["partner"],
            auth_name=auth_name,
        )
    if history.key_hash(destination.data_import_key) != record.key_hash:
        raise ConfigError(
            f"the data import key given is not the one run {record.id} used",
            hint="give the run's key with --data-import-key (or its saved authentication)",
        )
    source = job["source"]
    return ExportSpec(
        source=Source(
            sql=source.get("sql"),
            table=source.get("table"),
            params=tuple(source.get("params") or ()),
            warehouse_url=source.get("warehouse_url"),
        ),
        destination=destination,
        cohort_id=job["cohort_id"],
        cohort_name=job.get("cohort_name"),
        operation=job["operation"],
        alias_column=job.get("alias_column"),
        threads=threads or int(job["threads"]),
        mirror=MirrorOptions(**job.get("mirror", {})),
        skip_invalid=bool(job.get("skip_invalid", False)),
        job=job.get("job"),
    )


def never_sent(record: RunRecord) -> ConfigError:
    """A saved query's or activation's run that failed before its export began.

    Such a run is recorded only so the history says why the job failed (see
    :mod:`cohortsync.jobs.history`): it has no plan, no destination and no
    checkpoint, so the only way forward is to run the job again.
    """
    job = str(record.job.get("job") or "")
    kind, _, name = job.partition(":")
    again = {
        "activation": f"cohortsync activation run {name}",
        "query": f"cohortsync query run {name}",
    }.get(kind, "cohortsync export ...")
    reason = f" ({record.error})" if record.error else ""
    return ConfigError(
        f"run {record.id} of {job or 'this job'} never started sending, so there is nothing "
        f"to resume{reason}",
        hint=f"fix the cause, then run it again: '{again}'",
    )


def run_view(settings: Settings, record: RunRecord) -> dict[str, Any]:
    """A run as JSON, with ``alive`` (a process holds its cohort) and ``resumable``."""
    view = record.to_dict()
    view.update(cohort_id=record.cohort_id, partner=record.partner)
    alive = False
    if record.status == "running":
        holder = CohortLock(settings.home_dir, CohortKey.for_run(record)).holder()
        alive = holder is not None and holder.run_id in (None, record.id)
    view["alive"] = alive
    view["resumable"] = "destination" in record.job and (
        record.status == "interrupted" or (record.status == "running" and not alive)
    )
    return view


def _status_text(view: dict[str, Any]) -> str:
    if view["status"] == "running" and not view["alive"]:
        return "running (dead: no process holds its cohort)"
    return str(view["status"])


def _duration(view: dict[str, Any]) -> str:
    if not view["finished_at"]:
        return "-"
    started = dt.datetime.fromisoformat(view["started_at"])
    finished = dt.datetime.fromisoformat(view["finished_at"])
    return f"{(finished - started).total_seconds():.1f} s"
