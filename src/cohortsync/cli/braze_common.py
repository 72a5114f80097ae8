"""What every ``cohortsync braze`` command shares: the store option, the workspace, the output.

The sub-command modules (``braze``, ``braze_user``, ``braze_campaign``) import
these, so the ``--db`` and ``--workspace`` options read the same everywhere.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import orjson
import typer

from cohortsync.braze.store import Store, open_store
from cohortsync.settings import Settings

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="COHORTSYNC_BRAZE_DB",
        help="Store URL: sqlite:///PATH or postgresql://USER@HOST/DB. "
        "Default: $COHORTSYNC_HOME/braze.db.",
        show_default=False,
    ),
]
WorkspaceOption = Annotated[
    str, typer.Option("--workspace", "-w", help="Workspace id or name.", show_default=False)
]
PartnerOption = Annotated[str, typer.Option("--partner", help="Partner name, as in the URL.")]


def db_url(db: str | None) -> str:
    return db or Settings().braze_db_url


def printable_url(url: str) -> str:
    """The store's URL as it may be printed and logged: a password in it as ``***``."""
    import sqlalchemy as sa

    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url


@contextmanager
def store_of(db: str | None) -> Iterator[Store]:
    """The store named by ``--db``, opened (and upgraded) for one command."""
    store = open_store(db_url(db))
    try:
        yield store
    finally:
        store.close()


def print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")
