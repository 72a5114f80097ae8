"""Fixtures of the audience suite: a customers table in the home's DuckDB warehouse, an auth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from catalog_helpers import save_home_auth
from support import CliResult, run_cli

INJECTION = "x' OR '1'='1"

CUSTOMERS_DDL = (
    "CREATE TABLE customers (customer_id VARCHAR, email VARCHAR, device_id VARCHAR, "
    "country VARCHAR, age INTEGER, member_no BIGINT, nickname VARCHAR)"
)
CUSTOMERS = [
    ("c1", "ana@x.io", "d1", "FR", 25, 1001, INJECTION),
    ("c2", "bob@x.io", "d2", "FR", 40, 1002, "bobby"),
    ("c3", "cy@y.io", "d3", "BE", 18, 1003, "x"),
    ("c4", None, "d4", "DE", 30, 1004, None),
    ("c5", "eve@x.io", None, "US", None, 1005, "x' OR"),
    ("c6", "fay@x.io", "d6", "FR", 33, 1006, "1'='1"),
]


def fill_warehouse(path: Path, rows: list[tuple[object, ...]] = CUSTOMERS) -> None:
    """Write the customers table into a DuckDB file (replacing it), then close the file."""
    with duckdb.connect(str(path)) as conn:
        conn.execute("DROP TABLE IF EXISTS customers")
        conn.execute(CUSTOMERS_DDL)
        conn.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?, ?)", rows)


@pytest.fixture
def warehouse(home: Path) -> Path:
    """The home's embedded warehouse file, holding ``customers``."""
    path = home / "warehouse.duckdb"
    fill_warehouse(path)
    return path


@pytest.fixture
def auth(home: Path) -> str:
    """A saved authentication named ``sandbox`` (its endpoint is not contacted)."""
    return save_home_auth("sandbox", "http://127.0.0.1:9", "data-import-key-0001")


def cli(*args: str, code: int = 0) -> CliResult:
    """Run ``cohortsync ARGS`` as a user would, on a wide terminal; it must exit ``code``."""
    return run_cli(*args, env={"COLUMNS": "200"}, timeout=60, expect=code)


def cli_json(*args: str) -> Any:
    return cli(*args, "--json").json()
