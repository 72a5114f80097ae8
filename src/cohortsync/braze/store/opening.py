"""Opening a store: created when empty, upgraded when older, refused when newer.

Schema versions (:mod:`cohortsync.dbschema`, revisions in ``braze/migrations/``):
:func:`open_store` creates a fresh store at the newest schema and upgrades an
older one, under the write lock (SQLite, after a backup copy) or an advisory
lock (PostgreSQL). A schema problem is the operator's to fix, never a reason
for clients to retry: the service does not start on a store it cannot
upgrade, and answers 500, not 503.
"""

from __future__ import annotations

import threading
from pathlib import Path

import sqlalchemy as sa

from cohortsync import dbschema
from cohortsync.braze.store.database import Store, normalise_url, sqlite_engines
from cohortsync.braze.store.tables import COUNTER_COLUMNS, VERSION_TABLE, id_counters, metadata
from cohortsync.errors import ConfigError


def _recognise(conn: sa.Connection) -> str | None:
    """The revision of a store made before versions existed, told by its shape.

    A store with the counter columns on ``braze_cohorts`` is at ``0002`` (the
    release before versions); an older one is upgraded from the base, whose
    revisions create only what is missing.
    """
    inspector = sa.inspect(conn)
    tables = set(inspector.get_table_names())
    if "braze_cohorts" in tables and "braze_cohort_counts" not in tables:
        present = {column["name"] for column in inspector.get_columns("braze_cohorts")}
        if set(COUNTER_COLUMNS) <= present:
            return "0002"
    return None


STORE_SCHEMA = dbschema.Schema(
    label="Braze store",
    scripts=Path(__file__).parent.parent / "migrations",
    version_table=VERSION_TABLE,
    metadata=metadata,
    recognise=_recognise,
)


def store_status(db_url: str) -> dbschema.Status:
    """The store's schema revision, read without creating or changing anything."""
    url = normalise_url(db_url, create_folder=False)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").expanduser().exists():
        return dbschema.no_database(STORE_SCHEMA)
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    return dbschema.status_of(engine, STORE_SCHEMA, lambda error: _open_error(db_url, error))


def _open_error(db_url: str, error: sa.exc.DatabaseError) -> ConfigError:
    reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
    return ConfigError(
        f"cannot open the store {db_url}: {reason}",
        hint="check the URL, that the database server answers, and that the file is a "
        "Braze store (or empty)",
    )


def upgrade_store(store: Store) -> dbschema.Outcome:
    """Create the store's tables at the newest schema, or upgrade them (see the module notes).

    Raises:
        ConfigError: the store is newer than this code, not a Braze store, or unreachable.
    """
    url = store.engine.url
    sqlite_file = Path(url.database or "").expanduser() if store.is_sqlite else None
    try:
        outcome = dbschema.ensure_current(
            store.engine,
            STORE_SCHEMA,
            where=store.url,
            sqlite_file=sqlite_file,
            connect=store.write,
        )
        with store.write() as conn:
            conn.execute(store.insert_ignore(id_counters).values(name="users", next_value=1))
    except sa.exc.DatabaseError as error:
        raise _open_error(store.url, error) from error
    return outcome


def open_store(db_url: str, *, busy_timeout: float = 30.0, upgrade: bool = True) -> Store:
    """Open the store at ``db_url``: created when empty, upgraded when older.

    Args:
        db_url: ``sqlite:///PATH`` (created with its folder) or
            ``postgresql://USER@HOST/DB`` (the database must exist).
        busy_timeout: seconds a write waits for a lock before failing.
        upgrade: bring the schema to the newest revision (``braze db
            upgrade`` opens without, to report what it did itself).

    Raises:
        ConfigError: the store is newer than this code (naming both
            revisions), not a Braze store, or cannot be reached.
    """
    url = normalise_url(db_url)
    lock: threading.Lock | None = None
    write_engine: sa.Engine | None = None
    if url.get_backend_name() == "sqlite":
        engine, write_engine, lock = sqlite_engines(url, busy_timeout)
    else:
        options = f"-c lock_timeout={int(busy_timeout * 1000)}"
        engine = sa.create_engine(
            url, pool_size=10, max_overflow=20, connect_args={"options": options}
        )
    store = Store(
        engine=engine,
        url=db_url,
        busy_timeout=busy_timeout,
        _write_lock=lock,
        _write_engine=write_engine,
    )
    if upgrade:
        try:
            upgrade_store(store)
        except BaseException:
            store.close()
            raise
    return store
