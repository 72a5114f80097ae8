"""The ``cohortsync`` command line.

Each command group lives in its own module and exposes ``app``; top-level
commands expose a function. Errors a user can act on (:class:`CohortsyncError`)
print one line on stderr and exit with their code; anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import typer
from typer.core import TyperGroup

from cohortsync.errors import CohortsyncError, ConfigError, RunInterrupted
from cohortsync.logs import announce_error

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
    "console": (
        "cohortsync.cli.console",
        "console",
        "The web console: Integrations Hub, Data Workbench, Audience Studio, Runs.",
    ),
    "db": (
        "cohortsync.cli.db",
        "app",
        "The catalog's schema version; upgrade it explicitly.",
    ),
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

    def invoke(self, ctx: Any) -> Any:
        """Run the command; Ctrl-C anywhere becomes one line and exit 6.

        Click would print "Aborted!" and exit 1, which reads like a failure
        of the command. Commands that know what an interrupt left behind
        (loads, exports) raise :class:`RunInterrupted` themselves with more to
        say; this is the net for every other one.
        """
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise _interrupted() from None
        except Exception as error:
            if _is_engine_interrupt(error):
                raise _interrupted() from None
            storage = _storage_error(error)
            if storage is not None:
                raise storage from None
            raise


def _interrupted() -> RunInterrupted:
    return RunInterrupted(
        "interrupted (Ctrl-C) before the command finished",
        hint="run it again to finish; 'cohortsync runs list' shows any export it started",
    )


# SQLite's words for a home (or store) that cannot be written, whatever the
# command was doing when it found out.
_STORAGE_FAILURES = (
    "readonly database",
    "unable to open database file",
    "database or disk is full",
    "disk i/o error",
)


def _storage_error(error: BaseException) -> ConfigError | None:
    """A SQLite write refused half-way (read-only file, full disk) as one line.

    Opening the catalog already checks the home (see
    :func:`cohortsync.catalog.db.open_catalog`); this covers a file made
    read-only, or a disk that fills, after it opened. Told by module and
    message, so sqlalchemy is not imported here.
    """
    module = type(error).__module__
    if not module.startswith(("sqlalchemy", "sqlite3")):
        return None
    reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
    if not any(failure in reason.lower() for failure in _STORAGE_FAILURES):
        return None
    return ConfigError(
        f"cannot write to the home's database: {reason}",
        hint="COHORTSYNC_HOME, and any --db file, must be writable by you on a disk with free "
        "space; check with 'ls -l' and 'df', or point COHORTSYNC_HOME at another directory",
    )


def _is_engine_interrupt(error: BaseException) -> bool:
    """DuckDB turns a Ctrl-C during a query into its own error, not KeyboardInterrupt.

    It is ``duckdb.InterruptException`` or, from the streaming reader, a
    ``RuntimeError("Query interrupted")``; duckdb is not imported here (the
    CLI imports it only for commands that use it), so both are told by name.
    """
    return type(error).__name__ == "InterruptException" or (
        type(error) is RuntimeError and str(error).strip() == "Query interrupted"
    )


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
    line, without traceback. A reader that stops early (``cohortsync ... |
    head``) closes stdout: that is the reader's choice, not an error, so it
    ends quietly with exit 1 as click does, instead of a BrokenPipeError
    traceback at the final flush.
    """
    try:
        try:
            app()
        finally:
            sys.stdout.flush()
    except CohortsyncError as error:
        # A command started with --log-format json ends with a JSON line too.
        if not announce_error(f"error: {error}", exit_code=error.exit_code):
            typer.secho(f"error: {error}", err=True, fg=typer.colors.RED)
        sys.exit(error.exit_code)
    except BrokenPipeError:
        _silence_stdout()
        sys.exit(1)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's last flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
