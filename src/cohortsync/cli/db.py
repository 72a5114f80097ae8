"""`cohortsync db`: the catalog's schema version, and upgrading it explicitly.

Every command that opens the catalog upgrades it already (after a backup);
these commands let an operator look first, or upgrade at a moment of their
choosing, for instance before starting the scheduler after an upgrade.
"""

from __future__ import annotations

import typer

from cohortsync.catalog.db import catalog_status, upgrade_catalog
from cohortsync.cli.output import JsonOption, echo_json_line
from cohortsync.dbschema import Outcome, Status
from cohortsync.settings import Settings

app = typer.Typer(
    help=(
        "The catalog's schema version ($COHORTSYNC_HOME/catalog.db), and upgrading it.\n\n"
        "Commands that open the catalog upgrade it when it is older than this cohortsync "
        "(a copy catalog.db.bak-REVISION-TIME is kept beside it first); a catalog newer "
        "than this cohortsync is refused: upgrade cohortsync. See docs/upgrading.md."
    ),
    no_args_is_help=True,
)


def status_document(where: str, state: Status) -> dict[str, object]:
    """What ``db current --json`` prints, shared with ``braze db current``."""
    return {
        "database": where,
        "current": state.current,
        "head": state.head,
        "versioned": state.versioned,
        "exists": not state.empty,
        "up_to_date": state.up_to_date,
    }


def status_line(label: str, where: str, state: Status) -> str:
    """One line saying where a database stands, for people."""
    if state.empty:
        return f"{label} {where}: not created yet (it is created at revision {state.head})"
    if not state.versioned:
        return (
            f"{label} {where}: written before schema versions; it is upgraded to revision "
            f"{state.head} when opened"
        )
    if state.up_to_date:
        return f"{label} {where}: revision {state.current} (the newest)"
    return f"{label} {where}: revision {state.current}; this cohortsync's newest is {state.head}"


def outcome_line(label: str, where: str, outcome: Outcome) -> str:
    """One line saying what an upgrade did."""
    if outcome.action == "none":
        return f"{label} {where}: already at revision {outcome.after}, nothing to do"
    if outcome.action == "created":
        return f"{label} {where}: created at revision {outcome.after}"
    backup = f"; backup {outcome.backup}" if outcome.backup else ""
    return (
        f"{label} {where}: upgraded from revision {outcome.describe_before()} "
        f"to {outcome.after}{backup}"
    )


@app.command()
def current(json: JsonOption = False) -> None:
    """Print the catalog's schema revision and the newest this cohortsync knows.

    Reads only: it neither creates nor upgrades the catalog.

    Examples:

    \b
      cohortsync db current
      cohortsync db current --json
    """
    path = Settings().catalog_path
    state = catalog_status(path)
    if json:
        echo_json_line(status_document(str(path), state))
    else:
        typer.echo(status_line("catalog", str(path), state))


@app.command()
def upgrade(json: JsonOption = False) -> None:
    """Upgrade the catalog to the newest schema; a no-op when it is already there.

    A SQLite backup (catalog.db.bak-REVISION-TIME) is written beside it first and
    named in the output. Another process opening the catalog meanwhile waits
    for the upgrade rather than running it twice.

    Examples:

    \b
      cohortsync db upgrade
      cohortsync db upgrade --json
    """
    path = Settings().catalog_path
    outcome = upgrade_catalog(path)
    if json:
        echo_json_line({"database": str(path), **outcome.to_dict()})
    else:
        typer.echo(outcome_line("catalog", str(path), outcome))
