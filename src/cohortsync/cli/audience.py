"""`cohortsync audience`: Parent segments: customer tables of the warehouse."""

import typer

app = typer.Typer(help="Parent segments: customer tables of the warehouse.", no_args_is_help=True)
