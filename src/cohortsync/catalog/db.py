"""The catalog database: one SQLite file in the home, WAL mode.

Table modules register their tables on :data:`metadata`; :func:`open_catalog`
imports them all and creates what is missing, so a fresh home just works.
"""

from __future__ import annotations

import datetime as dt
import importlib
import pkgutil
from pathlib import Path
from typing import Any, overload

import sqlalchemy as sa
from sqlalchemy import event

from cohortsync.errors import ConfigError

metadata = sa.MetaData()


@overload
def stored_utc(value: dt.datetime) -> dt.datetime: ...
@overload
def stored_utc(value: None) -> None: ...
def stored_utc(value: dt.datetime | None) -> dt.datetime | None:
    """A datetime read back from the catalog, in UTC.

    SQLite drops the zone of ``DateTime(timezone=True)`` columns; we always
    write UTC, so a naive value is UTC. An aware value is returned as it is.
    """
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def _register_table_modules() -> None:
    """Import every module of this package so their tables join ``metadata``."""
    package = importlib.import_module("cohortsync.catalog")
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"cohortsync.catalog.{module.name}")


def open_catalog(path: Path) -> sa.Engine:
    """Open (and create) the catalog at ``path``.

    SQLite runs in WAL mode with a busy timeout so that the scheduler, the CLI
    and a running export can share it.
    """
    engine = sa.create_engine(f"sqlite:///{path}", connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    _register_table_modules()
    try:
        metadata.create_all(engine)
    except sa.exc.DatabaseError as error:
        engine.dispose()
        raise catalog_error(path, error) from None
    return engine


def catalog_error(path: Path, error: sa.exc.DatabaseError) -> ConfigError:
    """What to do when the catalog cannot be opened: a read-only or a damaged home.

    SQLite says "unable to open database file" or "readonly database" when the
    home (or the file) cannot be written, and "file is not a database" when
    ``catalog.db`` is something else or damaged. Both are the user's to fix;
    a traceback would hide which file and what to do.
    """
    reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
    lowered = reason.lower()
    if "readonly" in lowered or "read-only" in lowered or "unable to open" in lowered:
        return ConfigError(
            f"cannot write the catalog {path}: {reason}",
            hint=f"the home {path.parent} (COHORTSYNC_HOME) must be a directory you can write; "
            "check its permissions and free space, or point COHORTSYNC_HOME at another one",
        )
    return ConfigError(
        f"the catalog {path} cannot be read: {reason}",
        hint="it is damaged or not a cohortsync catalog; restore it from a backup, or move it "
        "away to start an empty one, losing its authentications, queries and run history",
    )
