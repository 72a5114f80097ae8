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
    metadata.create_all(engine)
    return engine
