"""`cohortsync activation`: a segment exported to a Braze cohort, now or on a schedule."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cohortsync.audience import activations
from cohortsync.audience.views import activation_view, run_view
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
from cohortsync.cli.audience import echo_json, echo_saved
from cohortsync.cli.export_options import (
    MAX_SHOWN,
    SKIP_INVALID_HELP,
    AttributeModeChoice,
    CohortNameOption,
    LockTimeoutOption,
    OperationChoice,
    SavedAttributeModeOption,
    SavedAttributeOption,
    SavedSkipInvalidOption,
    SavedThreadsOption,
    SkipInvalidOption,
)
from cohortsync.cli.listing import print_listing
from cohortsync.cli.output import JsonOption
from cohortsync.cli.progress import console_reporter
from cohortsync.cli.run_report import render_report
from cohortsync.definitions import Activation, validated
from cohortsync.definitions.fields import DEFAULT_MAX_REMOVE_PCT, DEFAULT_THREADS
from cohortsync.errors import CohortsyncError, ConfigError
from cohortsync.export.locks import DEFAULT_LOCK_TIMEOUT

app = typer.Typer(
    help=(
        "Activations: a segment exported to a Braze cohort, now or on a schedule.\n\n"
        "An activation names a segment, a saved authentication ('cohortsync auth create'), "
        "the cohort and an output mapping: --map ATTRIBUTE=OUTPUT turns a column of the "
        "parent table into identifiers. OUTPUT is user_ids (Braze external ids), "
        "device_ids, or the --alias-column name (aliases labelled with that name)."
    ),
    no_args_is_help=True,
)


MapOption = Annotated[
    list[str],
    typer.Option(
        "--map",
        help="ATTRIBUTE=OUTPUT, repeatable: a parent column and its output name "
        "(user_ids, device_ids or the alias column).",
    ),
]


@app.command()
def create(
    name: Annotated[
        str, typer.Argument(help="Name of the activation; runs are 'activation:NAME'.")
    ],
    segment: Annotated[str, typer.Option("--segment", help="The segment to export.")],
    auth: Annotated[str, typer.Option("--auth", help="A saved authentication (auth list).")],
    cohort_id: Annotated[str, typer.Option("--cohort-id", help="The Braze cohort id.")],
    mapping: MapOption,
    cohort_name: CohortNameOption = None,
    operation: Annotated[
        OperationChoice,
        typer.Option(
            help="add or remove the segment's users; mirror keeps the cohort equal to the "
            "segment by sending only who entered and who left."
        ),
    ] = OperationChoice.add,
    alias_column: Annotated[
        str | None,
        typer.Option(
            "--alias-column",
            help="Output name sent as alias_label, each row's value as alias_name, e.g. email.",
        ),
    ] = None,
    threads: SavedThreadsOption = DEFAULT_THREADS,
    cast_to_string: Annotated[
        bool,
        typer.Option(
            "--cast-to-string",
            help="Send non-text attributes (numbers, dates) as text; otherwise they are refused.",
        ),
    ] = False,
    skip_invalid: SavedSkipInvalidOption = False,
    attribute_mode: SavedAttributeModeOption = AttributeModeChoice.array,
    attribute: SavedAttributeOption = None,
    description: Annotated[str | None, typer.Option(help="What this activation is for.")] = None,
    schedule: Annotated[
        str | None,
        typer.Option(
            help="Cron expression (five fields) for 'cohortsync scheduler', e.g. '0 6 * * *'."
        ),
    ] = None,
    timezone: Annotated[str, typer.Option(help="Time zone of --schedule (IANA).")] = "UTC",
    allow_empty: Annotated[
        bool,
        typer.Option("--allow-empty", help="mirror: allow an empty segment to empty the cohort."),
    ] = False,
    max_remove_pct: Annotated[
        float,
        typer.Option(
            "--max-remove-pct",
            help="mirror: refuse a run that would remove more than this share of the cohort "
            "(0-100).",
        ),
    ] = DEFAULT_MAX_REMOVE_PCT,
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
    """Create an activation: export a segment to a Braze cohort.

    Everything is checked now: the segment and auth exist, each --map attribute
    is a string column of the parent table (or --cast-to-string), each output
    name is allowed, the schedule parses.

    \b
    Example:
      cohortsync activation create fr_vip --segment fr_adults --auth prod \\
        --cohort-id fr_vip --map customer_id=user_ids \\
        --alias-column email --map email=email --schedule '0 6 * * *'
    """
    definition = validated(
        Activation,
        {
            "name": name,
            "segment": segment,
            "auth": auth,
            "cohort_id": cohort_id,
            "mapping": mapping,
            "cohort_name": cohort_name,
            "operation": operation.value,
            "alias_column": alias_column,
            "threads": threads,
            "cast_to_string": cast_to_string,
            "skip_invalid": skip_invalid,
            "attribute_mode": attribute_mode.value,
            "attribute": attribute,
            "description": description,
            "schedule": schedule,
            "timezone": timezone,
            "mirror": {"allow_empty": allow_empty, "max_remove_pct": max_remove_pct},
            "alerts": alert_settings(
                alert_webhook,
                alert_format,
                alert_on_failure,
                alert_size_change,
                alert_removals,
                alert_duration,
                alert_refused_pct,
                alert_hold,
            ),
        },
    )
    row = activations.create_activation(definition)
    when = f"on schedule '{row.schedule}' ({row.timezone})" if row.schedule else "on demand"
    echo_saved(
        activation_view(row),
        f"created activation {name}: segment {segment} -> cohort {cohort_id} "
        f"({row.operation}), runs {when}; run it now with 'cohortsync activation run {name}'",
        as_json=as_json,
    )


@app.command()
def update(
    name: Annotated[str, typer.Argument(help="The activation to change.")],
    segment: Annotated[str | None, typer.Option("--segment", help="Another segment.")] = None,
    auth: Annotated[str | None, typer.Option("--auth", help="Another saved auth.")] = None,
    cohort_id: Annotated[str | None, typer.Option("--cohort-id")] = None,
    cohort_name: Annotated[str | None, typer.Option("--cohort-name")] = None,
    operation: Annotated[OperationChoice | None, typer.Option()] = None,
    alias_column: Annotated[str | None, typer.Option("--alias-column")] = None,
    threads: SavedThreadsOption = None,
    mapping: Annotated[
        list[str] | None,
        typer.Option("--map", help="Replaces the whole mapping when given."),
    ] = None,
    description: Annotated[str | None, typer.Option()] = None,
    schedule: Annotated[str | None, typer.Option(help="A new cron expression.")] = None,
    no_schedule: Annotated[
        bool, typer.Option("--no-schedule", help="Remove the schedule: run on demand only.")
    ] = False,
    timezone: Annotated[str | None, typer.Option()] = None,
    attribute_mode: Annotated[
        AttributeModeChoice | None,
        typer.Option("--attribute-mode", help="rest-attribute: array or boolean."),
    ] = None,
    attribute: Annotated[
        str | None, typer.Option("--attribute", help="rest-attribute: another custom attribute.")
    ] = None,
    skip_invalid: Annotated[
        bool | None,
        typer.Option(
            "--skip-invalid/--no-skip-invalid",
            help=SKIP_INVALID_HELP + " Saved: every run, scheduled or not, does so.",
            show_default=False,
        ),
    ] = None,
    alert_webhook: AlertWebhookOption = None,
    alert_format: AlertFormatOption = None,
    alert_on_failure: AlertOnFailureOption = None,
    alert_size_change: AlertSizeChangeOption = None,
    alert_removals: AlertRemovalsOption = None,
    alert_duration: AlertDurationOption = None,
    alert_refused_pct: AlertRefusedOption = None,
    alert_hold: Annotated[
        bool | None,
        typer.Option(
            "--alert-hold/--no-alert-hold",
            help="Hold a run back before sending when its plan fires the size change or "
            "removals trigger.",
            show_default=False,
        ),
    ] = None,
    no_alerts: Annotated[
        bool, typer.Option("--no-alerts", help="Remove the activation's alerts.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Change some settings of an activation; the result is checked like a new one.

    Alert options change the alerts' settings they name and keep the others;
    --no-alerts removes them.

    Example: cohortsync activation update fr_vip --operation mirror --schedule '0 * * * *'
    """
    changes: dict[str, Any] = {
        key: value
        for key, value in {
            "segment": segment,
            "auth": auth,
            "cohort_id": cohort_id,
            "cohort_name": cohort_name,
            "operation": operation.value if operation else None,
            "alias_column": alias_column,
            "threads": threads,
            "mapping": mapping or None,
            "description": description,
            "schedule": schedule,
            "timezone": timezone,
            "skip_invalid": skip_invalid,
            "attribute_mode": attribute_mode.value if attribute_mode else None,
            "attribute": attribute,
        }.items()
        if value is not None
    }
    if no_schedule:
        changes["schedule"] = None
    alert_changes = {
        key: value
        for key, value in {
            "webhook": alert_webhook,
            "format": alert_format.value if alert_format else None,
            "on_failure": alert_on_failure,
            "size_change_pct": alert_size_change,
            "removals": alert_removals,
            "duration_s": alert_duration,
            "refused_pct": alert_refused_pct,
            "hold": alert_hold,
        }.items()
        if value is not None
    }
    if no_alerts and alert_changes:
        raise ConfigError("--no-alerts was given with alert settings", hint="give one or the other")
    if no_alerts:
        changes["alerts"] = None
    elif alert_changes:
        current = activations.get_activation(name).alerts
        merged = {**(current.model_dump() if current else {}), **alert_changes}
        if "webhook" not in merged:
            raise ConfigError(
                "alert settings were given without a webhook to post to",
                hint="add --alert-webhook URL",
            )
        changes["alerts"] = merged
    row = activations.update_activation(name, **changes)
    echo_saved(activation_view(row), f"updated activation {name}", as_json=as_json)


