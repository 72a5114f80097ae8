"""`cohortsync activation`: Activations: a segment exported to a Braze cohort on a schedule."""

import typer

app = typer.Typer(help="Activations: a segment exported to a Braze cohort on a schedule.", no_args_is_help=True)
