"""The receiving service's store: tables and transactions, SQLAlchemy Core.

One schema serves SQLite (the default, a local sandbox) and PostgreSQL (a shared
one). Both speak the same Core statements; only these things differ and they
live here:

* **Write serialisation.** SQLite has one writer per file, so every write runs
  under a process-wide lock per database file and starts with
  ``BEGIN IMMEDIATE`` (another process, such as the admin CLI, then waits on the
  busy timeout instead of failing on a lock upgrade). Concurrent cohort
  imports share one commit (:meth:`Store.write_grouped`). PostgreSQL serialises
  writes per cohort with ``SELECT ... FOR UPDATE`` (see :mod:`.matching`).
* **Lists as one parameter** (:func:`values_table`): ``json_each`` on SQLite,
  ``unnest`` of an array on PostgreSQL.
* **Insert-or-ignore**, through each dialect's ``ON CONFLICT DO NOTHING``.
* **Timeouts.** ``busy_timeout`` is SQLite's busy timeout and PostgreSQL's
  ``lock_timeout``: past it a write fails with ``OperationalError`` (or
  :class:`StoreBusy` while waiting for this process's own lock), which the
  service answers with 503 so that clients retry.
* **Schema versions** (:mod:`cohortsync.dbschema`, revisions in
  ``migrations/``): :func:`open_store` creates a fresh store at the newest
  schema and upgrades an older one, under the write lock (SQLite, after a
  backup copy) or an advisory lock (PostgreSQL). A schema problem is the
  operator's to fix, never a reason for clients to retry: the service does
  not start on a store it cannot upgrade, and answers 500, not 503.

User ids come from :func:`allocate_ids` rather than autoincrement so that a
bulk load can insert a million users and their identifiers with plain
``executemany`` and no round trip per user.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

from cohortsync import dbschema
from cohortsync.errors import CohortsyncError, ConfigError

metadata = sa.MetaData()

VERSION_TABLE = "braze_store_version"
COUNTER_COLUMNS = tuple(
    f"{kind}_{count}"
    for kind in ("external_id", "alias", "device_id")
    for count in ("received", "matched")
)

# Identifier strings are bounded so that every one fits a PostgreSQL btree entry.
MAX_IDENTIFIER_LENGTH = 512

workspaces = sa.Table(
    "braze_workspaces",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String, nullable=False, unique=True),
    sa.Column("rest_api_key", sa.String, nullable=False, unique=True),
    sa.Column("created_at", sa.String, nullable=False),
)

partners = sa.Table(
    "braze_partners",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String, nullable=False, unique=True),
    sa.Column("display_name", sa.String, nullable=False),
    sa.Column("filter_name", sa.String, nullable=False),
)

partner_api_keys = sa.Table(
    "braze_partner_api_keys",
    metadata,
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("partner_id", sa.ForeignKey("braze_partners.id"), nullable=False),
    sa.Column("region", sa.String, nullable=False),
)

workspace_partners = sa.Table(
    "braze_workspace_partners",
    metadata,
    sa.Column("workspace_id", sa.ForeignKey("braze_workspaces.id"), primary_key=True),
    sa.Column("partner_id", sa.ForeignKey("braze_partners.id"), primary_key=True),
)

data_import_keys = sa.Table(
    "braze_data_import_keys",
    metadata,
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("workspace_id", sa.ForeignKey("braze_workspaces.id"), nullable=False),
    sa.Column("partner_id", sa.ForeignKey("braze_partners.id"), nullable=False),
    sa.Column("created_at", sa.String, nullable=False),
    sa.Column("invalidated_at", sa.String, nullable=True),
)

id_counters = sa.Table(
    "braze_id_counters",
    metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("next_value", sa.BigInteger, nullable=False),
)

# SQLite: INTEGER PRIMARY KEY makes the id the rowid, so id lookups need no index.
UserId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

users = sa.Table(
    "braze_users",
    metadata,
    sa.Column("id", UserId, primary_key=True, autoincrement=False),
    sa.Column("workspace_id", sa.Integer, nullable=False),
    sa.Column("external_id", sa.String, nullable=True),
    sa.Column("attributes", sa.Text, nullable=True),
    sa.Column("created_at", sa.String, nullable=False),
    sa.UniqueConstraint("workspace_id", "external_id", name="uq_braze_users_external_id"),
)

user_aliases = sa.Table(
    "braze_user_aliases",
    metadata,
    sa.Column("workspace_id", sa.Integer, primary_key=True),
    sa.Column("alias_name", sa.String, primary_key=True),
    sa.Column("alias_label", sa.String, primary_key=True),
    sa.Column("user_id", sa.BigInteger, nullable=False, index=True),
    sqlite_with_rowid=False,
)

user_devices = sa.Table(
    "braze_user_devices",
    metadata,
    sa.Column("workspace_id", sa.Integer, primary_key=True),
    sa.Column("device_id", sa.String, primary_key=True),
    sa.Column("user_id", sa.BigInteger, nullable=False, index=True),
    sqlite_with_rowid=False,
)

cohorts = sa.Table(
    "braze_cohorts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("workspace_id", sa.ForeignKey("braze_workspaces.id"), nullable=False),
    sa.Column("partner_id", sa.ForeignKey("braze_partners.id"), nullable=False),
    sa.Column("cohort_id", sa.String, nullable=False),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("created_at", sa.String, nullable=False),
    sa.Column("updated_at", sa.String, nullable=False),
    sa.Column("locked", sa.Boolean, nullable=False, default=False),
    # Identifiers received and matched, by kind: the match rate Braze does not show.
    *(sa.Column(name, sa.BigInteger, nullable=False, default=0) for name in COUNTER_COLUMNS),
    sa.UniqueConstraint("workspace_id", "cohort_id", name="uq_braze_cohorts_cohort_id"),
)

cohort_members = sa.Table(
    "braze_cohort_members",
    metadata,
    sa.Column("cohort_pk", sa.Integer, primary_key=True),
    # No index on user_id alone: it would double the cost of every import.
    # Per-user questions go through the workspace's cohorts and this key.
    sa.Column("user_id", sa.BigInteger, primary_key=True),
    sqlite_with_rowid=False,
)

segments = sa.Table(
    "braze_segments",
    metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("workspace_id", sa.ForeignKey("braze_workspaces.id"), nullable=False),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("filter", sa.Text, nullable=False),
    sa.Column("created_at", sa.String, nullable=False),
    sa.Column("updated_at", sa.String, nullable=False),
    sa.UniqueConstraint("workspace_id", "name", name="uq_braze_segments_name"),
)


class StoreBusy(CohortsyncError):
    """A write waited longer than the busy timeout for the store's write lock."""


