"""The Spark warehouse (``spark+local://``): a real local Spark session, real Parquet tables.

One session serves the whole module (the ``spark_session`` fixture); each test
has its own ``COHORTSYNC_HOME``, so its own tables. The tests that need a
process of their own (persistence, the export) run the real ``cohortsync``
command, which starts its own Spark.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from cohortsync.errors import ConfigError, SourceError
from cohortsync.warehouse import Engine, open_engine
from cohortsync.warehouse.spark_engine import SparkEngine
from support import run_cli
from warehouse.conftest import CUSTOMERS, write_file

URL = "spark+local://"


@pytest.fixture
def spark(spark_session: object, home: Path) -> Iterator[Engine]:
    with open_engine(URL) as engine:
        yield engine


@pytest.fixture
def customers(spark: Engine, tmp_path: Path) -> Engine:
    """``customers`` loaded from the suite's Parquet file (every column type of CUSTOMERS)."""
    assert spark.load("customers", write_file(CUSTOMERS, tmp_path / "customers.parquet")) == 3
    return spark


def rows(engine: Engine, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    return engine.stream(sql, params or []).read_all().to_pylist()


def versions(home: Path, table: str) -> list[str]:
    return sorted(p.name for p in (home / "spark" / "warehouse" / table).glob("v-*"))


def test_a_query_streams_arrow_batches_with_the_tables_types(customers: Engine) -> None:
    schema = customers.table_schema("customers")
    assert schema.names == CUSTOMERS.schema.names
    assert [schema.field(name).type for name in ("external_id", "age", "score", "active")] == [
        pa.string(),
        pa.int64(),
        pa.float64(),
        pa.bool_(),
    ]
    assert schema.field("signed_up").type == pa.date32()
    assert schema.field("balance").type == pa.decimal128(10, 2)
    # A timestamp without time zone stays one (Spark's TIMESTAMP_NTZ).
    assert schema.field("last_seen").type == pa.timestamp("us")

    reader = customers.stream("SELECT * FROM customers ORDER BY external_id", batch_size=2)
    assert reader.schema == schema
    batches = list(reader)
    assert [batch.num_rows for batch in batches] == [2, 1]
    assert pa.Table.from_batches(batches).to_pylist() == CUSTOMERS.to_pylist()


def test_an_empty_result_still_has_its_columns(customers: Engine) -> None:
    reader = customers.stream("SELECT external_id AS user_ids FROM customers WHERE age > 1000")
    assert reader.schema.names == ["user_ids"]
    assert reader.read_all().num_rows == 0


def test_placeholders_bind_values_and_skip_literals(customers: Engine) -> None:
    found = rows(
        customers,
        "SELECT external_id, 'why?' AS q FROM customers WHERE age > ? AND email <> ? "
        "ORDER BY external_id",
        [30, "TDCohort3@gmail.com"],
    )
    assert found == [{"external_id": "TDCohort1", "q": "why?"}]
    with pytest.raises(ConfigError, match=r"1 \? placeholder\(s\) but 2 parameter"):
        customers.stream("SELECT * FROM customers WHERE age > ?", [1, 2])


@pytest.mark.parametrize(
    ("sql", "refusal"),
    [
        ("DROP TABLE customers", "DROP statement"),
        ("INSERT INTO customers (external_id) VALUES ('x')", "INSERT statement"),
        ("CREATE TABLE copy AS SELECT * FROM customers", "CREATE statement"),
        ("SET spark.sql.runSQLOnFiles=true", "SET statement"),
        ("SELECT 1; DROP TABLE customers", "holds 2 statements"),
        ("SELECT reflect('java.lang.System', 'getenv', 'HOME')", r"calls reflect\(\)"),
    ],
)
def test_a_query_that_writes_is_refused(customers: Engine, sql: str, refusal: str) -> None:
    with pytest.raises(SourceError, match=refusal):
        customers.stream(sql)
    assert customers.count("SELECT * FROM customers") == 3
    assert customers.tables() == ["customers"]


def test_sparks_own_parser_refuses_commands_too(customers: Engine, spark_session: Any) -> None:
    """The second lock, behind sqlglot's check: Spark's plan holds no command or insert."""
    assert isinstance(customers, SparkEngine)
    for sql in (
        "INSERT INTO customers (external_id) VALUES ('x')",
        "WITH x AS (SELECT 'y' AS external_id) INSERT INTO customers (external_id) SELECT * FROM x",
        "CACHE TABLE customers",
        "INSERT OVERWRITE DIRECTORY '/tmp/out' SELECT 1",
    ):
        with pytest.raises(SourceError, match="queries only read"):
            customers._refuse_commands(spark_session, sql)
    customers._refuse_commands(spark_session, "WITH x AS (SELECT 1) SELECT * FROM x")


def test_failures_are_one_line_source_errors(customers: Engine) -> None:
    with pytest.raises(SourceError, match=r"TABLE_OR_VIEW_NOT_FOUND.*`nope`") as missing:
        customers.stream("SELECT * FROM nope")
    assert "\n" not in str(missing.value) and "warehouse tables" in str(missing.value)
    with pytest.raises(SourceError, match="UNRESOLVED_COLUMN") as column:
        customers.count("SELECT nope FROM customers")
    assert "\n" not in str(column.value)
    # Met while the batches are read, inside a running Spark job.
    reader = customers.stream("SELECT CAST(external_id AS INT) AS n FROM customers")
    with pytest.raises(SourceError, match=r"CAST_INVALID_INPUT.*'TDCohort1'") as cast:
        reader.read_all()
    assert "\n" not in str(cast.value) and "try_cast" in str(cast.value)
    with pytest.raises(SourceError, match="no table 'nope'"):
        customers.table_schema("nope")
    with pytest.raises(SourceError, match=r"TABLE_OR_VIEW_NOT_FOUND.*`/etc`"):
        customers.stream("SELECT * FROM parquet.`/etc`")


def test_count_runs_inside_spark(customers: Engine) -> None:
    assert customers.count("SELECT * FROM customers") == 3
    assert customers.count("SELECT * FROM customers WHERE active = ?", [True]) == 1
    assert customers.count("SELECT * FROM range(0, 100000)") == 100_000


def test_tables_lists_every_schema(customers: Engine, tmp_path: Path) -> None:
    csv = tmp_path / "people.csv"
    csv.write_text("user_ids\nu1\n")
    customers.load("crm.people", csv)
    assert customers.tables() == ["crm.people", "customers"]
    assert rows(customers, "SELECT * FROM crm.people") == [{"user_ids": "u1"}]
    assert customers.table_schema("crm.people").names == ["user_ids"]


def test_load_csv_and_parquet_replace_and_append(spark: Engine, tmp_path: Path, home: Path) -> None:
    first = tmp_path / "first.csv"
    first.write_text("user_ids,visits\nu1,3\nu2,4\n")
    assert spark.load("visits", first) == 2
    assert spark.table_schema("visits").field("visits").type == pa.int64()

    # Appended by column name, in the table's types; a column the file lacks is null.
    more = write_file(
        pa.table({"visits": pa.array([5], pa.int32()), "user_ids": ["u3"]}),
        tmp_path / "more.parquet",
    )
    assert spark.load("visits", more, mode="append") == 1
    only_ids = tmp_path / "ids.csv"
    only_ids.write_text("user_ids\nu4\n")
    assert spark.load("visits", only_ids, mode="append") == 1
    assert rows(spark, "SELECT * FROM visits ORDER BY user_ids") == [
        {"user_ids": "u1", "visits": 3},
        {"user_ids": "u2", "visits": 4},
        {"user_ids": "u3", "visits": 5},
        {"user_ids": "u4", "visits": None},
    ]

    # Replace: the table becomes the file, columns and all.
    assert spark.load("visits", only_ids) == 1
    assert rows(spark, "SELECT * FROM visits") == [{"user_ids": "u4"}]
    # The live version and the one it replaced (a reader elsewhere may still use it).
    assert len(versions(home, "visits")) == 2


def test_a_failed_load_leaves_the_table_as_it_was(
    customers: Engine, tmp_path: Path, home: Path
) -> None:
    before = rows(customers, "SELECT * FROM customers ORDER BY external_id")
    kept = versions(home, "customers")
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("external_id,email\nx1,a@b.c\nx2\n")
    with pytest.raises(SourceError, match=r"ragged\.csv") as replace:
        customers.load("customers", ragged)
    assert "\n" not in str(replace.value)
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("external_id,colour\nx1,red\n")
    with pytest.raises(SourceError, match="no column 'colour'"):
        customers.load("customers", unknown, mode="append")
    lossy = tmp_path / "lossy.csv"
    lossy.write_text("external_id,age\nx1,1.5\n")
    with pytest.raises(SourceError, match="age"):
        customers.load("customers", lossy, mode="append")
    assert rows(customers, "SELECT * FROM customers ORDER BY external_id") == before
    assert versions(home, "customers") == kept


def test_a_table_loaded_by_one_process_is_exported_by_the_next(
    spark: Engine, home: Path, tmp_path: Path, braze_sandbox: Any
) -> None:
    """Persistence and a whole export: `warehouse load` in one process, `export` in another.

    The export runs against the real receiving service, and its cohort then
    holds exactly the query's users; this test process reads the same table.
    """
    users = [f"TDSpark{index}" for index in range(5)]
    braze_sandbox.load_users([{"external_id": uid} for uid in users])
    csv = tmp_path / "spark_users.csv"
    csv.write_text(
        "external_id,active\n" + "".join(f"{u},{i % 2 == 0}\n" for i, u in enumerate(users))
    )

    # The load starts no Spark (pyarrow writes the Parquet); the export does.
    loaded = run_cli("warehouse", "load", "--warehouse", URL, "spark_users", str(csv), "--json")
    assert json.loads(loaded.stdout)["rows_loaded"] == 5
    assert loaded.stderr == ""

    exported = run_cli(
        "export", "--warehouse", URL,
        "--query", "SELECT external_id AS user_ids FROM spark_users WHERE active",
        "--endpoint", braze_sandbox.base_url, "--data-import-key", braze_sandbox.data_import_key,
        "--cohort-id", "spark_active", "--json",
        env={"COHORTSYNC_PARTNER_API_KEY": braze_sandbox.partner_api_key},
        timeout=240,
    )  # fmt: skip
    assert json.loads(exported.stdout)["sent"] == {"user_ids": 3}
    members = braze_sandbox.members("spark_active")
    assert sorted(m["external_id"] for m in members) == [users[0], users[2], users[4]]

    assert rows(spark, "SELECT count(*) AS n FROM spark_users") == [{"n": 5}]


def test_without_java_the_command_says_what_to_install(home: Path) -> None:
    env = {"PATH": str(home), "JAVA_HOME": None}
    done = run_cli(
        "warehouse", "query", "SELECT 1", "--warehouse", URL, env=env, expect=2
    )  # fmt: skip
    assert done.stderr.count("\n") == 1
    assert "needs Java" in done.stderr and "JAVA_HOME" in done.stderr


def test_bad_spark_urls_say_which_forms_exist(home: Path) -> None:
    for url in ("spark://", "sc://", "spark+local://somewhere"):
        with pytest.raises(ConfigError, match="invalid Spark warehouse URL"):
            open_engine(url)


def test_importing_cohortsync_does_not_import_pyspark() -> None:
    import subprocess
    import sys

    code = (
        "import sys, cohortsync.cli.main, cohortsync.warehouse, cohortsync.export.run; "
        "names = ('pyspark', 'py4j', 'cohortsync.warehouse.spark'); "
        "print(sorted(m for m in sys.modules if m.startswith(names)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        check=True,
    )
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("url", ["spark+local://", "spark://master:7077", "sc://connect:15002"])
def test_saved_queries_are_checked_in_sparks_dialect_for_every_spark_url(url: str) -> None:
    """A saved query is checked when defined, by the rules its warehouse will apply."""
    from cohortsync.warehouse.query_check import check_query_for

    assert check_query_for("SELECT id FROM customers WHERE id > ?", url)
    with pytest.raises(SourceError, match="only read"):
        check_query_for("DELETE FROM customers", url)
    with pytest.raises(SourceError, match=r"reflect\(\)"):
        check_query_for("SELECT reflect('java.lang.System', 'exit', '0')", url)


# The in-warehouse mirror on Spark: collected here, so they share this module's worker
# and its one Spark session.
from warehouse.spark_mirror_cases import (  # noqa: E402
    partner,
    spark_home,
    test_spark_dry_run_writes_nothing,
    test_spark_guard_refuses_and_nothing_is_sent_or_written,
    test_spark_mirror_converges_and_spares_foreign_members,
    test_spark_mirror_of_a_table_by_name,
    test_spark_parquet_snapshot_moves_into_the_warehouse,
    test_spark_refuses_a_query_that_is_not_one_read_only_statement,
    test_spark_resumed_commit_keeps_the_tables_it_finds_complete,
    test_spark_second_run_transfers_and_sends_only_the_changes,
)

__all__ = [
    "partner",
    "spark_home",
    "test_spark_dry_run_writes_nothing",
    "test_spark_guard_refuses_and_nothing_is_sent_or_written",
    "test_spark_mirror_converges_and_spares_foreign_members",
    "test_spark_mirror_of_a_table_by_name",
    "test_spark_parquet_snapshot_moves_into_the_warehouse",
    "test_spark_refuses_a_query_that_is_not_one_read_only_statement",
    "test_spark_resumed_commit_keeps_the_tables_it_finds_complete",
    "test_spark_second_run_transfers_and_sends_only_the_changes",
]
