"""`cohortsync warehouse`: Load files into the warehouse and check queries."""

import typer

app = typer.Typer(help="Load files into the warehouse and check queries.", no_args_is_help=True)
