"""What each warehouse engine can do beyond streaming a query, decided from its URL.

A mirror export diffs the result against the snapshot of its last sync. Where
the engine can hold the snapshot and run the diff itself, only the entries and
exits leave the warehouse; elsewhere the whole result streams to cohortsync
and the diff runs in a local DuckDB (:mod:`cohortsync.export.mirror`). The
flags are read from the URL alone, before any connection is opened, so a
command can say where its diff will run without touching the warehouse.
"""

from __future__ import annotations

from dataclasses import dataclass

from cohortsync.errors import ConfigError

MIRROR_DIFF_MODES = ("auto", "local")
DEFAULT_SNAPSHOT_SCHEMA = "cohortsync"


@dataclass(frozen=True)
class EngineCapabilities:
    """Capability flags of one engine.

    Attributes:
        name: the engine, as messages and reports name it.
        diffs_in_warehouse: a mirror can keep its snapshot in warehouse tables
            and diff there, sending only the changes back.
        transactional_ddl: ``CREATE TABLE`` commits or rolls back with the
            transaction around it (a snapshot appears whole or not at all).
        temp_tables: session tables that need no right on any schema.
    """

    name: str
    diffs_in_warehouse: bool = False
    transactional_ddl: bool = False
    temp_tables: bool = False


DUCKDB = EngineCapabilities("duckdb")
POSTGRESQL = EngineCapabilities(
    "postgresql", diffs_in_warehouse=True, transactional_ddl=True, temp_tables=True
)
# Spark with the session in this process (spark+local://, spark://): snapshot tables are
# Parquet tables of the home's warehouse. Spark Connect (sc://) reads its server's tables
# and cannot read the home's files: its mirrors diff in cohortsync.
SPARK = EngineCapabilities("spark", diffs_in_warehouse=True)
SPARK_CONNECT = EngineCapabilities("spark")
OTHER_SQL = EngineCapabilities("sql")


def capabilities_of(url: str) -> EngineCapabilities:
    """The capabilities of the engine a warehouse URL opens."""
    scheme = url.split(":", 1)[0].lower()
    if scheme == "duckdb":
        return DUCKDB
    if scheme.split("+", 1)[0] in ("postgresql", "postgres"):
        return POSTGRESQL
    if scheme == "sc":
        return SPARK_CONNECT
    if scheme == "spark" or scheme.startswith("spark+"):
        return SPARK
    return OTHER_SQL


def check_mirror_diff_mode(mode: str) -> str:
    """``COHORTSYNC_MIRROR_DIFF``: ``auto`` (in the warehouse where it can) or ``local``.

    Raises:
        ConfigError: another value.
    """
    text = mode.strip().lower()
    if text not in MIRROR_DIFF_MODES:
        raise ConfigError(
            f"COHORTSYNC_MIRROR_DIFF is {mode!r}",
            hint="set it to auto (diff inside PostgreSQL or Spark) or local (diff in cohortsync)",
        )
    return text


def check_snapshot_schema(schema: str) -> str:
    """``COHORTSYNC_SNAPSHOT_SCHEMA``: a plain schema name for the mirror's snapshot tables.

    Raises:
        ConfigError: empty, longer than PostgreSQL's 63 bytes, or not a plain name.
    """
    name = schema.strip()
    plain = name.replace("_", "a").isalnum() and name.isascii() and not name[:1].isdigit()
    if not name or len(name) > 63 or not plain:
        raise ConfigError(
            f"COHORTSYNC_SNAPSHOT_SCHEMA is {schema!r}, not a plain schema name",
            hint="use letters, digits and underscores, e.g. cohortsync",
        )
    return name.lower()
