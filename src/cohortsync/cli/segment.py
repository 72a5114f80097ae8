"""`cohortsync segment`: rule-based segments of a parent table."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cohortsync.audience import segments
from cohortsync.audience.views import segment_view
from cohortsync.cli.audience import echo_json, echo_saved
from cohortsync.cli.export_options import MAX_SHOWN
from cohortsync.cli.listing import print_listing
from cohortsync.cli.output import JsonOption

RULES_HELP = """\
Rules are JSON, inline or in a file. A rule is one of:
{"column": "country", "op": "=", "value": "FR"};
{"and": [rule, ...]}; {"or": [rule, ...]}; {"not": rule}.
Operators: = != < <= > >= (one value), in (a list), between ([low, high], both
included), like (a string pattern with % and _, text columns only), is null,
is not null (no value). Numbers are written without quotes; dates and
timestamps as ISO strings ("2024-05-31").
"""

app = typer.Typer(
    help=(
        "Rule-based segments of a parent table.\n\n"
        "A segment selects rows of its parent's table with rules, checked against the "
        "table's columns and types and run as parameterised SQL (values are never pasted "
        "into the SQL).\n\n" + RULES_HELP
    ),
    no_args_is_help=True,
)


@app.command()
def create(
    name: Annotated[str, typer.Argument(help="Name of the segment, e.g. fr_adults.")],
    parent: Annotated[str, typer.Option("--parent", help="The parent segment it selects from.")],
    rules: Annotated[
        str,
        typer.Option(
            "--rules",
            help="Inline JSON (starting with '{') or the path of a JSON file.",
        ),
    ],
    description: Annotated[str | None, typer.Option(help="What this segment is for.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a segment: rules over the columns of a parent table.

    \b
    Example:
      cohortsync segment create fr_adults --parent customers \\
        --rules '{"and": [{"column": "country", "op": "=", "value": "FR"},
                          {"column": "age", "op": ">=", "value": 18}]}'

    Rules are JSON: {"column": C, "op": OP, "value": V}, {"and": [...]},
    {"or": [...]} or {"not": {...}}; operators = != < <= > >= in between like
    'is null' 'is not null'. See 'cohortsync segment --help'.
    """
    row = segments.create_segment(name, parent, rules, description=description)
    echo_saved(
        segment_view(row),
        f"created segment {name} of parent {parent}; see it with 'cohortsync segment show {name}'",
        as_json=as_json,
    )


@app.command()
def update(
    name: Annotated[str, typer.Argument(help="The segment to change.")],
    rules: Annotated[
        str | None,
        typer.Option("--rules", help="New rules: inline JSON or the path of a JSON file."),
    ] = None,
    parent: Annotated[str | None, typer.Option("--parent", help="Another parent.")] = None,
    description: Annotated[str | None, typer.Option(help="A new description.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Change a segment's rules, parent or description; activations use it at their next run.

    Example: cohortsync segment update fr_adults --rules rules.json
    """
    row = segments.update_segment(name, rules=rules, parent=parent, description=description)
    echo_saved(
        segment_view(row),
        f"updated segment {name}; see it with 'cohortsync segment show {name}'",
        as_json=as_json,
    )


@app.command()
def show(
    name: Annotated[str, typer.Argument(help="The segment to show.")],
    sample: Annotated[
        int, typer.Option(min=0, max=MAX_SHOWN, help="How many rows to show, by key.")
    ] = 10,
    as_json: JsonOption = False,
) -> None:
    """Show a segment: its rules, its SQL, its size and its first rows by key.

    The size is counted in the warehouse over the segment's SQL.
    """
    summary = segments.describe_segment(name, sample=sample)
    if as_json:
        echo_json(summary.to_dict())
        return
    console = Console()
    parent = summary.parent
    console.print(
        f"[bold]{name}[/bold] of parent {parent.name} (table {parent.table}): "
        f"[bold]{summary.size:,}[/bold] row{'' if summary.size == 1 else 's'}"
    )
    if summary.segment.description:
        console.print(summary.segment.description)
    console.print_json(data=summary.segment.rules)
    params = ", ".join(repr(value) for value in summary.sql.params)
    console.print(f"SQL: {summary.sql.sql}", markup=False, highlight=False)
    console.print(f"parameters: {params or 'none'}", markup=False, highlight=False)
    if summary.sample.num_rows:
        table = Table(*summary.sample.column_names, title=f"first {summary.sample.num_rows} rows")
        for record in summary.sample.to_pylist():
            table.add_row(*("" if value is None else str(value) for value in record.values()))
        console.print(table)


@app.command("list")
def list_(
    parent: Annotated[str | None, typer.Option(help="Only the segments of this parent.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List segments (without counting them: 'segment show' counts one)."""
    rows = segments.list_segments(parent=parent)
    if as_json:
        echo_json([segment_view(row) for row in rows])
        return
    print_listing(
        rows,
        columns=("name", "parent", "description"),
        cells=lambda row: (row.name, row.parent, row.description or ""),
        empty="no segments yet; create one with 'cohortsync segment create'",
    )


@app.command()
def delete(name: Annotated[str, typer.Argument(help="The segment to delete.")]) -> None:
    """Delete a segment (refused while activations use it)."""
    segments.delete_segment(name)
    typer.echo(f"deleted segment {name}")
