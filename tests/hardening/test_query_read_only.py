"""Queries are read-only and reach only the warehouse, whatever they contain.

Each case runs the real ``cohortsync`` executable and asserts the exit code,
the one-line message, and that nothing changed: the home's tables, catalog
and files (``home_state``), no file written on the host, nothing sent (the
exports are dry runs towards a closed port, and the refusal comes before the
plan is printed).
"""

from __future__ import annotations

import textwrap
import uuid
from pathlib import Path

import duckdb
import psycopg
import pytest

from .conftest import CliRunner, assert_one_line_error, home_state

# A dry run against a closed port: even a run that got through would send nothing.
EXPORT = (
    "export",
    "--dry-run",
    "--endpoint",
    "http://127.0.0.1:9",
    "--data-import-key",
    "key",
    "--cohort-id",
    "vip",
)
PARTNER = {"COHORTSYNC_PARTNER_API_KEY": "partner-key"}


@pytest.fixture
def warehouse(home: Path) -> Path:
    """The home's warehouse with ``t`` (three ids) and ``keep``, written by DuckDB itself."""
    path = home / "warehouse.duckdb"
    with duckdb.connect(str(path)) as connection:
        connection.execute("CREATE TABLE t AS SELECT 'u' || range AS user_ids FROM range(3)")
        connection.execute("CREATE TABLE keep AS SELECT 42 AS answer")
    return path


def test_a_dry_run_with_a_second_statement_drops_nothing(
    cli: CliRunner, home: Path, warehouse: Path
) -> None:
    before = home_state(home)

    done = cli(*EXPORT, "--query", "select user_ids from t; drop table keep", env=PARTNER)

    assert_one_line_error(done, 3, "holds 2 statements", "cohortsync warehouse load")
    assert "nothing sent" not in done.stdout
    assert home_state(home) == before


def test_copy_to_a_path_is_refused_and_writes_no_file(
    cli: CliRunner, home: Path, warehouse: Path, tmp_path: Path
) -> None:
    target = tmp_path / "stolen.csv"
    before = home_state(home)

    done = cli(*EXPORT, "--query", f"COPY (SELECT * FROM t) TO '{target}'", env=PARTNER)

    assert_one_line_error(done, 3, "COPY statement", "queries only read")
    assert not target.exists()
    assert home_state(home) == before


def test_reading_a_host_file_is_refused_and_nothing_is_sent(
    cli: CliRunner, home: Path, warehouse: Path
) -> None:
    before = home_state(home)

    done = cli(
        *EXPORT, "--query", "SELECT column0 AS user_ids FROM read_csv('/etc/passwd')", env=PARTNER
    )

    assert_one_line_error(done, 3, "/etc/passwd", "file access is off", "--allow-files")
    assert "root" not in done.stdout + done.stderr.replace("/root", "")
    assert home_state(home) == before


@pytest.mark.parametrize(
    "sql",
    [
        "ATTACH '{dir}/other.duckdb' AS other",
        "INSTALL httpfs",
        "LOAD httpfs",
        "EXPORT DATABASE '{dir}/dump'",
        "SELECT * FROM '{dir}/../../../etc/passwd'",
    ],
)
def test_other_ways_out_of_the_warehouse_are_refused(
    cli: CliRunner, home: Path, warehouse: Path, tmp_path: Path, sql: str
) -> None:
    before = home_state(home)
    outside = sorted(tmp_path.iterdir())

    done = cli("warehouse", "query", sql.format(dir=tmp_path))

    assert_one_line_error(done, 3)
    assert sorted(tmp_path.iterdir()) == outside
    assert home_state(home) == before


def test_warehouse_query_refuses_two_statements_instead_of_showing_the_last(
    cli: CliRunner, home: Path, warehouse: Path
) -> None:
    before = home_state(home)

    done = cli("warehouse", "query", "select 1; select 2")

    assert_one_line_error(done, 3, "the query holds 2 statements")
    assert done.stdout == ""
    assert home_state(home) == before


def test_a_semicolon_in_a_comment_or_a_string_is_no_second_statement(
    cli: CliRunner, home: Path, warehouse: Path
) -> None:
    done = cli("warehouse", "query", "SELECT ';' AS a /* ; drop table keep */ FROM keep; -- ;")

    assert done.returncode == 0, done.stderr
    assert "1 row" in done.stdout


def test_allow_files_opens_a_directory_for_reading_but_never_for_writing(
    cli: CliRunner, home: Path, warehouse: Path, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "ids.csv").write_text("user_ids\nfrom-file\n")

    read = cli(
        "warehouse",
        "query",
        f"SELECT * FROM read_csv('{shared}/ids.csv')",
        "--allow-files",
        str(shared),
    )
    assert read.returncode == 0, read.stderr
    assert "from-file" in read.stdout

    from_setting = cli(
        "warehouse",
        "query",
        f"SELECT * FROM read_csv('{shared}/ids.csv')",
        env={"COHORTSYNC_ALLOW_FILES": str(shared)},
    )
    assert from_setting.returncode == 0, from_setting.stderr

    before = home_state(home)
    written = cli(
        "warehouse", "query", f"COPY keep TO '{shared}/out.csv'", "--allow-files", str(shared)
    )
    assert_one_line_error(written, 3, "COPY statement")
    assert sorted(path.name for path in shared.iterdir()) == ["ids.csv"]
    assert home_state(home) == before

    elsewhere = cli(
        "warehouse", "query", "SELECT * FROM read_csv('/etc/passwd')", "--allow-files", str(shared)
    )
    assert_one_line_error(elsewhere, 3, "/etc/passwd", "file access is off")


