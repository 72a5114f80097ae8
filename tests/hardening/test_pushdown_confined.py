"""The export's pushdown runs the user's SQL in the run's staging database: confined there.

The engine checks and binds a query before the pushdown runs it; these tests
take that first wall away and call the staging database directly, to show the
second one: it reaches the warehouse and the run's own directory, nothing else.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from cohortsync.export.staging import Staging


@pytest.fixture
def warehouse_file(tmp_path: Path) -> Path:
    path = tmp_path / "warehouse" / "warehouse.duckdb"
    path.parent.mkdir()
    with duckdb.connect(str(path)) as connection:
        connection.execute("CREATE TABLE t AS SELECT 'u' || i AS user_ids FROM range(3) r(i)")
    return path


def test_the_pushdown_reads_the_warehouse(tmp_path: Path, warehouse_file: Path) -> None:
    with Staging(tmp_path / "run") as staging:
        schema = staging.attach_warehouse(str(warehouse_file), "SELECT user_ids FROM t")
    assert schema is not None
    assert schema.names == ["user_ids"]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT column0 AS user_ids FROM read_csv('{secret}', header = false)",
        "SELECT content AS user_ids FROM read_text('{secret}')",
    ],
)
def test_the_pushdown_reaches_no_host_file(tmp_path: Path, warehouse_file: Path, sql: str) -> None:
    secret = tmp_path / "elsewhere" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("hidden-value\n")
    with (
        Staging(tmp_path / "run") as staging,
        pytest.raises(duckdb.PermissionException, match="disabled by configuration"),
    ):
        staging.attach_warehouse(str(warehouse_file), sql.format(secret=secret))


def test_the_pushdown_writes_no_host_file(tmp_path: Path, warehouse_file: Path) -> None:
    target = tmp_path / "elsewhere.csv"
    with Staging(tmp_path / "run") as staging:
        staging.attach_warehouse(str(warehouse_file), "SELECT user_ids FROM t")
        with pytest.raises(duckdb.PermissionException, match="disabled by configuration"):
            staging.connection.execute(f"COPY (SELECT 1) TO '{target}'")
    assert not target.exists()