# SQLite read connections kept open: more than the requests the service runs at once
# (a connection opened past the pool starts with a cold page cache and is closed after).
SQLITE_READ_POOL_SIZE = 16

# One lock per SQLite file, shared by every Store of this process on that file.
_sqlite_write_locks: dict[str, threading.Lock] = {}
_sqlite_write_locks_guard = threading.Lock()


def utc_now() -> str:
    """The current time as the ISO-8601 UTC string every table stores."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


T = TypeVar("T")


class _Job(Generic[T]):
    """One caller's work in a group commit, and what came of it."""

    def __init__(self, work: Callable[[sa.Connection], T]) -> None:
        self.work = work
        self.finished = threading.Event()
        self.result: T | None = None
        self.error: BaseException | None = None

    def outcome(self) -> T:
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]


@dataclass
class Store:
    """An open store: the engine plus the write discipline of its dialect."""

    engine: sa.Engine
    url: str
    busy_timeout: float = 30.0
    _write_lock: threading.Lock | None = field(default=None, repr=False)
    # SQLite: the engine every write goes through, one connection under _write_lock.
    _write_engine: sa.Engine | None = field(default=None, repr=False)
    _queue: list[_Job[Any]] = field(default_factory=list, repr=False)
    _queue_guard: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def read(self) -> Iterator[sa.Connection]:
        """A read transaction (a consistent snapshot on both dialects)."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def write(self) -> Iterator[sa.Connection]:
        """A write transaction: committed on success, rolled back on any error."""
        if self._write_lock is None:
            with self.engine.connect() as conn, conn.begin():
                yield conn
            return
        if not self._write_lock.acquire(timeout=self.busy_timeout):
            raise StoreBusy(
                f"the store {self.url} stayed busy for {self.busy_timeout:g} s",
                hint="retry; a long write (such as a bulk load) holds it",
            )
        try:
            with self._writer().connect() as conn:
                immediate = conn.execution_options(sqlite_immediate=True)
                with immediate.begin():
                    yield immediate
        finally:
            self._write_lock.release()

    def write_grouped(self, work: Callable[[sa.Connection], T]) -> T:
        """Run ``work`` in a write transaction, possibly shared with concurrent callers.

        SQLite commits are the bottleneck of concurrent imports: each one
        appends every page it dirtied to the WAL. While one caller holds the
        write lock, the others queue their work; the next holder runs all the
        queued work in one transaction, each piece in its own SAVEPOINT so that
        one failing (a locked cohort, say) rolls back alone, and commits once.
        Every caller returns only after the commit that holds its work.
        PostgreSQL needs none of this: each call is its own transaction.
        """
        if self._write_lock is None:
            with self.write() as conn:
                return work(conn)
        job: _Job[T] = _Job(work)
        with self._queue_guard:
            self._queue.append(job)
        if not self._write_lock.acquire(timeout=self.busy_timeout):
            with self._queue_guard:
                queued = job in self._queue
                if queued:
                    self._queue.remove(job)
            if queued:
                raise StoreBusy(
                    f"the store {self.url} stayed busy for {self.busy_timeout:g} s",
                    hint="retry; a long write (such as a bulk load) holds it",
                )
            job.finished.wait()  # a holder took it and is committing it now
        else:
            try:
                if not job.finished.is_set():  # else an earlier holder committed it
                    with self._queue_guard:
                        batch, self._queue = self._queue, []
                    self._run_group(batch)
            finally:
                self._write_lock.release()
        return job.outcome()

    def _run_group(self, batch: list[_Job[Any]]) -> None:
        try:
            with self._writer().connect() as conn:
                immediate = conn.execution_options(sqlite_immediate=True)
                with immediate.begin():
                    for job in batch:
                        savepoint = immediate.begin_nested()
                        try:
                            job.result = job.work(immediate)
                        except Exception as error:
                            savepoint.rollback()
                            job.error = error
                        else:
                            savepoint.commit()
        except Exception as error:  # the commit itself failed: nobody's work landed
            for job in batch:
                job.error = job.error or error
        finally:
            for job in batch:
                job.finished.set()

    def insert_ignore(self, table: sa.Table) -> Any:
        """``INSERT ... ON CONFLICT DO NOTHING`` for this store's dialect."""
        if self.is_sqlite:
            return sqlite.insert(table).on_conflict_do_nothing()
        return postgresql.insert(table).on_conflict_do_nothing()

    def values_table(self, name: str, type_: sa.types.TypeEngine[Any]) -> sa.FromClause:
        """See :func:`values_table`."""
        return values_table(self.engine.dialect.name, name, type_)

    def values_param(self, values: Sequence[Any]) -> Any:
        """The value to bind to a :func:`values_table` parameter."""
        if self.is_sqlite:
            return orjson.dumps(list(values)).decode()
        return list(values)

    def _writer(self) -> sa.Engine:
        return self._write_engine or self.engine

    def close(self) -> None:
        self.engine.dispose()
        if self._write_engine is not None:
            self._write_engine.dispose()