def test_an_unknown_allowed_directory_is_refused(
    cli: CliRunner, home: Path, warehouse: Path, tmp_path: Path
) -> None:
    done = cli("warehouse", "query", "SELECT 1", "--allow-files", str(tmp_path / "typo"))

    assert_one_line_error(done, 2, "no such directory", "--allow-files")


def test_a_saved_query_that_writes_is_refused_when_saved(
    cli: CliRunner, home: Path, warehouse: Path
) -> None:
    before = home_state(home)

    done = cli("query", "save", "bad", "--sql", "select user_ids from t; drop table keep")

    assert_one_line_error(done, 2, "query 'bad' is refused", "holds 2 statements")
    assert home_state(home) == before


def test_a_saved_query_reading_a_host_file_is_refused_when_run(
    cli: CliRunner, home: Path, warehouse: Path
) -> None:
    saved = cli("query", "save", "peek", "--sql", "SELECT * FROM read_csv('/etc/passwd')")
    assert saved.returncode == 0, saved.stderr
    before = home_state(home)

    done = cli("query", "run", "peek", "--dry-run")

    assert_one_line_error(done, 3, "file access is off")
    assert "root" not in done.stdout
    assert home_state(home)["warehouse"] == before["warehouse"]


def test_apply_refuses_a_yaml_query_that_writes_before_changing_anything(
    cli: CliRunner, home: Path, warehouse: Path, tmp_path: Path
) -> None:
    definitions = tmp_path / "cohortsync.yaml"
    definitions.write_text(
        textwrap.dedent(
            """
            queries:
              - name: fine
                sql: SELECT user_ids FROM t
              - name: sneaky
                sql: |
                  SELECT user_ids FROM t;
                  DROP TABLE keep
            """
        )
    )
    # The catalog exists beforehand, so only its rows are compared.
    assert cli("query", "list").returncode == 0
    before = home_state(home)

    for extra in ((), ("--dry-run",)):
        done = cli("apply", str(definitions), *extra)
        assert_one_line_error(done, 2, "sneaky", "holds 2 statements")
        assert home_state(home) == before


@pytest.fixture
def postgres_warehouse(postgres_url: str) -> str:
    """A schema of the session's database with ``t``, ``keep`` and a function that writes."""
    schema = f"h_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
        connection.execute(f'SET search_path TO "{schema}"')
        connection.execute("CREATE TABLE t (user_ids text); INSERT INTO t VALUES ('a'), ('b')")
        connection.execute("CREATE TABLE keep (answer int); INSERT INTO keep VALUES (42)")
        connection.execute(
            "CREATE FUNCTION sneaky() RETURNS int LANGUAGE sql VOLATILE "
            "AS $$ INSERT INTO keep VALUES (0) RETURNING 1 $$"
        )
    return f"{postgres_url}?options=-csearch_path%3D{schema}"


def _postgres_rows(url: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as connection:
        return connection.execute("SELECT answer FROM keep ORDER BY 1").fetchall()


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("sql", "needle"),
    [
        ("SELECT user_ids FROM t; DROP TABLE keep", "holds 2 statements"),
        ("DELETE FROM keep", "DELETE statement"),
        ("WITH d AS (DELETE FROM keep RETURNING answer) SELECT * FROM d", "DELETE inside it"),
        ("SELECT * INTO copied FROM keep", "SELECT ... INTO"),
        ("SELECT sneaky() AS user_ids", "read-only transaction"),
    ],
)
def test_postgres_queries_cannot_write(
    cli: CliRunner, postgres_warehouse: str, sql: str, needle: str
) -> None:
    done = cli("warehouse", "query", sql, "--warehouse", postgres_warehouse)

    assert_one_line_error(done, 3, needle)
    assert _postgres_rows(postgres_warehouse) == [(42,)]


@pytest.mark.postgres
def test_a_postgres_export_of_a_writing_function_sends_nothing(
    cli: CliRunner, home: Path, postgres_warehouse: str
) -> None:
    done = cli(
        *EXPORT,
        "--query",
        "SELECT user_ids FROM t WHERE sneaky() = 1",
        "--warehouse",
        postgres_warehouse,
        env=PARTNER,
    )

    assert_one_line_error(done, 3, "read-only transaction")
    assert "nothing sent" not in done.stdout
    assert _postgres_rows(postgres_warehouse) == [(42,)]
