"""`cohortsync braze`: The Braze-compatible receiving service and its administration."""

import typer

app = typer.Typer(help="The Braze-compatible receiving service and its administration.", no_args_is_help=True)
