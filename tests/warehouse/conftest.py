"""Fixtures of the warehouse suite: one URL per engine, and small data files.

``warehouse_url`` runs a test once on a DuckDB file under ``tmp_path`` and once
on the real PostgreSQL server, in a schema of its own (its ``search_path``), so
tests can reuse table names without seeing each other's tables.
"""

from __future__ import annotations

import datetime
import decimal
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cohortsync.warehouse import Engine, open_engine


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouse_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    return request.getfixturevalue("postgres_warehouse_url")


@pytest.fixture
def postgres_warehouse_url(postgres_url: str) -> str:
    """The session's PostgreSQL database, seen through a fresh schema of this test."""
    import psycopg

    schema = f"w_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    return f"{postgres_url}?options=-csearch_path%3D{schema}"


@pytest.fixture
def engine(warehouse_url: str) -> Iterator[Engine]:
    with open_engine(warehouse_url) as opened:
        yield opened


CUSTOMERS = pa.table(
    {
        "external_id": ["TDCohort1", "TDCohort2", "TDCohort3"],
        "email": ["TDCohort1@gmail.com", None, "TDCohort3@gmail.com"],
        "age": pa.array([31, 45, None], pa.int64()),
        "score": [0.5, 1.25, -3.0],
        "active": [True, False, None],
        "signed_up": pa.array(
            [datetime.date(2024, 1, 2), datetime.date(2024, 2, 3), None], pa.date32()
        ),
        "last_seen": pa.array(
            [datetime.datetime(2024, 5, 1, 12, 30), None, datetime.datetime(2024, 6, 1, 8, 0)],
            pa.timestamp("us"),
        ),
        "balance": pa.array(
            [decimal.Decimal("10.50"), decimal.Decimal("-2.25"), None], pa.decimal128(10, 2)
        ),
    }
)


def write_file(table: pa.Table, path: Path) -> Path:
    """``table`` written as CSV, Parquet or NDJSON, by ``path``'s extension."""
    if path.suffix == ".parquet":
        pq.write_table(table, path)
    elif path.suffix == ".csv":
        import pyarrow.csv as pa_csv

        pa_csv.write_csv(table, path)
    else:
        with path.open("w") as out:
            for row in table.to_pylist():
                out.write(json.dumps(row, default=str) + "\n")
    return path


@pytest.fixture
def customers_parquet(tmp_path: Path) -> Path:
    return write_file(CUSTOMERS, tmp_path / "customers.parquet")


@pytest.fixture(scope="session")
def spark_session(tmp_path_factory: pytest.TempPathFactory) -> object:
    """The one Spark session of the test run (a JVM takes seconds to start).

    Every Spark engine of this process shares it, each on its own home's
    tables. Keep the Spark tests in one module, so that with ``--dist
    loadscope`` one worker alone starts Spark.
    """
    from cohortsync.warehouse.spark_session import classic_session, spark_available
    from services import missing_service

    reason = spark_available()
    if reason is not None:
        missing_service(f"the Spark warehouse cannot run: {reason}")
    return classic_session("spark+local://", "local[*]", tmp_path_factory.mktemp("spark"))
