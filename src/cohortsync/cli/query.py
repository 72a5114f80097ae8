"""`cohortsync query`: Saved queries, optionally exported to a cohort after each run."""

import typer

app = typer.Typer(help="Saved queries, optionally exported to a cohort after each run.", no_args_is_help=True)