def values_table(dialect: str, name: str, type_: sa.types.TypeEngine[Any]) -> sa.FromClause:
    """A one-column table (``value``) read from the single bound parameter ``name``.

    SQLite reads a JSON array with ``json_each``, PostgreSQL unnests an array
    (bind :meth:`Store.values_param`). A list of a thousand identifiers thus
    costs one parameter and one cached statement, not a thousand placeholders.
    Use it as ``column.in_(select(t.c.value))``: both planners then drive the
    column's index from the list.
    """
    if dialect == "sqlite":
        return sa.func.json_each(sa.bindparam(name, type_=sa.String)).table_valued(
            sa.column("value", type_)
        )
    array = sa.bindparam(name, type_=postgresql.ARRAY(type_))
    return sa.func.unnest(array).table_valued(sa.column("value", type_)).render_derived()


def allocate_ids(conn: sa.Connection, name: str, count: int) -> int:
    """Reserve ``count`` consecutive ids of the counter ``name``; return the first.

    The counter row stays locked until the transaction ends, so concurrent
    allocations (PostgreSQL) never overlap.
    """
    result = conn.execute(
        sa.update(id_counters)
        .where(id_counters.c.name == name)
        .values(next_value=id_counters.c.next_value + count)
        .returning(id_counters.c.next_value)
    ).scalar_one()
    return int(result) - count


