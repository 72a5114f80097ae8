"""`cohortsync warehouse`: load files into the warehouse and check queries."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from cohortsync.cli.export_options import MAX_SHOWN
from cohortsync.cli.files_option import AllowFilesOption, open_files
from cohortsync.cli.output import JsonOption
from cohortsync.settings import Settings
from cohortsync.warehouse import open_engine
from cohortsync.warehouse.connect import display_url, require_stored_warehouse
from cohortsync.warehouse.files import check_readable, detect_format
from cohortsync.warehouse.loading import interrupted, parse_schema
from cohortsync.warehouse.preview import Preview, preview

app = typer.Typer(
    help=(
        "Load files into the warehouse and check queries.\n\n"
        "The warehouse is the embedded DuckDB file $COHORTSYNC_HOME/warehouse.duckdb "
        "unless --warehouse (or COHORTSYNC_WAREHOUSE) names another: "
        "duckdb:///path/to/file.duckdb, a SQLAlchemy URL such as "
        "postgresql://user:password@host:5432/db, or Spark: spark+local:// (a local "
        "session keeping its tables under $COHORTSYNC_HOME/spark), spark://host:7077 "
        "or sc://host:15002 (Spark Connect)."
    ),
    no_args_is_help=True,
)


class Mode(StrEnum):
    REPLACE = "replace"
    APPEND = "append"


class Format(StrEnum):
    csv = "csv"
    parquet = "parquet"
    ndjson = "ndjson"


WarehouseOption = Annotated[
    str | None,
    typer.Option(
        "--warehouse",
        envvar="COHORTSYNC_WAREHOUSE",
        help="Warehouse URL: duckdb:///file.duckdb, a SQLAlchemy URL, or spark+local://, "
        "spark://host:port, sc://host:port. "
        "Default: the embedded DuckDB file in $COHORTSYNC_HOME.",
        show_default=False,
    ),
]


def _url(warehouse: str | None) -> str:
    return warehouse or Settings().warehouse_url


@app.command()
def load(
    table: Annotated[str, typer.Argument(help="Table to create or fill, e.g. customers.")],
    file: Annotated[Path, typer.Argument(help="A .csv/.tsv, .parquet or .ndjson/.jsonl file.")],
    mode: Annotated[
        Mode,
        typer.Option(help="replace: the table becomes the file. append: add the file's rows."),
    ] = Mode.REPLACE,
    file_format: Annotated[
        Format | None,
        typer.Option("--format", help="File format, when the extension does not say it."),
    ] = None,
    encoding: Annotated[
        str | None,
        typer.Option(
            help="Text encoding of a CSV or NDJSON file, e.g. latin-1, utf-16, cp1252. "
            "Default: utf-8.",
            show_default=False,
        ),
    ] = None,
    schema: Annotated[
        str | None,
        typer.Option(
            help="Declared column types, as NAME=TYPE pairs separated by commas "
            "(user_ids=VARCHAR,age=INTEGER), or @FILE with one NAME=TYPE per line. "
            "Other columns get the type every one of their values fits.",
            show_default=False,
        ),
    ] = None,
    allow_empty: Annotated[
        bool,
        typer.Option(
            "--allow-empty",
            help="Accept a file without rows: a header-only CSV makes an empty table.",
        ),
    ] = False,
    warehouse: WarehouseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Load a CSV, Parquet or NDJSON file into a warehouse table, strictly and atomically.

    A CSV's header names the columns; every row must have the header's number
    of fields, quotes must close, and the text must be in the --encoding
    (UTF-8 by default). Each column gets the type that every one of its values
    fits (so 01234 stays text), unless --schema declares it. An NDJSON key
    whose values have no single type is refused unless --schema declares it.
    An append matches columns by name and fails if a value would change
    (1.5 into an integer column). An empty file is refused unless --allow-empty.

    The new table is built beside the old one and swapped in one transaction:
    if the load fails or is interrupted, the table keeps its previous contents.

    Example: cohortsync warehouse load customers customers.csv --schema zip=VARCHAR,age=INTEGER

    Example: cohortsync warehouse load customers more.csv --mode append --encoding latin-1
    """
    url = _url(warehouse)
    require_stored_warehouse(url, "warehouse load")
    chosen = detect_format(check_readable(file), file_format.value if file_format else None)
    declared = parse_schema(schema)
    with _interrupts_as(table), open_engine(url) as engine:
        rows = engine.load(
            table,
            file,
            mode=mode.value,
            format=chosen,
            encoding=encoding,
            schema=declared,
            allow_empty=allow_empty,
        )
    if as_json:
        document = {
            "table": table,
            "file": str(file),
            "format": chosen,
            "mode": mode.value,
            "rows_loaded": rows,
            "warehouse": display_url(url),
        }
        typer.echo(json.dumps(document))
        return
    verb = "replaced" if mode is Mode.REPLACE else "appended to"
    plural = "" if rows == 1 else "s"
    typer.echo(f"loaded {rows:,} row{plural} from {file} ({chosen}); {verb} table {table}")


@contextmanager
def _interrupts_as(table: str) -> Iterator[None]:
    """Ctrl-C or SIGTERM during a load: one line and exit 6, never click's "Aborted!".

    SIGTERM is raised as KeyboardInterrupt too, so the engine rolls back the
    same way; the previous handler is restored afterwards.
    """
    previous = signal.getsignal(signal.SIGTERM)
    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    except KeyboardInterrupt as error:
        raise interrupted(table) from error
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)


@app.command()
def query(
    sql: Annotated[str, typer.Argument(help='The SQL to run, e.g. "SELECT * FROM customers".')],
    limit: Annotated[
        int, typer.Option(min=0, max=MAX_SHOWN, help="How many of the first rows to show.")
    ] = 20,
    warehouse: WarehouseOption = None,
    allow_files: AllowFilesOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run a query to check its result: the first rows and the total row count.

    The result is streamed and counted, never held whole, so a query over
    millions of rows is safe to check. For an export, the result needs a
    user_ids, device_ids or alias column of strings.

    The query is one statement that only reads (SELECT, WITH, VALUES, TABLE,
    FROM, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN); anything else is refused, and
    data is written only by 'cohortsync warehouse load'. DuckDB queries read
    no host file unless --allow-files opens its directory.

    Example: cohortsync warehouse query "SELECT external_id AS user_ids FROM customers"
    """
    open_files(allow_files)
    with open_engine(_url(warehouse)) as engine:
        result = preview(engine, sql, limit=limit)
    if as_json:
        typer.echo(json.dumps(result.to_json()))
        return
    _print_preview(result)


@app.command()
def tables(
    warehouse: WarehouseOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the warehouse's tables and views."""
    with open_engine(_url(warehouse)) as engine:
        names = engine.tables()
    if as_json:
        typer.echo(json.dumps({"tables": names}))
        return
    if not names:
        typer.echo("no tables yet; load one with 'cohortsync warehouse load TABLE FILE'")
    for name in names:
        typer.echo(name)


def _print_preview(result: Preview) -> None:
    console = Console()
    if result.columns:
        table = Table(show_lines=False, header_style="bold")
        for name, kind in result.columns:
            table.add_column(Text.assemble(name, "\n", (kind, "dim")), overflow="fold")
        for row in result.rows:
            table.add_row(
                *(Text("NULL", style="dim") if value is None else Text(str(value)) for value in row)
            )
        console.print(table)
    shown = len(result.rows)
    plural = "" if result.row_count == 1 else "s"
    if shown < result.row_count:
        console.print(f"{result.row_count:,} row{plural} (first {shown:,} shown)")
    else:
        console.print(f"{result.row_count:,} row{plural}")
