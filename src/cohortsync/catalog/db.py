"""The catalog database: one SQLite file in the home, WAL mode.

Table modules register their tables on :data:`metadata`; :func:`open_catalog`
imports them all, creates a fresh catalog at the newest schema and upgrades
an older one (:mod:`cohortsync.dbschema`, revisions in ``migrations/``), so a
fresh home just works and an upgraded cohortsync keeps every saved object.
"""

from __future__ import annotations

import datetime as dt
import importlib
import pkgutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, overload

import sqlalchemy as sa
from sqlalchemy import event

from cohortsync import dbschema
from cohortsync.errors import ConfigError

metadata = sa.MetaData()


def definition_table(name: str, *columns: sa.Column[Any]) -> sa.Table:
    """A table of saved definitions on :data:`metadata`: one row per name.

    Its key is the definition's ``name``, then ``columns``, then when the row
    was created and last updated (aware UTC, see :func:`stored_utc`).
    """
    return sa.Table(
        name,
        metadata,
        sa.Column("name", sa.String, primary_key=True),
        *columns,
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


VERSION_TABLE = "cohortsync_catalog_version"


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


def utc_naive(moment: dt.datetime) -> dt.datetime:
    """A UTC instant as the naive datetime a plain ``DateTime`` column keeps.

    Schedules and leases store naive UTC (SQLite keeps no zone); aware input
    is converted to UTC first. :func:`stored_utc` reads it back.
    """
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return moment


def _register_table_modules() -> None:
    """Import every module of this package so their tables join ``metadata``."""
    package = importlib.import_module("cohortsync.catalog")
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"cohortsync.catalog.{module.name}")


def _recognise(_conn: sa.Connection) -> str | None:
    """An unversioned catalog is upgraded from the base: revision 0001 creates what is missing."""
    return None


def catalog_schema() -> dbschema.Schema:
    """The catalog's versioned schema: every table module's tables, the scripts beside this."""
    _register_table_modules()
    return dbschema.Schema(
        label="catalog",
        scripts=Path(__file__).with_name("migrations"),
        version_table=VERSION_TABLE,
        metadata=metadata,
        recognise=_recognise,
    )


def _engine(path: Path, *, migrating: bool = False) -> sa.Engine:
    """An engine on the catalog file.

    The migrating engine lets SQLAlchemy emit ``BEGIN IMMEDIATE`` itself, so
    that DDL runs inside the transaction that holds the write lock, and turns
    foreign keys off: a revision that recreates a table (SQLite's batch mode)
    would otherwise cascade the drop of the old copy into the rows that
    reference it.
    """
    engine = sa.create_engine(f"sqlite:///{path}", connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        if migrating:
            dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA foreign_keys={'OFF' if migrating else 'ON'}")
        cursor.close()

    if migrating:

        @event.listens_for(engine, "begin")
        def _begin(conn: sa.Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def catalog_status(path: Path) -> dbschema.Status:
    """The catalog's schema revision, read without creating or changing anything."""
    schema = catalog_schema()
    if not path.exists():
        return dbschema.no_database(schema)
    return dbschema.status_of(_engine(path), schema, lambda error: catalog_error(path, error))


def upgrade_catalog(path: Path) -> dbschema.Outcome:
    """Create the catalog at ``path`` or bring it to the newest schema (backup first).

    Raises:
        ConfigError: the catalog is newer than this code, damaged, or not writable.
    """
    engine = _engine(path)
    try:
        return _ensure_current(path, engine)
    finally:
        engine.dispose()


def _ensure_current(path: Path, engine: sa.Engine) -> dbschema.Outcome:
    """:func:`dbschema.ensure_current` for the catalog; the locking engine only when needed."""

    @contextmanager
    def locked() -> Iterator[sa.Connection]:
        migrator = _engine(path, migrating=True)
        try:
            with migrator.begin() as conn:
                yield conn
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").first()
                if broken is not None:
                    raise ConfigError(
                        f"upgrading the catalog {path} would leave rows of {broken[0]} whose "
                        "reference is gone; nothing was changed",
                        hint="report this with a copy of the catalog",
                    )
        finally:
            migrator.dispose()

    try:
        return dbschema.ensure_current(
            engine, catalog_schema(), where=str(path), sqlite_file=path, connect=locked
        )
    except sa.exc.DatabaseError as error:
        raise catalog_error(path, error) from None


def open_catalog(path: Path) -> sa.Engine:
    """Open the catalog at ``path``: created when missing, upgraded when older.

    SQLite runs in WAL mode with a busy timeout so that the scheduler, the CLI
    and a running export can share it.

    Raises:
        ConfigError: the catalog is newer than this code (naming both
            revisions), damaged, or in a home that cannot be written.
    """
    engine = _engine(path)
    try:
        _ensure_current(path, engine)
    except BaseException:
        engine.dispose()
        raise
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