def _normalise_url(db_url: str, *, create_folder: bool = True) -> sa.URL:
    try:
        url = make_url(db_url)
    except sa.exc.ArgumentError as error:
        raise ConfigError(
            f"cannot read the store URL {db_url!r}",
            hint="use sqlite:///PATH or postgresql://USER@HOST/DB",
        ) from error
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"unsupported store URL {db_url!r}",
            hint="use sqlite:///PATH or postgresql://USER@HOST/DB",
        )
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            raise ConfigError(
                f"the store {db_url!r} must be a file",
                hint="use sqlite:///PATH; the service and the admin commands share it",
            )
        if create_folder:
            Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    return url


def _sqlite_engines(
    url: sa.URL, busy_timeout: float
) -> tuple[sa.Engine, sa.Engine, threading.Lock]:
    """The read engine, the write engine (one connection) and the file's write lock.

    Writes hold the process's lock on the file, so one connection serves them
    all; it stays the only writer, so its page cache stays valid from one
    write to the next instead of re-reading every page another connection
    changed. Reads get a pool as large as the service's concurrency.
    """
    engine = _sqlite_engine(url, busy_timeout, pool_size=SQLITE_READ_POOL_SIZE)
    write_engine = _sqlite_engine(url, busy_timeout, pool_size=1)
    key = str(Path(url.database or "").expanduser().resolve())
    with _sqlite_write_locks_guard:
        lock = _sqlite_write_locks.setdefault(key, threading.Lock())
    return engine, write_engine, lock


def _sqlite_engine(url: sa.URL, busy_timeout: float, *, pool_size: int) -> sa.Engine:
    engine = sa.create_engine(
        url,
        pool_size=pool_size,
        max_overflow=0 if pool_size == 1 else 10,
        connect_args={"timeout": busy_timeout, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, emit BEGIN so writes can use IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # Lookups of a million users' identifiers stay in memory: the file is
        # mapped (shared by all connections) and each keeps a 64 MiB page cache.
        cursor.execute("PRAGMA mmap_size=1073741824")
        cursor.execute("PRAGMA cache_size=-65536")
        # Each import dirties hundreds of pages; checkpoint (and fsync) every
        # ~40 MiB of WAL rather than every 4 MiB. Lists from json_each sort in memory.
        cursor.execute("PRAGMA wal_autocheckpoint=10000")
        cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


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
    scripts=Path(__file__).with_name("migrations"),
    version_table=VERSION_TABLE,
    metadata=metadata,
    recognise=_recognise,
)


def store_status(db_url: str) -> dbschema.Status:
    """The store's schema revision, read without creating or changing anything."""
    url = _normalise_url(db_url, create_folder=False)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").expanduser().exists():
        return dbschema.no_database(STORE_SCHEMA)
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return dbschema.status(conn, STORE_SCHEMA)
    except sa.exc.DatabaseError as error:
        raise _open_error(db_url, error) from None
    finally:
        engine.dispose()


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
    url = _normalise_url(db_url)
    lock: threading.Lock | None = None
    write_engine: sa.Engine | None = None
    if url.get_backend_name() == "sqlite":
        engine, write_engine, lock = _sqlite_engines(url, busy_timeout)
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
