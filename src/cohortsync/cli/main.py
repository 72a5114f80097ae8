"""The ``cohortsync`` command line.

Each command group lives in its own module and exposes ``app``; top-level
commands expose a function. Errors a user can act on (:class:`CohortsyncError`)
print one line on stderr and exit with their code; anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import sys

import typer

from cohortsync.cli import (
    activation,
    apply,
    audience,
    auth,
    braze,
    export,
    query,
    runs,
    scheduler,
    segment,
    warehouse,
)
from cohortsync.errors import CohortsyncError

app = typer.Typer(
    name="cohortsync",
    help=(
        "Turn warehouse query results into Braze cohorts.\n\n"
        "Load data with 'warehouse load', check a query with 'warehouse query', save the "
        "Braze credentials with 'auth create', then 'export' the result to a cohort. "
        "'braze serve' runs a local Braze-compatible service to try it all against."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=False,
)

app.add_typer(warehouse.app, name="warehouse")
app.add_typer(auth.app, name="auth")
app.command("export")(export.export)
app.add_typer(runs.app, name="runs")
app.add_typer(query.app, name="query")
app.add_typer(audience.app, name="audience")
app.add_typer(segment.app, name="segment")
app.add_typer(activation.app, name="activation")
app.command("scheduler")(scheduler.scheduler)
app.command("apply")(apply.apply)
app.add_typer(braze.app, name="braze")


def main() -> None:
    """Console entry point.

    Typer runs in standalone mode, so usage errors print click's message and
    exit 2; a :class:`CohortsyncError` escapes it and is printed here as one
    line, without traceback.
    """
    try:
        app()
    except CohortsyncError as error:
        typer.secho(f"error: {error}", err=True, fg=typer.colors.RED)
        sys.exit(error.exit_code)
