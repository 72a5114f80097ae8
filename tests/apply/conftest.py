"""Fixtures of the ``apply`` tests: a workbench with a customers table and no auth yet."""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb
import pytest

# The workbench helpers are shared with the saved-query tests.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "queries"))


@pytest.fixture
def customers(home: Path) -> Path:
    """The home's DuckDB warehouse with a small customers table."""
    path = home / "warehouse.duckdb"
    with duckdb.connect(str(path)) as connection:
        connection.execute(
            "CREATE TABLE customers AS SELECT 'c' || i AS external_id, "
            "CASE WHEN i % 3 = 0 THEN 'gold' ELSE 'silver' END AS tier, "
            "'c' || i || '@example.com' AS email, i AS score FROM range(1, 31) t(i)"
        )
    return path
