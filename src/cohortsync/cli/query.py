"""`cohortsync query`: saved queries, optionally exported to a cohort after each run."""

from __future__ import annotations

import logging
import sys
from dataclasses import fields
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cohortsync import queries
from cohortsync.cli.alert_options import (
    AlertDurationOption,
    AlertFormatOption,
    AlertHoldOption,
    AlertOnFailureOption,
    AlertRefusedOption,
    AlertRemovalsOption,
    AlertSizeChangeOption,
    AlertWebhookOption,
    alert_settings,
    alerts_text,
)
from cohortsync.cli.export_options import (
    AttributeModeChoice,
    CohortNameOption,
    OperationChoice,
    SavedAttributeModeOption,
    SavedAttributeOption,
    SavedSkipInvalidOption,
    SavedThreadsOption,
)
from cohortsync.cli.files_option import AllowFilesOption, open_files
from cohortsync.cli.output import JsonOption, echo_json_line
from cohortsync.cli.progress import console_reporter
from cohortsync.cli.run_report import render_report
from cohortsync.definitions import QueryExport, validated
from cohortsync.definitions.fields import DEFAULT_MAX_REMOVE_PCT, DEFAULT_THREADS
from cohortsync.errors import ConfigError
from cohortsync.export.report import ExportReport
from cohortsync.textfiles import read_text

app = typer.Typer(
    help=(
        "Saved queries (the Data Workbench path), optionally exported to a cohort.\n\n"
        "Save a query with 'query save', check it with 'query run --dry-run', run it now "
        "with 'query run', or give it a --schedule and let 'cohortsync scheduler' run it. "
        "When a saved query has an export (--export AUTH --cohort-id ID), each successful "
        "run sends its result to that Braze cohort, exactly like 'cohortsync export'."
    ),
    no_args_is_help=True,
)


NameArgument = Annotated[str, typer.Argument(help="The saved query's name, e.g. vip_daily.")]


@app.command()
def save(
    name: NameArgument,
    sql: Annotated[
        str | None, typer.Option("--sql", help='The SQL, e.g. "SELECT id AS user_ids FROM t".')
    ] = None,
    sql_file: Annotated[
        Path | None, typer.Option("--sql-file", help="A file holding the SQL.", dir_okay=False)
    ] = None,
    warehouse: Annotated[
        str | None,
        typer.Option(
            "--warehouse",
            help="Warehouse URL the query runs on; default: the configured warehouse at run time.",
        ),
    ] = None,
    export_auth: Annotated[
        str | None,
        typer.Option(
            "--export",
            metavar="AUTH",
            help="Export each result with this saved authentication ('cohortsync auth list').",
        ),
    ] = None,
    cohort_id: Annotated[
        str | None, typer.Option("--cohort-id", help="The Braze cohort id (needs --export).")
    ] = None,
    cohort_name: CohortNameOption = None,
    operation: Annotated[
        OperationChoice,
        typer.Option(
            "--operation",
            help="add or remove the rows; mirror keeps the cohort equal to the latest result.",
        ),
    ] = OperationChoice.add,
    alias_column: Annotated[
        str | None,
        typer.Option("--alias-column", help="A result column sent as user aliases (its label)."),
    ] = None,
    threads: SavedThreadsOption = DEFAULT_THREADS,
    skip_invalid: SavedSkipInvalidOption = False,
    attribute_mode: SavedAttributeModeOption = AttributeModeChoice.array,
    attribute: SavedAttributeOption = None,
    allow_empty: Annotated[
        bool,
        typer.Option(
            "--allow-empty", help="mirror: accept an empty result (it empties the cohort)."
        ),
    ] = False,
    max_remove_pct: Annotated[
        float,
        typer.Option(
            "--max-remove-pct",
            help="mirror: refuse a run that would remove more than this % of the cohort (0-100).",
        ),
    ] = DEFAULT_MAX_REMOVE_PCT,
    schedule: Annotated[
        str | None,
        typer.Option(
            "--schedule",
            metavar="CRON",
            help="Run it on this five-field cron expression, e.g. '0 6 * * *'.",
        ),
    ] = None,
    timezone: Annotated[
        str, typer.Option("--timezone", help="Time zone of --schedule (IANA name).")
    ] = "UTC",
    alert_webhook: AlertWebhookOption = None,
    alert_format: AlertFormatOption = None,
    alert_on_failure: AlertOnFailureOption = None,
    alert_size_change: AlertSizeChangeOption = None,
    alert_removals: AlertRemovalsOption = None,
    alert_duration: AlertDurationOption = None,
    alert_refused_pct: AlertRefusedOption = None,
    alert_hold: AlertHoldOption = False,
    as_json: JsonOption = False,
) -> None:
    """Save a query under a name, with an optional export, schedule and alerts.

    Saving an existing name replaces its whole definition (a save without
    --schedule unschedules it). The authentication, cron expression and time
    zone are checked now.

    Examples:

    \b
      cohortsync query save vip --sql-file vip.sql
        --export braze-prod --cohort-id vip --operation mirror
        --schedule "0 6 * * *" --timezone Europe/Paris

      cohortsync query save churn --sql-file churn.sql

      cohortsync query save raw --sql-file raw.sql --export braze-prod --cohort-id raw
        --skip-invalid

      cohortsync query save vip --sql-file vip.sql --export braze-prod --cohort-id vip
        --operation mirror --alert-webhook https://hooks.slack.com/services/...
        --alert-format slack --alert-size-change 20 --alert-hold
    """
    text = _sql_text(sql, sql_file)
    export = None
    if export_auth is not None:
        if not cohort_id:
            raise ConfigError("--export needs --cohort-id", hint="give the cohort's id in Braze")
        export = validated(
            QueryExport,
            {
                "auth": export_auth,
                "cohort_id": cohort_id,
                "cohort_name": cohort_name,
                "operation": operation.value,
                "alias_column": alias_column,
                "threads": threads,
                "skip_invalid": skip_invalid,
                "attribute_mode": attribute_mode.value,
                "attribute": attribute,
                "mirror": {"allow_empty": allow_empty, "max_remove_pct": max_remove_pct},
            },
        )
    elif cohort_id or cohort_name or alias_column:
        raise ConfigError("export settings were given without --export", hint="add --export AUTH")
    alerts = alert_settings(
        alert_webhook,
        alert_format,
        alert_on_failure,
        alert_size_change,
        alert_removals,
        alert_duration,
        alert_refused_pct,
        alert_hold,
    )
    outcome = queries.save_query(
        name,
        text,
        export=export,
        schedule=schedule,
        timezone=timezone,
        warehouse_url=warehouse,
        alerts=alerts,
    )
    saved = queries.get_query(name)
    if as_json:
        echo_json_line({"outcome": outcome, "query": saved.to_dict()})
        return
    typer.echo(f"{outcome} query {name}")
    if saved.schedule:
        typer.echo(f"scheduled '{saved.schedule}' ({saved.timezone}); next run {_next(saved)}")


