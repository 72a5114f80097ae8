"""`cohortsync auth`: Saved Braze authentications (endpoint + data import key)."""

import typer

app = typer.Typer(help="Saved Braze authentications (endpoint + data import key).", no_args_is_help=True)
