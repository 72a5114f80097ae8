"""`cohortsync warehouse ...` run as a user runs it: a real process, a real home."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from support import CliResult, run_cli

from .conftest import CUSTOMERS, write_file


def cohortsync(*args: str, home: Path, env: dict[str, str] | None = None) -> CliResult:
    """``cohortsync warehouse ARGS`` on ``home`` alone; the test checks the exit code."""
    return run_cli("warehouse", *args, home=home, env=env, expect=None)


@pytest.fixture
def customers_csv(tmp_path: Path) -> Path:
    return write_file(CUSTOMERS, tmp_path / "customers.csv")


def test_load_then_query_in_the_embedded_warehouse(tmp_path: Path, customers_csv: Path) -> None:
    home = tmp_path / "home"

    loaded = cohortsync("load", "customers", str(customers_csv), home=home)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == (
        f"loaded 3 rows from {customers_csv} (csv); replaced table customers"
    )
    assert (home / "warehouse.duckdb").exists()

    shown = cohortsync(
        "query", "SELECT external_id AS user_ids FROM customers ORDER BY 1", home=home
    )
    assert shown.returncode == 0, shown.stderr
    assert "user_ids" in shown.stdout
    assert "TDCohort3" in shown.stdout
    assert shown.stdout.rstrip().endswith("3 rows")


def test_query_shows_the_first_rows_and_counts_them_all(tmp_path: Path) -> None:
    shown = cohortsync(
        "query", "SELECT range AS id FROM range(1000)", "--limit", "5", home=tmp_path
    )

    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.rstrip().endswith("1,000 rows (first 5 shown)")
    assert "│ 4 " in shown.stdout
    assert "│ 5 " not in shown.stdout


def test_query_json_for_scripts(tmp_path: Path) -> None:
    customers = write_file(CUSTOMERS, tmp_path / "customers.parquet")
    assert cohortsync("load", "customers", str(customers), home=tmp_path).returncode == 0

    shown = cohortsync(
        "query",
        "SELECT external_id AS user_ids, age, balance, signed_up FROM customers ORDER BY 1",
        "--limit",
        "2",
        "--json",
        home=tmp_path,
    )

    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert document["row_count"] == 3
    assert [column["name"] for column in document["columns"]] == [
        "user_ids",
        "age",
        "balance",
        "signed_up",
    ]
    assert document["columns"][0]["type"] == "string"
    assert document["rows"] == [
        {"user_ids": "TDCohort1", "age": 31, "balance": "10.50", "signed_up": "2024-01-02"},
        {"user_ids": "TDCohort2", "age": 45, "balance": "-2.25", "signed_up": "2024-02-03"},
    ]


def test_load_append_with_json_and_an_explicit_format(tmp_path: Path) -> None:
    first = write_file(pa.table({"user_ids": ["a", "b"]}), tmp_path / "first.ndjson")
    second = write_file(pa.table({"user_ids": ["c"]}), tmp_path / "second.ndjson")
    odd = second.rename(tmp_path / "second.data")

    assert cohortsync("load", "cohort", str(first), home=tmp_path).returncode == 0
    appended = cohortsync(
        "load",
        "cohort",
        str(odd),
        "--mode",
        "append",
        "--format",
        "ndjson",
        "--json",
        home=tmp_path,
    )

    assert appended.returncode == 0, appended.stderr
    assert json.loads(appended.stdout) == {
        "table": "cohort",
        "file": str(odd),
        "format": "ndjson",
        "mode": "append",
        "rows_loaded": 1,
        "warehouse": f"duckdb:///{tmp_path / 'warehouse.duckdb'}",
    }
    listed = cohortsync("tables", "--json", home=tmp_path)
    assert json.loads(listed.stdout) == {"tables": ["cohort"]}


def test_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    failed = cohortsync("query", "SELECT * FROM nope", home=tmp_path)

    assert failed.returncode == 3
    assert failed.stdout == ""
    # DuckDB's whole message, its suggestion of a near name included, on one line.
    [line] = failed.stderr.strip().splitlines()
    assert line.startswith(
        "error: query failed: Catalog Error: Table with name nope does not exist!"
    )
    assert line.endswith("(check the table name; 'cohortsync warehouse tables' lists them)")


def test_input_errors_exit_2(tmp_path: Path) -> None:
    missing = cohortsync("load", "t", str(tmp_path / "missing.csv"), home=tmp_path)
    assert missing.returncode == 2
    assert "no such file" in missing.stderr
    assert "Traceback" not in missing.stderr

    bad_url = cohortsync("tables", "--warehouse", "nosuchdb://x/y", home=tmp_path)
    assert bad_url.returncode == 2
    assert bad_url.stderr.startswith("error: no database driver")


def test_usage_errors_exit_2_without_traceback(tmp_path: Path) -> None:
    bad_mode = cohortsync("load", "t", "x.csv", "--mode", "upsert", home=tmp_path)

    assert bad_mode.returncode == 2
    assert "upsert" in bad_mode.stderr
    assert "Traceback" not in bad_mode.stderr


def test_warehouse_comes_from_the_option_then_the_environment(
    tmp_path: Path, customers_csv: Path
) -> None:
    from_env = tmp_path / "env.duckdb"
    from_option = tmp_path / "option.duckdb"
    env = {"COHORTSYNC_WAREHOUSE": f"duckdb:///{from_env}"}

    created = cohortsync("load", "a", str(customers_csv), home=tmp_path, env=env)
    assert created.returncode == 0, created.stderr
    created = cohortsync(
        "load",
        "b",
        str(customers_csv),
        "--warehouse",
        f"duckdb:///{from_option}",
        home=tmp_path,
        env=env,
    )
    assert created.returncode == 0, created.stderr

    assert json.loads(cohortsync("tables", "--json", home=tmp_path, env=env).stdout) == {
        "tables": ["a"]
    }
    option = cohortsync("tables", "--warehouse", f"duckdb:///{from_option}", home=tmp_path)
    assert option.stdout.split() == ["b"]
    assert not (tmp_path / "warehouse.duckdb").exists()


@pytest.mark.postgres
def test_postgres_through_the_cli(
    tmp_path: Path, customers_csv: Path, postgres_warehouse_url: str
) -> None:
    loaded = cohortsync(
        "load",
        "customers",
        str(customers_csv),
        "--warehouse",
        postgres_warehouse_url,
        home=tmp_path,
    )
    assert loaded.returncode == 0, loaded.stderr

    shown = cohortsync(
        "query",
        "SELECT external_id AS user_ids FROM customers WHERE age IS NOT NULL ORDER BY 1",
        "--json",
        home=tmp_path,
        env={"COHORTSYNC_WAREHOUSE": postgres_warehouse_url},
    )
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == {
        "columns": [{"name": "user_ids", "type": "string"}],
        "rows": [{"user_ids": "TDCohort1"}, {"user_ids": "TDCohort2"}],
        "row_count": 2,
    }


def test_help_teaches(tmp_path: Path) -> None:
    shown = cohortsync("query", "--help", home=tmp_path)

    assert shown.returncode == 0
    assert "first rows and the total row count" in shown.stdout
    assert "COHORTSYNC_WAREHOUSE" in shown.stdout
