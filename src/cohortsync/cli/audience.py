"""`cohortsync audience`: parent segments, the customer tables segments select from."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cohortsync.audience import parents
from cohortsync.audience.segments import list_segments
from cohortsync.audience.views import parent_view
from cohortsync.cli.listing import print_listing
from cohortsync.cli.output import JsonOption

app = typer.Typer(
    help=(
        "Audience Studio: parent segments (customer tables), then segments and activations.\n\n"
        "Start with 'audience parent create', then 'segment create' to select customers "
        "with rules, then 'activation create' to export a segment to a Braze cohort."
    ),
    no_args_is_help=True,
)
parent_app = typer.Typer(
    help=(
        "Parent segments: a customer table of the warehouse and its key column.\n\n"
        "Segments are rules over a parent's columns; activations export them."
    ),
    no_args_is_help=True,
)
app.add_typer(parent_app, name="parent")


def echo_json(document: Any) -> None:
    """One JSON document on stdout; non-JSON values (dates, decimals) as text."""
    typer.echo(json.dumps(document, indent=2, default=str))


def echo_saved(view: dict[str, Any], line: str, *, as_json: bool) -> None:
    """What a command that saved a definition prints: its ``view`` under --json, else ``line``."""
    if as_json:
        echo_json(view)
    else:
        typer.echo(line)


@parent_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Name of the parent, e.g. customers.")],
    table: Annotated[
        str, typer.Option("--table", help="Warehouse table (or view): name or schema.name.")
    ],
    key: Annotated[str, typer.Option("--key", help="The column identifying one customer.")],
    warehouse: Annotated[
        str | None,
        typer.Option(
            "--warehouse",
            help="Warehouse URL holding the table, stored with the parent. "
            "Default: the configured warehouse at each use (COHORTSYNC_WAREHOUSE or "
            "the embedded DuckDB file).",
            show_default=False,
        ),
    ] = None,
    description: Annotated[str | None, typer.Option(help="What this table holds.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Declare a customer table as a parent segment.

    The table and its key column are checked against the warehouse now.

    Example: cohortsync audience parent create customers --table customers --key customer_id
    """
    row = parents.create_parent(name, table, key, warehouse_url=warehouse, description=description)
    echo_saved(
        parent_view(row), f"created parent {name}: table {table}, key {key}", as_json=as_json
    )


@parent_app.command("list")
def list_(as_json: JsonOption = False) -> None:
    """List parent segments."""
    rows = parents.list_parents()
    if as_json:
        echo_json([parent_view(row) for row in rows])
        return
    print_listing(
        rows,
        columns=("name", "table", "key", "warehouse", "description"),
        cells=lambda row: (
            row.name,
            row.table,
            row.key,
            row.warehouse or "(configured)",
            row.description or "",
        ),
        empty="no parent segments yet; create one with 'cohortsync audience parent create'",
    )


@parent_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="The parent to show.")],
    as_json: JsonOption = False,
) -> None:
    """Show a parent: its table, its columns and types (what rules can use), its segments."""
    row = parents.get_parent(name)
    columns = [column.to_dict() for column in parents.parent_columns(row)]
    segments = [segment.name for segment in list_segments(parent=name)]
    if as_json:
        echo_json({**parent_view(row), "columns": columns, "segments": segments})
        return
    console = Console()
    console.print(f"[bold]{row.name}[/bold]: table {row.table}, key {row.key}")
    if row.description:
        console.print(row.description)
    table = Table("column", "type")
    for column in columns:
        table.add_row(column["name"], column["type"])
    console.print(table)
    console.print(f"segments: {', '.join(segments) or 'none'}")


@parent_app.command("delete")
def delete(
    name: Annotated[str, typer.Argument(help="The parent to delete.")],
) -> None:
    """Delete a parent segment (refused while segments use it; the table stays)."""
    parents.delete_parent(name)
    typer.echo(f"deleted parent {name}")