@app.command("list")
def list_command(as_json: JsonOption = False) -> None:
    """List saved queries: export target, schedule, next run and last status."""
    saved = queries.list_queries()
    if as_json:
        echo_json_line({"queries": [query.to_dict() for query in saved]})
        return
    if not saved:
        typer.echo("no saved queries yet; save one with 'cohortsync query save NAME --sql ...'")
        return
    table = Table(header_style="bold")
    for column in ("name", "export", "schedule", "next run", "last run"):
        table.add_column(column)
    for query in saved:
        table.add_row(
            query.name,
            _export_text(query),
            f"{query.schedule} ({query.timezone})" if query.schedule else "-",
            _next(query) or "-",
            query.last_status or "-",
        )
    Console().print(table)


@app.command()
def show(name: NameArgument, as_json: JsonOption = False) -> None:
    """Show one saved query: its SQL, export, schedule and last runs."""
    query = queries.get_query(name)
    runs = queries.query_runs(name)
    if as_json:
        document = query.to_dict()
        document["recent_runs"] = [run.to_dict() for run in runs]
        echo_json_line(document)
        return
    console = Console()
    console.print(f"[bold]{query.name}[/bold]")
    console.print(query.sql, markup=False, highlight=False)
    console.print(f"export:    {_export_text(query)}", markup=False)
    if query.schedule:
        console.print(f"schedule:  {query.schedule} ({query.timezone}); next run {_next(query)}")
    else:
        console.print("schedule:  none (runs on demand: 'cohortsync query run')")
    if query.warehouse:
        console.print(f"warehouse: {query.warehouse}", markup=False)
    console.print(f"alerts:    {alerts_text(query.alerts)}", markup=False)
    for run in runs:
        line = f"run {run.id}: {run.status} at {run.started_at:%Y-%m-%d %H:%M:%S}Z"
        console.print(line + (f" - {run.error}" if run.error else ""), markup=False)


@app.command()
def delete(name: NameArgument, as_json: JsonOption = False) -> None:
    """Delete a saved query and its schedule (its runs stay in the history)."""
    queries.delete_query(name)
    if as_json:
        echo_json_line({"deleted": name})
    else:
        typer.echo(f"deleted query {name}")


@app.command()
def run(
    name: NameArgument,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Run the query and plan the export; send and record nothing."
        ),
    ] = False,
    full_resync: Annotated[
        bool,
        typer.Option(
            "--full-resync",
            help="mirror: resend the whole result instead of the changes since the last sync.",
        ),
    ] = False,
    allow_files: AllowFilesOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run a saved query now; when it has an export, export its result.

    The export goes through the same run as 'cohortsync export': same checks,
    report and run history. A query without export prints its row count and
    first rows. A query the scheduler is running right now is refused.

    Exit codes: 0 success, 2 bad usage or configuration (or already running),
    3 the query failed, 4 the destination refused, 5 retries exhausted,
    6 interrupted (the next run resumes the work).
    """
    logging.basicConfig(stream=sys.stderr, format="warning: %(message)s", level=logging.WARNING)
    open_files(allow_files)
    reporter = console_reporter(None if not as_json else False)
    result = queries.run_query(name, dry_run=dry_run, full_resync=full_resync, reporter=reporter)
    if as_json:
        echo_json_line(result.to_dict())
        return
    if result.report is not None:
        render_report(Console(), ExportReport(**_report_fields(result.report)))
        return
    typer.echo(
        f"query {name}: {result.rows:,} rows" + (f" (run {result.run_id})" if result.run_id else "")
    )
    if result.preview:
        table = Table(header_style="bold")
        for column in result.columns:
            table.add_column(column, overflow="fold")
        for row in result.preview:
            table.add_row(
                *("NULL" if row.get(c) is None else str(row.get(c)) for c in result.columns)
            )
        Console().print(table)


def _report_fields(report: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(ExportReport)}
    return {key: value for key, value in report.items() if key in names}


def _sql_text(sql: str | None, sql_file: Path | None) -> str:
    if (sql is None) == (sql_file is None):
        raise ConfigError("give exactly one of --sql and --sql-file")
    if sql_file is not None:
        return read_text(sql_file, f"--sql-file {sql_file}")
    assert sql is not None
    return sql


def _export_text(query: queries.SavedQuery) -> str:
    export = query.export
    if export is None:
        return "none"
    return f"{export.auth} -> cohort {export.cohort_id} ({export.operation})"


def _next(query: queries.SavedQuery) -> str | None:
    return query.next_run.isoformat() if query.next_run else None
