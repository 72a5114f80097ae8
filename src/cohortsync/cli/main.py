"""The ``cohortsync`` command line.

Each command group lives in its own module and exposes ``app``; top-level
commands expose a function. Errors a user can act on (:class:`CohortsyncError`)
print one line on stderr and exit with their code; anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import typer
from typer.core import TyperGroup

from cohortsync.errors import CohortsyncError

# name -> (module, attribute, one-line help). Groups expose a Typer ``app``;
# top-level commands a function. Modules are imported only when their command
# runs, so that `cohortsync auth list` does not pay for FastAPI, DuckDB and
# aiohttp at start-up.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "warehouse": (
        "cohortsync.cli.warehouse",
        "app",
        "Load files into the warehouse and check queries.",
    ),
    "auth": (
        "cohortsync.cli.auth",
        "app",
        "Saved Braze authentications (endpoint + data import key).",
    ),
    "export": ("cohortsync.cli.export", "export", "Export a query result to a Braze cohort."),
    "runs": ("cohortsync.cli.runs", "app", "Export run history; resume interrupted runs."),
    "query": ("cohortsync.cli.query", "app", "Saved queries, exported to a cohort after each run."),
    "audience": (
        "cohortsync.cli.audience",
        "app",
        "Parent segments: customer tables of the warehouse.",
    ),
    "segment": ("cohortsync.cli.segment", "app", "Rule-based segments of a parent table."),
    "activation": (
        "cohortsync.cli.activation",
        "app",
        "A segment exported to a Braze cohort, on a schedule.",
    ),
    "scheduler": (
        "cohortsync.cli.scheduler",
        "scheduler",
        "Run due saved queries and activations by cron.",
    ),
    "apply": ("cohortsync.cli.apply", "apply", "Create or update everything from one YAML file."),
    "braze": (
        "cohortsync.cli.braze",
        "app",
        "The Braze-compatible receiving service and its administration.",
    ),
}


def load_command(name: str) -> Any:
    """Build the click command for ``name`` from its module, importing it now."""
    module, attribute, _help = COMMANDS[name]
    target = getattr(importlib.import_module(module), attribute)
    if not isinstance(target, typer.Typer):
        single = typer.Typer()
        single.command(name)(target)
        target = single
    # Plain help rendering: brackets in help text (e.g. "[/users]") are text, not markup.
    target.rich_markup_mode = None
    target._add_completion = False
    command = typer.main.get_command(target)
    command.name = name
    return command


class LazyGroup(TyperGroup):
    """The top-level group: lists commands from :data:`COMMANDS`, imports on use."""

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        return load_command(cmd_name) if cmd_name in COMMANDS else None

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        rows = [(name, help_text) for name, (_m, _a, help_text) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


app = typer.Typer(
    name="cohortsync",
    cls=LazyGroup,
    help=(
        "Turn warehouse query results into Braze cohorts.\n\n"
        "Load data with 'warehouse load', check a query with 'warehouse query', save the "
        "Braze credentials with 'auth create', then 'export' the result to a cohort. "
        "'braze serve' runs a local Braze-compatible service to try it all against. "
        "Every command has --help with examples."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """The group itself does nothing; its commands are loaded on demand."""


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
