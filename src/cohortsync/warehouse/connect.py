"""Choosing the engine for a warehouse URL."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from urllib.parse import unquote

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from cohortsync.errors import ConfigError
from cohortsync.settings import Settings
from cohortsync.warehouse.base import Engine
from cohortsync.warehouse.duckdb_engine import MEMORY, DuckDBEngine
from cohortsync.warehouse.sqlalchemy_engine import SQLAlchemyEngine

DUCKDB_PREFIX = "duckdb:///"


def duckdb_path(url: str) -> str:
    """The file of a ``duckdb:///path`` URL (``duckdb:////abs`` or ``duckdb:///rel``).

    ``duckdb:///:memory:`` and ``duckdb://`` are an in-memory database;
    ``duckdb:///~/w.duckdb`` is in the user's home directory.
    """
    if url in ("duckdb://", "duckdb:///", f"{DUCKDB_PREFIX}{MEMORY}", f"duckdb://{MEMORY}"):
        return MEMORY
    if not url.startswith(DUCKDB_PREFIX):
        raise ConfigError(
            f"invalid DuckDB warehouse URL {url!r}",
            hint="use duckdb:///relative/file.duckdb, duckdb:////absolute/file.duckdb "
            "or duckdb:///:memory:",
        )
    path = unquote(url.removeprefix(DUCKDB_PREFIX).split("?", 1)[0])
    return str(Path(path).expanduser()) if path.startswith("~") else path


def open_engine(url: str | None = None, *, allow_files: Iterable[Path] | None = None) -> Engine:
    """The engine for ``url``; ``None`` means the configured warehouse.

    The configured warehouse is ``COHORTSYNC_WAREHOUSE`` or, by default, the
    embedded DuckDB file ``$COHORTSYNC_HOME/warehouse.duckdb``. ``duckdb:`` URLs
    open DuckDB; anything else is a SQLAlchemy URL (``postgresql://`` uses
    psycopg 3). Connections open lazily, on the first query or load.

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
    if "://" not in target:
        raise ConfigError(
            f"invalid warehouse URL {target!r}: it has no scheme",
            hint="use duckdb:///path/to/file.duckdb or postgresql://user@host/db",
        )
    return SQLAlchemyEngine(target)


def display_url(url: str) -> str:
    """``url`` safe to print: a password in it is masked."""
    if url.startswith("duckdb:"):
        return url
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url
