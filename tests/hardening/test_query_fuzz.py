"""Fuzzing the query path: no statement, however written, changes the warehouse or the host.

Hypothesis builds SQL from statements of every kind (DDL, DML, COPY, ATTACH,
PRAGMA, SET, INSTALL/LOAD, EXPORT DATABASE, CALL, transactions, reads of
files), several per query, with comments hiding a ``;``, string literals
holding one, mixed case and leading parentheses. Through the engine API each
must either run (read-only) or be refused with a :class:`SourceError` or
:class:`ConfigError`, and after each one the warehouse's tables and a watched
host directory are exactly as before. The DuckDB engine even allows the
watched directory (``allow_files``), so reading it is fine but writing to it
must stay impossible.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cohortsync.errors import ConfigError, SourceError
from cohortsync.warehouse import Engine, open_engine

from .conftest import warehouse_state

# "@@" stands for the watched directory; it survives the changes of case.
DUCKDB_STATEMENTS = [
    # reads, which may run
    "SELECT * FROM keep",
    "FROM keep SELECT answer",
    "VALUES (1), (2)",
    "TABLE keep",
    "DESCRIBE keep",
    "SUMMARIZE keep",
    "SHOW TABLES",
    "EXPLAIN SELECT * FROM keep",
    "SELECT ';' AS s, 'a;b' AS t",
    "SELECT 1 /* ; DROP TABLE keep */",
    "SELECT 1 -- ; DROP TABLE keep\n",
    "SELECT * FROM read_csv('@@/in.csv')",
    "SELECT * FROM '@@/in.csv'",
    "SELECT * FROM glob('@@/*')",
    "SELECT current_setting('enable_external_access')",
    # DDL
    "CREATE TABLE made AS SELECT 1 AS x",
    "CREATE OR REPLACE TABLE keep AS SELECT 0 AS answer",
    "DROP TABLE keep",
    "ALTER TABLE keep ADD COLUMN extra INT",
    "CREATE VIEW v AS SELECT 1",
    "CREATE MACRO m(a) AS a",
    "CREATE TEMP TABLE scratch AS SELECT 1",
    "CREATE SECRET (TYPE s3)",
    # DML
    "INSERT INTO keep VALUES (1)",
    "UPDATE keep SET answer = 0",
    "DELETE FROM keep",
    "TRUNCATE keep",
    "WITH d AS (DELETE FROM keep RETURNING *) SELECT * FROM d",
    "SELECT * FROM (WITH i AS (INSERT INTO keep VALUES (7) RETURNING *) SELECT * FROM i)",
    "EXPLAIN ANALYZE DELETE FROM keep",
    # files, databases, extensions
    "COPY keep TO '@@/out.csv'",
    "COPY (SELECT 1) TO '@@/out.parquet' (FORMAT parquet)",
    "COPY keep FROM '@@/in.csv'",
    "EXPORT DATABASE '@@/dump'",
    "IMPORT DATABASE '@@/dump'",
    "ATTACH '@@/other.duckdb' AS other",
    "ATTACH ':memory:' AS scratch",
    "DETACH other",
    "USE memory",
    "INSTALL httpfs",
    "LOAD httpfs",
    "FORCE INSTALL httpfs",
    # settings, pragmas, calls, transactions
    "PRAGMA table_info('keep')",
    "PRAGMA enable_profiling",
    "SET enable_external_access = true",
    "SET allowed_directories = ['/']",
    "RESET threads",
    "SET VARIABLE x = 1",
    "CALL pragma_version()",
    "CHECKPOINT",
    "VACUUM",
    "ANALYZE",
    "BEGIN",
    "COMMIT",
    "PREPARE p AS DELETE FROM keep",
    "EXECUTE p",
]

POSTGRES_STATEMENTS = [
    "SELECT * FROM keep",
    "VALUES (1), (2)",
    "TABLE keep",
    "SELECT ';' AS s, $$a;b$$ AS t",
    "SELECT 1 /* ; DROP TABLE keep */",
    "SELECT 1 -- ; DROP TABLE keep\n",
    "SELECT sneaky()",
    "SELECT * FROM keep WHERE sneaky() = 1",
    "SELECT set_config('transaction_read_only', 'off', true)",
    "SELECT * FROM keep FOR UPDATE",
    "SELECT * INTO made FROM keep",
    "WITH d AS (DELETE FROM keep RETURNING *) SELECT * FROM d",
    "CREATE TABLE made AS SELECT 1 AS x",
    "DROP TABLE keep",
    "ALTER TABLE keep ADD COLUMN extra int",
    "INSERT INTO keep VALUES (1)",
    "UPDATE keep SET answer = 0",
    "DELETE FROM keep",
    "TRUNCATE keep",
    "COPY keep TO '@@/out.csv'",
    "COPY keep FROM '@@/in.csv'",
    "SET transaction_read_only = off",
    "SET search_path = public",
    "BEGIN",
    "COMMIT",
    "DO $$ BEGIN DELETE FROM keep; END $$",
    "CALL p()",
    "VACUUM",
    "LISTEN x",
    "EXPLAIN ANALYZE DELETE FROM keep",
    "PREPARE p AS DELETE FROM keep",
]

SEPARATORS = [";", "; ", ";\n", " ;; ", "; /* ; */ ", ";\n-- ;\n"]
TAILS = ["", ";", "; -- ;", "\n/* ; */", ";;"]


@st.composite
def statement(draw: st.DrawFn, kinds: list[str]) -> str:
    """One statement, perhaps in mixed case and in parentheses."""
    text = draw(st.sampled_from(kinds))
    if draw(st.booleans()):
        flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
        text = "".join(c.swapcase() if flip else c for c, flip in zip(text, flips, strict=True))
    depth = draw(st.integers(min_value=0, max_value=2))
    return "(" * depth + text + ")" * depth


@st.composite
def query(draw: st.DrawFn, kinds: list[str], directory: Path) -> str:
    """One to three statements, joined by ``;`` in its many spellings."""
    parts = draw(st.lists(statement(kinds), min_size=1, max_size=3))
    separators = [draw(st.sampled_from(SEPARATORS)) for _ in parts[1:]]
    text = parts[0] + "".join(sep + part for sep, part in zip(separators, parts[1:], strict=True))
    text += draw(st.sampled_from(TAILS))
    return text.replace("@@", str(directory))


def listing(directory: Path) -> dict[str, bytes]:
    return {str(path): path.read_bytes() for path in directory.rglob("*") if path.is_file()}


def run_or_refuse(engine: Engine, sql: str) -> None:
    """Run ``sql`` to its end, or accept a refusal; any other exception fails the test."""
    try:
        engine.stream(sql).read_all()
    except (SourceError, ConfigError) as error:
        assert "\n" not in str(error), str(error)


@pytest.fixture(scope="module")
def watched(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("watched")
    (directory / "in.csv").write_text("answer\n5\n")
    return directory


@pytest.fixture(scope="module")
def duckdb_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fuzz") / "warehouse.duckdb"
    with duckdb.connect(str(path)) as connection:
        connection.execute("CREATE TABLE keep AS SELECT 42 AS answer")
        connection.execute("CREATE TABLE t AS SELECT 'u' || range AS user_ids FROM range(3)")
    return path


@pytest.fixture(scope="module")
def duckdb_engine(duckdb_file: Path, watched: Path) -> Iterator[Engine]:
    with open_engine(f"duckdb:///{duckdb_file}", allow_files=[watched]) as engine:
        yield engine


def _duckdb_tables(engine: Engine) -> Any:
    reader = engine.stream(
        "SELECT database_name, schema_name, table_name, estimated_size, column_count "
        "FROM duckdb_tables() ORDER BY ALL"
    )
    return reader.read_all().to_pylist(), engine.stream("FROM keep").read_all().to_pylist()


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_no_duckdb_query_writes_or_reaches_the_host(
    data: st.DataObject, duckdb_engine: Engine, duckdb_file: Path, watched: Path
) -> None:
    tables, files = _duckdb_tables(duckdb_engine), listing(watched)
    sql = data.draw(query(DUCKDB_STATEMENTS, watched), label="sql")

    run_or_refuse(duckdb_engine, sql)

    assert _duckdb_tables(duckdb_engine) == tables
    assert listing(watched) == files


def test_the_duckdb_file_is_intact_after_fuzzing(
    duckdb_engine: Engine, duckdb_file: Path, watched: Path
) -> None:
    # Runs after the fuzz test in this module: the file itself, read afresh.
    duckdb_engine.close()
    assert warehouse_state(duckdb_file) == {
        "main.keep": ([("answer", "INTEGER")], [(42,)]),
        "main.t": ([("user_ids", "VARCHAR")], [("u0",), ("u1",), ("u2",)]),
    }
    assert sorted(path.name for path in watched.iterdir()) == ["in.csv"]


@pytest.fixture(scope="module")
def postgres_warehouse(postgres_url: str) -> str:
    schema = f"f_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
        connection.execute(f'SET search_path TO "{schema}"')
        connection.execute("CREATE TABLE keep (answer int); INSERT INTO keep VALUES (42)")
        connection.execute(
            "CREATE FUNCTION sneaky() RETURNS int LANGUAGE sql VOLATILE "
            "AS $$ INSERT INTO keep VALUES (0) RETURNING 1 $$"
        )
        connection.execute("CREATE PROCEDURE p() LANGUAGE sql AS $$ DELETE FROM keep $$")
    return f"{postgres_url}?options=-csearch_path%3D{schema}"


@pytest.fixture(scope="module")
def postgres_engine(postgres_warehouse: str) -> Iterator[Engine]:
    with open_engine(postgres_warehouse) as engine:
        yield engine


def _postgres_state(url: str) -> Any:
    with psycopg.connect(url) as connection:
        tables = connection.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() ORDER BY 1"
        ).fetchall()
        columns = connection.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() ORDER BY 1"
        ).fetchall()
        rows = connection.execute("SELECT answer FROM keep ORDER BY 1").fetchall()
    return tables, columns, rows


@pytest.mark.postgres
@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_no_postgres_query_writes(
    data: st.DataObject, postgres_engine: Engine, postgres_warehouse: str, watched: Path
) -> None:
    files = listing(watched)
    sql = data.draw(query(POSTGRES_STATEMENTS, watched), label="sql")

    run_or_refuse(postgres_engine, sql)

    assert _postgres_state(postgres_warehouse) == (
        [("keep",)],
        [("answer",)],
        [(42,)],
    )
    assert listing(watched) == files
