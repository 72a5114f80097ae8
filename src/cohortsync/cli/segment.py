"""`cohortsync segment`: Rule-based segments of a parent table."""

import typer

app = typer.Typer(help="Rule-based segments of a parent table.", no_args_is_help=True)