@app.command()
def run(
    name: Annotated[str, typer.Argument(help="The activation to run.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Read and plan only: send and record nothing.")
    ] = False,
    full_resync: Annotated[
        bool,
        typer.Option("--full-resync", help="mirror: send the whole segment, not only changes."),
    ] = False,
    lock_timeout: LockTimeoutOption = DEFAULT_LOCK_TIMEOUT,
    skip_invalid: SkipInvalidOption = False,
    as_json: JsonOption = False,
) -> None:
    """Export the activation's segment to its Braze cohort now.

    The segment is compiled against the parent table as it is now; the run is
    recorded as 'activation:NAME' (see 'cohortsync activation show NAME').
    Identifiers Braze would refuse fail the run before anything is sent,
    unless the activation saves --skip-invalid, or --skip-invalid here skips
    and counts them for this run.

    Example: cohortsync activation run fr_vip --skip-invalid --json
    """
    report = activations.run_activation(
        name,
        dry_run=dry_run,
        full_resync=full_resync,
        reporter=console_reporter(False if as_json else None),
        lock_timeout=lock_timeout,
        skip_invalid=skip_invalid,
    )
    if as_json:
        echo_json(report.to_dict())
        return
    render_report(Console(), report)


@app.command("list")
def list_(
    segment: Annotated[
        str | None, typer.Option(help="Only the activations of this segment.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List activations with their cohort and schedule."""
    rows = activations.list_activations(segment=segment)
    if as_json:
        echo_json([activation_view(row) for row in rows])
        return
    print_listing(
        rows,
        columns=("name", "segment", "auth", "cohort", "operation", "schedule"),
        cells=lambda row: (
            row.name,
            row.segment,
            row.auth,
            row.cohort_id,
            row.operation,
            f"{row.schedule} ({row.timezone})" if row.schedule else "",
        ),
        empty="no activations yet; create one with 'cohortsync activation create'",
    )


@app.command()
def show(
    name: Annotated[str, typer.Argument(help="The activation to show.")],
    runs: Annotated[
        int, typer.Option("--runs", min=0, max=MAX_SHOWN, help="How many last runs to list.")
    ] = 5,
    as_json: JsonOption = False,
) -> None:
    """Show an activation's definition, its SQL and its last runs."""
    row = activations.get_activation(name)
    last = [run_view(record) for record in activations.activation_runs(name, limit=runs)]
    view = activation_view(row)
    try:
        compiled = activations.activation_sql(name)
        view["sql"], view["params"] = compiled.sql, [str(p) for p in compiled.params]
    except CohortsyncError as error:  # the definition stays showable when its table broke
        view["sql"], view["params"] = f"(cannot compile now: {error})", []
    if as_json:
        echo_json({**view, "runs": last})
        return
    console = Console()
    table = Table(show_header=False, title=f"activation {name}", title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for key, value in view.items():
        if key == "mapping":
            value = ", ".join(value)
        elif key == "params":
            value = ", ".join(value) or "none"
        elif key == "mirror":
            value = f"allow empty {value['allow_empty']}, max remove {value['max_remove_pct']}%"
        elif key == "alerts":
            value = alerts_text(value)
        table.add_row(key, "" if value is None else str(value))
    console.print(table)
    if not last:
        console.print(f"no runs yet; run it with 'cohortsync activation run {name}'")
        return
    history = Table("run", "status", "started", "rows", "sent", "error", title="last runs")
    for record in last:
        history.add_row(
            record["id"],
            record["status"],
            record["started_at"] or "",
            "" if record["rows_read"] is None else f"{record['rows_read']:,}",
            "" if record["sent"] is None else f"{record['sent']:,}",
            record["error"] or "",
        )
    console.print(history)


@app.command()
def delete(name: Annotated[str, typer.Argument(help="The activation to delete.")]) -> None:
    """Delete an activation and its schedule (its run history stays)."""
    activations.delete_activation(name)
    typer.echo(f"deleted activation {name}")
