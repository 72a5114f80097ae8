"""An open store: its engines and the write discipline of each dialect.

One schema serves SQLite (the default, a local sandbox) and PostgreSQL (a shared
one). Both speak the same Core statements; only these things differ and they
live here:

* **Write serialisation.** SQLite has one writer per file, so every write runs
  under a process-wide lock per database file and starts with
  ``BEGIN IMMEDIATE`` (another process, such as the admin CLI, then waits on the
  busy timeout instead of failing on a lock upgrade). Concurrent cohort
  imports share one commit (:meth:`Store.write_grouped`). PostgreSQL serialises
  writes per cohort with ``SELECT ... FOR UPDATE`` (see :mod:`.cohort_queries`).
* **Lists as one parameter** (:func:`values_table`): ``json_each`` on SQLite,
  ``unnest`` of an array on PostgreSQL.
* **Insert-or-ignore**, through each dialect's ``ON CONFLICT DO NOTHING``.
* **Timeouts.** ``busy_timeout`` is SQLite's busy timeout and PostgreSQL's
  ``lock_timeout``: past it a write fails with ``OperationalError`` (or
  :class:`StoreBusy` while waiting for this process's own lock), which the
  service answers with 503 so that clients retry.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

from cohortsync.errors import CohortsyncError, ConfigError
from cohortsync.filemodes import prepare_sqlite_file


class StoreBusy(CohortsyncError):
    """A write waited longer than the busy timeout for the store's write lock."""


# SQLite read connections kept open: more than the requests the service runs at once
# (a connection opened past the pool starts with a cold page cache and is closed after).
SQLITE_READ_POOL_SIZE = 16

# One lock per SQLite file, shared by every Store of this process on that file.
_sqlite_write_locks: dict[str, threading.Lock] = {}
_sqlite_write_locks_guard = threading.Lock()


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
        one failing (a locked cohort, say) rolls back alone, and commits once
        (work alone in its group needs no savepoint: its failure rolls back
        the transaction).
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
                with immediate.begin() as transaction:
                    if len(batch) == 1:  # alone: its transaction is its savepoint
                        try:
                            batch[0].result = batch[0].work(immediate)
                        except Exception as error:
                            transaction.rollback()
                            batch[0].error = error
                        return
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


def normalise_url(db_url: str, *, create_folder: bool = True) -> sa.URL:
    """The store's URL, checked; ``create_folder`` prepares a SQLite file for use.

    That is, a missing file is created 0600 (its folder 0700) and an existing
    one loses its group and other bits (:func:`cohortsync.filemodes.prepare_sqlite_file`):
    the store keeps its keys in clear.
    """
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
            prepare_sqlite_file(Path(url.database).expanduser())
    return url


def sqlite_engines(url: sa.URL, busy_timeout: float) -> tuple[sa.Engine, sa.Engine, threading.Lock]:
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


# What SQLite and PostgreSQL say when a statement meets a table or column the
# store does not have: a schema that does not match the code, not a busy store.
_SCHEMA_FAILURES = ("no such table", "no such column", "has no column named")
_SCHEMA_SQLSTATES = ("42P01", "42703")  # undefined_table, undefined_column


def is_schema_error(error: sa.exc.DBAPIError) -> bool:
    """Whether ``error`` comes from a schema that does not match the code."""
    if getattr(error.orig, "sqlstate", None) in _SCHEMA_SQLSTATES:
        return True
    reason = str(error.orig).lower()
    return any(failure in reason for failure in _SCHEMA_FAILURES)
