"""What only the SQLAlchemy engine does: PostgreSQL types, COPY loads, other databases."""

from __future__ import annotations

import gzip
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cohortsync.errors import SourceError
from cohortsync.warehouse import open_engine
from cohortsync.warehouse.sqlalchemy_engine import SQLAlchemyEngine, driver_url


def test_plain_postgresql_urls_use_psycopg_3() -> None:
    assert driver_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert driver_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert driver_url("postgresql+psycopg://u@h/db").drivername == "postgresql+psycopg"


@pytest.mark.postgres
def test_postgres_types_map_to_arrow(postgres_warehouse_url: str) -> None:
    sql = """
        SELECT 1::int2 AS small, 2::int4 AS medium, 3::int8 AS big, 1.5::float4 AS real4,
               2.5::float8 AS double8, 12.34::numeric(6, 2) AS money, 7::numeric AS unbounded,
               'x'::varchar(3) AS code, 'y'::char(2) AS fixed, true AS flag,
               '2024-01-02'::date AS day, '2024-01-02 03:04:05'::timestamp AS at,
               '2024-01-02 03:04:05+02'::timestamptz AS at_tz, '{"a": [1]}'::jsonb AS doc,
               '6b2c3d3e-1f7a-4c1e-9a55-0f0f5a0e9a11'::uuid AS id, ARRAY[1, 2] AS list
    """
    with open_engine(postgres_warehouse_url) as engine:
        reader = engine.stream(sql)
        assert dict(zip(reader.schema.names, map(str, reader.schema.types), strict=True)) == {
            "small": "int16",
            "medium": "int32",
            "big": "int64",
            "real4": "float",
            "double8": "double",
            "money": "decimal128(6, 2)",
            "unbounded": "string",
            "code": "string",
            "fixed": "string",
            "flag": "bool",
            "day": "date32[day]",
            "at": "timestamp[us]",
            "at_tz": "timestamp[us, tz=UTC]",
            "doc": "string",
            "id": "string",
            "list": "list<item: int32>",
        }
        row = reader.read_all().to_pylist()[0]
    assert row["unbounded"] == "7"
    assert row["doc"] == '{"a": [1]}'
    assert row["id"] == "6b2c3d3e-1f7a-4c1e-9a55-0f0f5a0e9a11"
    assert row["at_tz"].isoformat() == "2024-01-02T01:04:05+00:00"
    assert row["fixed"] == "y "
    assert row["list"] == [1, 2]


@pytest.mark.postgres
def test_arrays_are_lists_in_results_and_table_schemas(postgres_warehouse_url: str) -> None:
    with psycopg.connect(postgres_warehouse_url, autocommit=True) as connection:
        connection.execute("CREATE TABLE tagged (tags text[], ns int8[], ids uuid[])")
        connection.execute(
            "INSERT INTO tagged VALUES (ARRAY['a', 'b'], ARRAY[1, NULL], "
            "ARRAY['6b2c3d3e-1f7a-4c1e-9a55-0f0f5a0e9a11'::uuid]), (NULL, NULL, NULL)"
        )
    with open_engine(postgres_warehouse_url) as engine:
        reader = engine.stream("SELECT * FROM tagged")
        expected = pa.schema(
            [
                ("tags", pa.list_(pa.string())),
                ("ns", pa.list_(pa.int64())),
                ("ids", pa.list_(pa.string())),
            ]
        )
        assert reader.schema == expected
        assert engine.table_schema("tagged") == expected
        assert reader.read_all().to_pylist() == [
            {"tags": ["a", "b"], "ns": [1, None], "ids": ["6b2c3d3e-1f7a-4c1e-9a55-0f0f5a0e9a11"]},
            {"tags": None, "ns": None, "ids": None},
        ]


@pytest.mark.postgres
def test_failed_copy_half_way_restores_the_old_table(
    postgres_warehouse_url: str, tmp_path: Path
) -> None:
    """The second row group cannot be copied (NUL in text): DROP/CREATE/COPY roll back."""
    path = tmp_path / "two_groups.parquet"
    with pq.ParquetWriter(path, pa.schema([("user_ids", pa.string())])) as writer:
        writer.write_table(pa.table({"user_ids": ["fine"] * 10}))
        writer.write_table(pa.table({"user_ids": ["bad\x00value"]}))
    original = tmp_path / "original.parquet"
    pq.write_table(pa.table({"user_ids": ["a"], "kept": [1]}), original)
    with open_engine(postgres_warehouse_url) as engine:
        engine.load("cohort", original)

        with pytest.raises(SourceError, match="the table was left as it was"):
            engine.load("cohort", path)

        assert engine.table_schema("cohort").names == ["user_ids", "kept"]
        assert engine.count("SELECT * FROM cohort") == 1


@pytest.mark.postgres
def test_gzipped_csv_and_schema_qualified_tables(
    postgres_warehouse_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "users.csv.gz"
    path.write_bytes(gzip.compress(b"user_ids,age\nu1,3\nu2,\n"))
    schema = postgres_warehouse_url.rsplit("%3D", 1)[1]
    with open_engine(postgres_warehouse_url) as engine:
        assert engine.load(f"{schema}.users", path) == 2
        assert engine.table_schema(f"{schema}.users") == pa.schema(
            [("user_ids", pa.string()), ("age", pa.int64())]
        )
        assert engine.count("SELECT * FROM users WHERE age IS NULL") == 1


@pytest.mark.postgres
def test_queries_stream_on_a_server_side_cursor(postgres_url: str) -> None:
    """While a reader is open, PostgreSQL holds a cursor for it: rows stay on the server."""
    with open_engine(postgres_url) as engine:
        reader = engine.stream("SELECT g AS id FROM generate_series(1, 100000) AS g", batch_size=10)
        assert reader.read_next_batch().num_rows == 10
        with psycopg.connect(postgres_url) as watcher:
            cursors = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND state = 'idle in transaction' AND query LIKE 'FETCH FORWARD %'"
            ).fetchone()
        assert cursors is not None and cursors[0] == 1
        assert reader.read_all().num_rows == 99_990


def test_any_sqlalchemy_database_works(tmp_path: Path) -> None:
    """SQLite stands in for the databases without COPY: batched INSERT loads."""
    path = tmp_path / "users.parquet"
    pq.write_table(pa.table({"user_ids": ["a", "b", "c"], "n": [1, 2, 3]}), path)
    with open_engine(f"sqlite:///{tmp_path / 'w.sqlite'}") as engine:
        assert isinstance(engine, SQLAlchemyEngine)
        assert engine.load("users", path) == 3
        assert engine.load("users", path, mode="append") == 3
        reader = engine.stream("SELECT user_ids FROM users WHERE n > ? ORDER BY 1", [1])
        assert reader.schema == pa.schema([("user_ids", pa.string())])
        assert reader.read_all().column(0).to_pylist() == ["b", "b", "c", "c"]
        assert engine.tables() == ["users"]
        assert engine.table_schema("users") == pa.schema(
            [("user_ids", pa.string()), ("n", pa.int64())]
        )


def test_unreachable_server_is_a_clear_error() -> None:
    with (
        open_engine("postgresql://nobody:secret@127.0.0.1:1/none") as engine,
        pytest.raises(SourceError, match="cannot connect to the warehouse") as raised,
    ):
        engine.stream("SELECT 1")
    assert "secret" not in str(raised.value)
