"""Schema versions of the two databases: the catalog and the Braze store.

Each database records the Alembic revision of its schema in its own version
table. Opening it (:func:`ensure_current`) compares that revision with the
newest one this code ships:

* **Fresh database** (none of our tables): the tables are created at the newest
  schema in one go and stamped, rather than replaying every revision, so a
  new home stays as fast to open as before versions existed.
* **Current**: nothing happens beyond one read of the version table.
* **Older, or written by a release from before versions** (tables but no
  version table): on SQLite a backup copy is made next to the file, then the
  revisions in between run in one transaction. Concurrent openers serialise
  on SQLite's write lock (``BEGIN IMMEDIATE``) or a PostgreSQL advisory lock,
  and re-read the version once they hold it, so exactly one migrates.
* **Newer** (a revision this code does not know): refused with a
  :class:`ConfigError` naming both versions, since writing through an older
  schema would corrupt data the newer release relies on.

Alembic runs from code: each schema's scripts live in its package
(``catalog/migrations``, ``braze/migrations``) with a tiny ``env.py`` that
calls :func:`run_env`, so users need no ``alembic.ini``.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sqlite3
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from cohortsync.errors import ConfigError
from cohortsync.filemodes import PRIVATE_FILE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Schema:
    """One versioned database kind.

    Attributes:
        label: how messages name it ("catalog", "Braze store").
        scripts: the folder holding ``env.py`` and ``versions/``.
        version_table: where the revision is recorded; a name of our own so a
            PostgreSQL database shared with another Alembic user does not clash.
        metadata: the newest schema, used to create a fresh database at head.
        recognise: for a database with tables but no version table (made
            before versions existed), the revision it is at, or ``None`` to
            upgrade it from the base (every revision must then tolerate the
            tables that already exist).
    """

    label: str
    scripts: Path
    version_table: str
    metadata: sa.MetaData
    recognise: Callable[[sa.Connection], str | None]


@dataclass(frozen=True)
class Status:
    """Where a database stands: its revision (``None``: unversioned or empty) and head."""

    current: str | None
    head: str
    versioned: bool
    empty: bool

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


@dataclass(frozen=True)
class Outcome:
    """What :func:`ensure_current` did: from which revision to which, and the backup."""

    before: str | None
    after: str
    action: str  # "none", "created", "upgraded"
    backup: Path | None = None
    unversioned: bool = False  # it was written before versions existed

    def describe_before(self) -> str:
        """The old revision for people: "0002", or "0002, written before versions"."""
        if self.unversioned:
            return f"{self.before or 'the base'}, written before versions"
        return self.before or "(none)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "before": self.before,
            "after": self.after,
            "action": self.action,
            "backup": str(self.backup) if self.backup else None,
            "unversioned": self.unversioned,
        }


def _config(schema: Schema, conn: sa.Connection) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(schema.scripts))
    config.attributes["connection"] = conn
    config.attributes["version_table"] = schema.version_table
    return config


def known_revisions(schema: Schema) -> list[str]:
    """Every revision of ``schema``, oldest first, read from the scripts' file names.

    Revisions are numbered (``0002_what_it_does.py`` is revision ``0002``,
    revising ``0001``), so the version check on every open needs no import of
    Alembic; a test holds Alembic's own view of the chain to the same order.
    """
    names = sorted(p.name for p in (schema.scripts / "versions").glob("[0-9]*_*.py"))
    return [name.split("_", 1)[0] for name in names]


def head(schema: Schema) -> str:
    """The newest revision this code ships for ``schema``."""
    return known_revisions(schema)[-1]


def status(conn: sa.Connection, schema: Schema) -> Status:
    """Read the version of the database behind ``conn`` without changing it."""
    tables = set(sa.inspect(conn).get_table_names())
    newest = head(schema)
    if schema.version_table in tables:
        row = conn.execute(sa.text(f"SELECT version_num FROM {schema.version_table}")).first()
        return Status(current=row[0] if row else None, head=newest, versioned=True, empty=False)
    # Tables of others (a PostgreSQL database shared with a warehouse) do not count.
    return Status(
        current=None, head=newest, versioned=False, empty=not tables & set(schema.metadata.tables)
    )


def status_of(
    engine: sa.Engine, schema: Schema, refusal: Callable[[sa.exc.DatabaseError], Exception]
) -> Status:
    """Read the version of the database of ``engine``, then dispose of the engine.

    A database that cannot be read (a damaged file, a server that does not
    answer) raises ``refusal(error)``: each database says in its own words
    what to check.
    """
    try:
        with engine.connect() as conn:
            return status(conn, schema)
    except sa.exc.DatabaseError as error:
        raise refusal(error) from None
    finally:
        engine.dispose()


def no_database(schema: Schema) -> Status:
    """The status of a database file that does not exist yet: empty, created at head on open."""
    return Status(current=None, head=head(schema), versioned=False, empty=True)


def newer_error(schema: Schema, where: str, current: str, newest: str) -> ConfigError:
    """The refusal of a database written by a newer release."""
    return ConfigError(
        f"the {schema.label} {where} is at schema revision {current}, newer than this "
        f"cohortsync knows (its newest is {newest})",
        hint="upgrade cohortsync to the release that wrote it (pip install -U cohortsync), "
        "or restore the backup made before that upgrade",
    )


def ensure_current(
    engine: sa.Engine,
    schema: Schema,
    *,
    where: str,
    sqlite_file: Path | None = None,
    connect: Callable[[], Any] | None = None,
) -> Outcome:
    """Bring the database of ``engine`` to the newest revision (see the module notes).

    Args:
        engine: the database's engine.
        where: the file or URL, as messages name it.
        sqlite_file: the SQLite file, to back it up before an upgrade.
        connect: a context manager yielding a connection whose transaction
            holds the database's write lock (SQLite: ``BEGIN IMMEDIATE``);
            defaults to ``engine.begin()``.

    Raises:
        ConfigError: the database is newer than the code, or not one of ours.
    """
    newest = head(schema)
    with engine.connect() as conn:
        first = status(conn, schema)
    if first.up_to_date:
        return Outcome(before=first.current, after=newest, action="none")
    _refuse_unknown(schema, where, first)
    with (connect or engine.begin)() as conn:
        if conn.dialect.name == "postgresql":
            key = zlib.crc32(schema.version_table.encode()) & 0x7FFFFFFF
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
        now = status(conn, schema)  # another process may have migrated meanwhile
        if now.up_to_date:
            return Outcome(before=now.current, after=newest, action="none")
        _refuse_unknown(schema, where, now)
        if now.empty:
            schema.metadata.create_all(conn)
            _write_version(schema, conn, newest)
            return Outcome(before=None, after=newest, action="created")
        before = now.current if now.versioned else schema.recognise(conn)
        backup = _backup(sqlite_file, before) if sqlite_file is not None else None
        _upgrade(schema, conn, before, newest)
    outcome = Outcome(
        before=before,
        after=newest,
        action="upgraded",
        backup=backup,
        unversioned=not now.versioned,
    )
    log.warning(
        "upgraded the %s %s from schema revision %s to %s%s",
        schema.label,
        where,
        outcome.describe_before(),
        newest,
        f"; its backup is {backup}" if backup else "",
    )
    return outcome


def _refuse_unknown(schema: Schema, where: str, state: Status) -> None:
    known = known_revisions(schema)
    if state.versioned and state.current is not None and state.current not in known:
        raise newer_error(schema, where, state.current, state.head)


def _write_version(schema: Schema, conn: sa.Connection, revision: str) -> None:
    """Record ``revision`` in a version table of Alembic's own shape.

    Written directly rather than through ``alembic stamp`` so that creating a
    fresh home does not pay for importing Alembic and reading every script.
    """
    table = sa.Table(
        schema.version_table,
        sa.MetaData(),
        sa.Column("version_num", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("version_num", name=f"{schema.version_table}_pkc"),
    )
    table.create(conn)
    conn.execute(table.insert().values(version_num=revision))


def _upgrade(schema: Schema, conn: sa.Connection, before: str | None, newest: str) -> None:
    from alembic import command

    config = _config(schema, conn)
    if before is not None:
        command.stamp(config, before)
    command.upgrade(config, newest)


def run_env(context: Any) -> None:
    """The body of every migrations ``env.py``: run on the connection we were given.

    Batch mode lets SQLite, which cannot alter most of a table in place,
    recreate tables when a revision asks for it; PostgreSQL alters natively.
    The connection is already in the caller's transaction, which holds the
    lock, so Alembic opens none of its own.
    """
    config = context.config
    conn = config.attributes["connection"]
    context.configure(
        connection=conn,
        version_table=config.attributes["version_table"],
        render_as_batch=True,
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _backup(path: Path, revision: str | None) -> Path:
    """Copy the SQLite file (with what its WAL holds) beside it, before an upgrade.

    SQLite's online backup reads a consistent snapshot while the caller holds
    the write lock on another connection, so nothing changes under the copy.
    The copy is created 0600 whatever the umask: it holds what the file holds.
    """
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.bak-{revision or 'unversioned'}-{stamp}")
    os.close(os.open(target, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE))
    source = sqlite3.connect(path, timeout=30)
    try:
        copy = sqlite3.connect(target)
        try:
            source.backup(copy)
        finally:
            copy.close()
    finally:
        source.close()
    return target
