"""`warehouse load` is strict and atomic, through the real executable.

Each case asserts the exit code, the one-line message (the file, the line or
the column, the reason) and that nothing changed: the previous table intact
and no staging table left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest

from .conftest import CliRunner, assert_one_line_error, wait_until_open, warehouse_state

GOOD = "user_ids,n\nu1,1\nu2,2\n"


def _write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _state(home: Path) -> dict[str, Any]:
    state = warehouse_state(home / "warehouse.duckdb")
    assert not [name for name in state if "_cohortsync_load_" in name], state
    return state


@pytest.fixture
def loaded(cli: CliRunner, home: Path, tmp_path: Path) -> dict[str, Any]:
    """A warehouse with a good table ``t`` (user_ids VARCHAR, n BIGINT), and its state."""
    done = cli("warehouse", "load", "t", str(_write(tmp_path / "good.csv", GOOD)))
    assert done.returncode == 0, done.stderr
    return _state(home)


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        (
            "user_ids,n\nu1,1\nu2,2,x\nu3,3\n",
            ["line 3", "3 fields, but the header has 2", "u2,2,x"],
        ),
        ("user_ids,n\nu1,1\nu2\n", ["line 3", "1 fields, but the header has 2"]),
        ('user_ids,n\nu1,1\n"u2,2\nu3,3\n', ["line 3", "unterminated quote"]),
        ('user_ids,n\nu1,1\n"u"2,2\n', ["line 3", "unterminated quote"]),
        ("user_ids,n\n", ["has no rows", "--allow-empty"]),
        ("", ["is empty", "no columns"]),
        ("user_ids,user_ids\na,b\n", ["line 1", "twice"]),
        ("user_ids,\na,b\n", ["line 1", "column 2 of the header is empty"]),
    ],
    ids=[
        "extra-field",
        "missing-field",
        "open-quote",
        "stray-quote",
        "header-only",
        "empty",
        "duplicate-header",
        "blank-header",
    ],
)
def test_a_malformed_csv_leaves_the_table(
    cli: CliRunner,
    home: Path,
    tmp_path: Path,
    loaded: dict[str, Any],
    text: str,
    needles: list[str],
) -> None:
    bad = _write(tmp_path / "bad.csv", text)

    done = cli("warehouse", "load", "t", str(bad))

    assert_one_line_error(done, 3, str(bad), *needles)
    assert _state(home) == loaded


def test_a_csv_not_in_its_encoding_names_the_line(
    cli: CliRunner, home: Path, tmp_path: Path, loaded: dict[str, Any]
) -> None:
    bad = _write(tmp_path / "latin.csv", "user_ids,n\nu1,1\nr\u00e9my,2\n".encode("latin-1"))

    done = cli("warehouse", "load", "t", str(bad))

    assert_one_line_error(done, 3, "line 3", "not utf-8", "--encoding")
    assert _state(home) == loaded


@pytest.mark.parametrize("encoding", ["latin-1", "utf-16", "cp1252"])
def test_encoding_reads_the_file_as_declared(
    cli: CliRunner, home: Path, tmp_path: Path, encoding: str
) -> None:
    text = "user_ids,n\nr\u00e9my,1\nzo\u00e9,2\n"
    path = _write(tmp_path / "names.csv", text.encode(encoding))

    done = cli("warehouse", "load", "t", str(path), "--encoding", encoding)

    assert done.returncode == 0, done.stderr
    columns, rows = _state(home)["main.t"]
    assert columns == [("user_ids", "VARCHAR"), ("n", "BIGINT")]
    assert rows == [("r\u00e9my", 1), ("zo\u00e9", 2)]


def test_allow_empty_makes_an_empty_table_with_the_header_columns(
    cli: CliRunner, home: Path, tmp_path: Path, loaded: dict[str, Any]
) -> None:
    header_only = _write(tmp_path / "header.csv", "user_ids,email\n")
    empty = _write(tmp_path / "empty.csv", "")

    refused = cli("warehouse", "load", "t", str(empty), "--allow-empty")
    assert_one_line_error(refused, 3, "is empty", "no columns")
    assert _state(home) == loaded

    done = cli("warehouse", "load", "t", str(header_only), "--allow-empty")
    assert done.returncode == 0, done.stderr
    assert _state(home)["main.t"] == ([("user_ids", "VARCHAR"), ("email", "VARCHAR")], [])


def test_mixed_types_in_ndjson_are_refused_or_typed_as_declared(
    cli: CliRunner, home: Path, tmp_path: Path, loaded: dict[str, Any]
) -> None:
    mixed = _write(
        tmp_path / "ids.ndjson", '{"user_ids": "a"}\n{"user_ids": "b"}\n{"user_ids": 7}\n'
    )

    done = cli("warehouse", "load", "t", str(mixed))
    assert_one_line_error(
        done,
        3,
        "key 'user_ids'",
        "number on line 3",
        "string on line 1",
        "--schema user_ids=VARCHAR",
    )
    assert _state(home) == loaded

    done = cli("warehouse", "load", "t", str(mixed), "--schema", "user_ids=VARCHAR")
    assert done.returncode == 0, done.stderr
    assert _state(home)["main.t"] == ([("user_ids", "VARCHAR")], [("7",), ("a",), ("b",)])


def test_schema_types_csv_columns_and_refuses_values_it_would_change(
    cli: CliRunner, home: Path, tmp_path: Path, loaded: dict[str, Any]
) -> None:
    path = _write(tmp_path / "zips.csv", "zip,age\n01234,30\n98765,41.5\n")

    done = cli("warehouse", "load", "t", str(path), "--schema", "zip=VARCHAR,age=INTEGER")
    assert_one_line_error(done, 3, "column 'age'", "'41.5'", "would become '42'")
    assert _state(home) == loaded

    done = cli("warehouse", "load", "t", str(path), "--schema", "zip=VARCHAR,age=DECIMAL(4,1)")
    assert done.returncode == 0, done.stderr
    columns, rows = _state(home)["main.t"]
    assert columns == [("zip", "VARCHAR"), ("age", "DECIMAL(4,1)")]
    assert [row[0] for row in rows] == ["01234", "98765"]


@pytest.mark.parametrize(
    ("schema", "needles"),
    [
        ("user_ids", ["invalid --schema entry"]),
        ("nope=VARCHAR", ["'nope'", "does not have"]),
        ("n=NOT_A_TYPE", ["n=NOT_A_TYPE", "not a type"]),
    ],
)
def test_a_bad_schema_option_is_a_usage_error(
    cli: CliRunner,
    home: Path,
    tmp_path: Path,
    loaded: dict[str, Any],
    schema: str,
    needles: list[str],
) -> None:
    done = cli("warehouse", "load", "t", str(_write(tmp_path / "g.csv", GOOD)), "--schema", schema)

    assert_one_line_error(done, 2, *needles)
    assert _state(home) == loaded


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("user_ids,n\nu3,1.5\n", ["column 'n'", "'1.5'", "would become '2'"]),
        ("user_ids,n\nu3,many\n", ["column 'n'", "'many'", "not a BIGINT"]),
        ("user_ids,n\nu3,99999999999999999999\n", ["column 'n'", "99999999999999999999"]),
        ("user_ids,extra\nu3,x\n", ["no column 'extra'"]),
    ],
    ids=["rounding", "string-into-number", "overflow", "unknown-column"],
)
def test_an_append_that_would_change_a_value_fails(
    cli: CliRunner,
    home: Path,
    tmp_path: Path,
    loaded: dict[str, Any],
    text: str,
    needles: list[str],
) -> None:
    more = _write(tmp_path / "more.csv", text)

    done = cli("warehouse", "load", "t", str(more), "--mode", "append")

    assert_one_line_error(done, 3, str(more), *needles)
    assert _state(home) == loaded


def test_an_append_matches_columns_by_name(
    cli: CliRunner, home: Path, tmp_path: Path, loaded: dict[str, Any]
) -> None:
    more = _write(tmp_path / "more.csv", "n,user_ids\n3,u3\n")

    done = cli("warehouse", "load", "t", str(more), "--mode", "append")

    assert done.returncode == 0, done.stderr
    assert _state(home)["main.t"][1] == [("u1", 1), ("u2", 2), ("u3", 3)]


def test_help_teaches_the_options(cli: CliRunner) -> None:
    done = cli("warehouse", "load", "--help")

    assert done.returncode == 0
    for needle in ("--encoding", "--schema", "--allow-empty", "Example:", "user_ids=VARCHAR"):
        assert needle in done.stdout


def test_ctrl_c_during_a_load_says_so_and_leaves_the_table(
    home: Path, tmp_path: Path, loaded: dict[str, Any]
) -> None:
    big = tmp_path / "big.csv"
    duckdb.sql(
        "COPY (SELECT 'user_' || i AS user_ids, i AS n, 'u' || i || '@example.com' AS email "
        f"FROM range(4000000) t(i)) TO '{big}' (HEADER)"
    )
    environment = {k: v for k, v in os.environ.items() if not k.startswith("COHORTSYNC_")}
    environment["COHORTSYNC_HOME"] = str(home)
    process = subprocess.Popen(
        [sys.executable, "-m", "cohortsync", "warehouse", "load", "t", str(big)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )
    wait_until_open(process, home / "warehouse.duckdb")
    time.sleep(0.5)
    assert process.poll() is None, "the load ended before it could be interrupted"
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)

    done = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    assert_one_line_error(done, 6, "load interrupted; table t was left as it was")
    assert _state(home) == loaded


# -- the same rules on PostgreSQL ----------------------------------------------------------


def _pg_rows(url: str, table: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as connection:
        return connection.execute(f'SELECT * FROM "{table}" ORDER BY 1').fetchall()


def _pg_staging(url: str) -> list[str]:
    with psycopg.connect(url) as connection:
        return [
            row[0]
            for row in connection.execute(
                "SELECT tablename FROM pg_tables WHERE tablename LIKE '\\_cohortsync\\_load\\_%'"
            ).fetchall()
        ]


@pytest.mark.parametrize(
    ("text", "mode", "needles"),
    [
        ("user_ids,n\nu1,1\nu2,2,x\n", "replace", ["line 3", "3 fields, but the header has 2"]),
        ('user_ids,n\n"u1,1\n', "replace", ["line 2", "unterminated quote"]),
        ("user_ids,n\n", "replace", ["has no rows"]),
        ("user_ids,n\nu3,1.5\n", "append", ["column 'n'", "'1.5'"]),
        ("user_ids,extra\nu3,x\n", "append", ["no column 'extra'"]),
    ],
    ids=["extra-field", "open-quote", "header-only", "rounding", "unknown-column"],
)
def test_postgres_loads_follow_the_same_rules(
    cli: CliRunner, tmp_path: Path, postgres_url: str, text: str, mode: str, needles: list[str]
) -> None:
    table = f"t_{tmp_path.name[-20:].replace('-', '_').lower()}"
    warehouse = ("--warehouse", postgres_url)
    good = _write(tmp_path / "good.csv", GOOD)
    assert cli("warehouse", "load", table, str(good), *warehouse).returncode == 0
    before = _pg_rows(postgres_url, table)

    done = cli(
        "warehouse",
        "load",
        table,
        str(_write(tmp_path / "bad.csv", text)),
        "--mode",
        mode,
        *warehouse,
    )

    assert_one_line_error(done, 3, *needles)
    assert _pg_rows(postgres_url, table) == before == [("u1", 1), ("u2", 2)]
    assert _pg_staging(postgres_url) == []


def test_postgres_mixed_ndjson_is_refused_or_typed(
    cli: CliRunner, tmp_path: Path, postgres_url: str
) -> None:
    warehouse = ("--warehouse", postgres_url)
    mixed = _write(tmp_path / "ids.ndjson", '{"user_ids": "a"}\n{"user_ids": 7}\n')

    done = cli("warehouse", "load", "pg_ids", str(mixed), *warehouse)
    assert_one_line_error(done, 3, "key 'user_ids'", "line 2")

    done = cli(
        "warehouse", "load", "pg_ids", str(mixed), "--schema", "user_ids=VARCHAR", *warehouse
    )
    assert done.returncode == 0, done.stderr
    assert _pg_rows(postgres_url, "pg_ids") == [("7",), ("a",)]
