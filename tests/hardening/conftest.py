"""Fixtures of the hardening suite: the real executable, and proof that nothing changed.

Every case of this suite runs ``cohortsync`` as a user runs it (a subprocess
with the test's home) and asserts three things: the exit code, the one-line
message, and that **nothing changed**. :func:`home_state` is that last part:
the contents of every warehouse table, every catalog row and every other file
of the home, so a test compares it before and after the failing command.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import subprocess
from functools import partial
from pathlib import Path
from typing import Any

import duckdb
import pytest

from support import CliRunner as CliRunner  # the suite's tests import it from here
from support import run_cli, wait_for

# Files whose bytes change when a database is merely opened; their contents are
# compared logically (tables and rows) instead.
_DATABASE_SUFFIXES = (".duckdb", ".db", ".duckdb.wal", ".db-wal", ".db-shm", ".db-journal")


@pytest.fixture
def cli(home: Path) -> CliRunner:
    """Run ``cohortsync`` on this test's home alone, as a user would; the test checks the code."""
    return partial(run_cli, home=home, expect=None)


def assert_one_line_error(done: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    """The command failed with ``code`` and one ``error:`` line holding every needle.

    No traceback, no second line: the message says what failed, on which
    input, and what to do.
    """
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


def warehouse_state(path: Path) -> dict[str, Any]:
    """Every table and view of a DuckDB file: its columns, types and sorted rows."""
    if not path.exists():
        return {}
    state: dict[str, Any] = {}
    with duckdb.connect(str(path), read_only=True) as connection:
        names = connection.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() "
            "UNION ALL SELECT schema_name, view_name FROM duckdb_views() WHERE NOT internal"
        ).fetchall()
        for schema, name in sorted(names):
            relation = connection.sql(f'SELECT * FROM "{schema}"."{name}"')
            rows = sorted(relation.fetchall(), key=repr)
            columns = list(zip(relation.columns, map(str, relation.types), strict=True))
            state[f"{schema}.{name}"] = (columns, rows)
    return state


def sqlite_state(path: Path) -> list[str]:
    """A SQLite database as its SQL dump (schema and every row)."""
    if not path.exists():
        return []
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return list(connection.iterdump())
    finally:
        connection.close()


def home_state(home: Path) -> dict[str, Any]:
    """Everything a home holds: warehouse tables, catalog rows, every other file's bytes."""
    state: dict[str, Any] = {
        "warehouse": warehouse_state(home / "warehouse.duckdb"),
        "catalog": sqlite_state(home / "catalog.db"),
        "braze": sqlite_state(home / "braze.db"),
    }
    files: dict[str, str] = {}
    if home.exists():
        for path in sorted(home.rglob("*")):
            if path.is_file() and not path.name.endswith(_DATABASE_SUFFIXES):
                files[str(path.relative_to(home))] = hashlib.sha256(path.read_bytes()).hexdigest()
    state["files"] = files
    return state


def open_files(pid: int) -> set[str]:
    """The paths a live process has open, read from ``/proc/PID/fd``."""
    opened = set()
    for descriptor in Path(f"/proc/{pid}/fd").glob("*"):
        with contextlib.suppress(OSError):
            opened.add(os.readlink(descriptor))
    return opened


def wait_until_open(process: subprocess.Popen[str], path: Path, timeout: float = 60) -> None:
    """Until ``process`` has ``path`` open: the command got past start-up and is at work.

    Testing a database's lock from here instead would race the command for it.
    """
    wait_for(
        lambda: str(path) in open_files(process.pid),
        timeout,
        what=f"the command to open {path}",
        interval=0.05,
        process=process,
    )
