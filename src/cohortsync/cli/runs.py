"""`cohortsync runs`: Export run history, and resuming interrupted runs."""

import typer

app = typer.Typer(help="Export run history, and resuming interrupted runs.", no_args_is_help=True)
