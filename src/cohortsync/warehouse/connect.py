"""Choosing the engine for a warehouse URL."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import unquote

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from cohortsync.errors import ConfigError
from cohortsync.settings import Settings
from cohortsync.warehouse.base import Engine
from cohortsync.warehouse.duckdb_engine import MEMORY, DuckDBEngine

DUCKDB_PREFIX = "duckdb:///"
# Spark: a local session, a standalone master, a Spark Connect server.
SPARK_PREFIXES = ("spark+local:", "spark:", "sc:")


def duckdb_path(url: str) -> str:
    """The file of a ``duckdb:///path`` URL (``duckdb:////abs`` or ``duckdb:///rel``).

    ``duckdb:///:memory:`` is an in-memory database, named on purpose;
    ``duckdb:///~/w.duckdb`` is in the user's home directory. A URL with no
    path (``duckdb://``, ``duckdb:///``) is refused: DuckDB would open an
    in-memory database and everything loaded into it would silently vanish.

    Raises:
        ConfigError: the URL is not ``duckdb:///...`` or names no file.
    """
    if url in (f"{DUCKDB_PREFIX}{MEMORY}", f"duckdb://{MEMORY}"):
        return MEMORY
    if url.split("?", 1)[0] in ("duckdb:", "duckdb:/", "duckdb://", "duckdb:///"):
        raise ConfigError(
            f"the warehouse URL {url!r} names no database file",
            hint="use duckdb:////absolute/path/file.duckdb, or leave --warehouse and "
            "COHORTSYNC_WAREHOUSE unset for $COHORTSYNC_HOME/warehouse.duckdb",
        )
    if not url.startswith(DUCKDB_PREFIX):
        raise ConfigError(
            f"invalid DuckDB warehouse URL {url!r}",
            hint="use duckdb:///relative/file.duckdb, duckdb:////absolute/file.duckdb "
            "or duckdb:///:memory:",
        )
    path = unquote(url.removeprefix(DUCKDB_PREFIX).split("?", 1)[0])
    return str(Path(path).expanduser()) if path.startswith("~") else path


def is_in_memory(url: str) -> bool:
    """Whether ``url`` names a database that lives only as long as its connection."""
    if url.startswith("duckdb:"):
        return duckdb_path(url) == MEMORY
    if url.startswith("sqlite"):
        try:
            return make_url(url).database in (None, "", MEMORY)
        except ArgumentError:
            return False
    return False


def require_stored_warehouse(url: str | None, use: str) -> str | None:
    """``url`` fit for ``use``, something whose data must outlive the command.

    A load into ``duckdb:///:memory:`` is gone when the command ends, and a
    saved query, parent or schedule pointing at one would run on an empty
    database every time: refused. A relative DuckDB path
    (``duckdb:///data/w.duckdb``) would name another file from every working
    directory the scheduler or a later command runs in, so it is returned
    made absolute, against today's working directory. One-off reads
    (``warehouse query``, ``export``) need none of this: they change nothing a
    later command relies on. ``None`` stands for the configured warehouse and
    passes.

    Raises:
        ConfigError: ``url`` is an in-memory database.
    """
    if url is None:
        return None
    if is_in_memory(url):
        raise ConfigError(
            f"{use} needs a stored warehouse, but {url} is in memory and would be empty "
            "again on the next command",
            hint="give a file, e.g. duckdb:////absolute/path/file.duckdb, or leave the "
            "warehouse unset for $COHORTSYNC_HOME/warehouse.duckdb",
        )
    if url.startswith("duckdb:"):
        path = Path(duckdb_path(url))
        if not path.is_absolute():
            query = url.partition("?")[2]
            return f"{DUCKDB_PREFIX}{path.resolve()}" + (f"?{query}" if query else "")
    return url


def open_engine(url: str | None = None, *, allow_files: Iterable[Path] | None = None) -> Engine:
    """The engine for ``url``; ``None`` means the configured warehouse.

    The configured warehouse is ``COHORTSYNC_WAREHOUSE`` or, by default, the
    embedded DuckDB file ``$COHORTSYNC_HOME/warehouse.duckdb``. ``duckdb:`` URLs
    open DuckDB; anything else is a SQLAlchemy URL (``postgresql://`` uses
    psycopg 3). ``spark+local://``, ``spark://host:port`` and ``sc://host:port``
    open Spark (:mod:`cohortsync.warehouse.spark_engine`). Connections open
    lazily, on the first query or load.

    ``allow_files`` are the host directories DuckDB queries may read
    (``read_csv``, ``read_parquet``...); ``None`` means the setting
    ``COHORTSYNC_ALLOW_FILES``, and by default queries reach no file at all.

    Raises:
        ConfigError: the URL has no scheme or names a database without a driver.
    """
    target = url or Settings().warehouse_url
    if target.startswith("duckdb:"):
        directories = Settings().allowed_directories if allow_files is None else allow_files
        return DuckDBEngine(target, duckdb_path(target), allow_files=directories)
    if target.startswith(SPARK_PREFIXES):
        # Imported here: pyspark is loaded only when a Spark warehouse is used.
        from cohortsync.warehouse.spark_engine import SparkEngine

        return SparkEngine(target, Settings().home_dir)
    if "://" not in target:
        raise ConfigError(
            f"invalid warehouse URL {target!r}: it has no scheme",
            hint="use duckdb:///path/to/file.duckdb or postgresql://user@host/db",
        )
    try:
        make_url(target)
    except (ArgumentError, ValueError) as error:
        raise ConfigError(
            f"cannot read the warehouse URL {display_url(target)!r}: {error}",
            hint="use postgresql://user:password@host:5432/db, with a numeric port and "
            "brackets closed around an IPv6 host",
        ) from None
    # Imported here: the embedded warehouse never pays for sqlglot and the drivers.
    from cohortsync.warehouse.sqlalchemy_engine import SQLAlchemyEngine

    return SQLAlchemyEngine(target)


def display_url(url: str) -> str:
    """``url`` safe to print: a password in it is masked."""
    if url.startswith("duckdb:"):
        return url
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        # Unparseable: mask whatever sits between "user:" and "@" all the same.
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)
