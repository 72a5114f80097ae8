"""The tables of a ``spark+local://`` warehouse: Parquet directories that outlive the process.

Why not Spark's Hive metastore: pyspark ships Hive and an embedded Derby, but
Derby lets one process at a time open the metastore, and the scheduler and a
person at the console export at the same time. So the session keeps Spark's
in-memory catalog, and the tables live as files under
``$COHORTSYNC_HOME/spark/warehouse`` (Spark's ``spark.sql.warehouse.dir``)::

    warehouse/customers/CURRENT            the name of the live version: v-<id>
    warehouse/customers/v-<id>/*.parquet   the rows of that version
    warehouse/crm.db/users/...             table users of schema (database) crm

Every query first brings the session's catalog in line with these files
(:meth:`SparkTables.sync`): each table is registered as an external Parquet
table on its live version, so a table loaded by another process is there
for the next query, and a replaced table is read at its new version.

Why versions: a load writes a whole new version beside the live one, then
swaps ``CURRENT`` with one atomic rename. A failed or interrupted load leaves
the table as it was (its half-written version is removed), and a query
planned on the old version in another process keeps reading it: the version
a load replaces is kept until the next load, and older ones are removed.
An append's new version holds hard links to the live version's files plus a
file of the new rows, so it costs no copy. Loads of one table take a file
lock, so two appends cannot lose each other's rows.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

DEFAULT_DATABASE = "default"
POINTER = "CURRENT"
_VERSION = re.compile(r"v-[0-9a-f]{32}")
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")

# What this process's session has registered: "db.table" -> version directory.
_registered: dict[str, str] = {}


def spark_literal(text: str) -> str:
    """``text`` as a Spark SQL string literal (Spark reads backslash escapes in strings)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def quote_spark_identifier(name: str) -> str:
    """``name`` as a Spark identifier, in backticks."""
    return "`" + name.replace("`", "``") + "`"


class SparkTables:
    """The table directories under ``root`` (``$COHORTSYNC_HOME/spark/warehouse``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    # -- where things are ----------------------------------------------------------

    def table_dir(self, schema_name: str | None, name: str) -> Path:
        database = (schema_name or DEFAULT_DATABASE).lower()
        base = self.root if database == DEFAULT_DATABASE else self.root / f"{database}.db"
        return base / name.lower()

    def live_version(self, table_dir: Path) -> Path | None:
        """The live version directory of a table, or None when it has none."""
        try:
            version = (table_dir / POINTER).read_text(encoding="ascii").strip()
        except (FileNotFoundError, NotADirectoryError):
            return None
        path = table_dir / version
        return path if _VERSION.fullmatch(version) and path.is_dir() else None

    def found(self) -> dict[tuple[str, str], Path]:
        """Every table with a live version: (database, table) -> version directory."""
        tables: dict[tuple[str, str], Path] = {}
        if not self.root.is_dir():
            return tables
        for entry in sorted(self.root.iterdir()):
            if entry.name.endswith(".db") and entry.is_dir():
                database = entry.name.removesuffix(".db")
                if not _IDENTIFIER.fullmatch(database) or database == DEFAULT_DATABASE:
                    continue
                children = sorted(entry.iterdir())
            else:
                database, children = DEFAULT_DATABASE, [entry]
            for child in children:
                if _IDENTIFIER.fullmatch(child.name):
                    version = self.live_version(child)
                    if version is not None:
                        tables[(database, child.name)] = version
        return tables

    def names(self) -> list[str]:
        """Table names as queries write them: ``name``, or ``schema.name`` outside default."""
        return sorted(
            name if database == DEFAULT_DATABASE else f"{database}.{name}"
            for database, name in self.found()
        )

    # -- the session's catalog -----------------------------------------------------

    def sync(self, spark: Any) -> None:
        """Register every table on its live version in ``spark``'s catalog; drop the gone ones."""
        wanted = {
            f"{database}.{name}": (database, str(version))
            for (database, name), version in self.found().items()
        }
        for full in list(_registered):
            if full not in wanted:
                spark.sql(f"DROP TABLE IF EXISTS {_qualified(full)}")
                del _registered[full]
        for full, (database, version) in wanted.items():
            if _registered.get(full) == version:
                continue
            if database != DEFAULT_DATABASE:
                location = spark_literal(str(self.root / f"{database}.db"))
                spark.sql(
                    f"CREATE DATABASE IF NOT EXISTS {quote_spark_identifier(database)} "
                    f"LOCATION {location}"
                )
            spark.sql(f"DROP TABLE IF EXISTS {_qualified(full)}")
            spark.catalog.createTable(full, path=version, source="parquet")
            _registered[full] = version

    # -- writing versions ------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self, table_dir: Path) -> Iterator[None]:
        """Hold the table's load lock: one load of a table at a time, across processes."""
        table_dir.mkdir(parents=True, exist_ok=True)
        with (table_dir / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def new_version(self, table_dir: Path) -> Path:
        path = table_dir / f"v-{uuid.uuid4().hex}"
        path.mkdir()
        return path

    def link_files(self, source: Path, target: Path) -> None:
        """Hard-link the data files of version ``source`` into ``target`` (an append's base)."""
        for file in sorted(source.glob("*.parquet")):
            os.link(file, target / file.name)

    def existing_schema(self, version: Path) -> Any:
        """The Arrow schema of a version, read from one of its Parquet footers."""
        files = sorted(version.glob("*.parquet"))
        return pq.read_schema(files[0]) if files else None

    def swap(self, table_dir: Path, version: Path) -> None:
        """Make ``version`` live with one atomic rename; remove versions older than the last."""
        previous = self.live_version(table_dir)
        pointer = table_dir / f".{POINTER}.{uuid.uuid4().hex[:8]}"
        pointer.write_text(version.name + "\n", encoding="ascii")
        os.replace(pointer, table_dir / POINTER)
        keep = {version.name, previous.name if previous else ""}
        for entry in table_dir.iterdir():
            if _VERSION.fullmatch(entry.name) and entry.name not in keep:
                shutil.rmtree(entry, ignore_errors=True)

    def discard(self, version: Path) -> None:
        shutil.rmtree(version, ignore_errors=True)


def _qualified(full: str) -> str:
    database, name = full.split(".", 1)
    return f"spark_catalog.{quote_spark_identifier(database)}.{quote_spark_identifier(name)}"
