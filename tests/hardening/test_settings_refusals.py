"""Settings that would throw data away are refused, and nothing is changed.

An empty or relative ``COHORTSYNC_HOME``, a home that is a file, read-only or
damaged, a DuckDB URL with no file, an in-memory warehouse where a stored
one is needed, and a missing ``secret.key`` while authentications are saved:
each ends in one ``error:`` line that says what to do, and leaves the home
(and the current directory) exactly as it was.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from catalog_helpers import save_home_auth
from support import CliResult, run_cli

from .conftest import CliRunner, assert_one_line_error, home_state


def run_in(cwd: Path, *args: str, home: str) -> CliResult:
    """``cohortsync ARGS`` run from ``cwd`` with ``COHORTSYNC_HOME`` set to ``home`` verbatim."""
    return run_cli(*args, home=home, cwd=cwd, expect=None)


@pytest.fixture
def ids_csv(tmp_path: Path) -> Path:
    path = tmp_path / "ids.csv"
    path.write_text("user_ids\nu1\nu2\n")
    return path


# --- the home -----------------------------------------------------------------------


@pytest.mark.parametrize("value", ["", "  "])
@pytest.mark.parametrize("args", [("auth", "list"), ("warehouse", "tables"), ("runs", "list")])
def test_an_empty_home_is_refused_and_the_current_directory_stays_empty(
    tmp_path: Path, value: str, args: tuple[str, ...]
) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    done = run_in(cwd, *args, home=value)
    assert_one_line_error(
        done, 2, "COHORTSYNC_HOME is set but empty", "set it to a directory", "unset it"
    )
    assert list(cwd.iterdir()) == []


def test_a_relative_home_is_refused(tmp_path: Path, ids_csv: Path) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    done = run_in(cwd, "warehouse", "load", "t", str(ids_csv), home="myhome")
    assert_one_line_error(done, 2, "COHORTSYNC_HOME='myhome' is a relative path", str(cwd))
    assert list(cwd.iterdir()) == []


def test_a_home_that_is_a_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "home-file"
    path.write_text("not a directory\n")
    done = run_in(tmp_path, "auth", "list", home=str(path))
    assert_one_line_error(done, 2, f"the home {path} (COHORTSYNC_HOME) is not a directory")
    assert path.read_text() == "not a directory\n"


def test_a_home_that_cannot_be_created_is_refused(tmp_path: Path) -> None:
    done = run_in(tmp_path, "auth", "list", home="/proc/cohortsync-no-such/home")
    assert_one_line_error(done, 2, "cannot create the home directory", "COHORTSYNC_HOME")


def test_a_damaged_catalog_is_refused_and_left_as_it_is(cli: CliRunner, home: Path) -> None:
    catalog = home / "catalog.db"
    catalog.write_bytes(b"this is not a SQLite database, but the user's only copy\n" * 20)
    before = catalog.read_bytes()
    for args in (("auth", "list"), ("runs", "list"), ("query", "list")):
        done = cli(*args)
        assert_one_line_error(done, 2, f"the catalog {catalog} cannot be read", "backup")
    assert catalog.read_bytes() == before
    assert sorted(p.name for p in home.iterdir()) == ["catalog.db"]


def _make_read_only(path: Path) -> None:
    """``path`` and everything in it read-only, even for root (which ignores modes)."""
    if os.geteuid() == 0:
        done = subprocess.run(["chattr", "-R", "+i", str(path)], capture_output=True)
        if done.returncode != 0:
            pytest.skip("running as root without chattr: no way to make a file read-only")
    else:
        for each in [path, *path.rglob("*")]:
            each.chmod(0o500 if each.is_dir() else 0o400)


def _make_writable(path: Path) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-R", "-i", str(path)], capture_output=True)
    else:
        for each in [path, *path.rglob("*")]:
            each.chmod(0o700 if each.is_dir() else 0o600)


@pytest.mark.parametrize("with_catalog", [False, True])
def test_a_read_only_home_is_refused(cli: CliRunner, home: Path, with_catalog: bool) -> None:
    if with_catalog:
        assert cli("auth", "list").returncode == 0
    before = home_state(home)
    _make_read_only(home)
    try:
        done = cli("query", "save", "q", "--sql", "SELECT 'u1' AS user_ids")
    finally:
        _make_writable(home)
    # Found when the catalog opens, or at its first write when it opened read-only.
    assert_one_line_error(done, 2, "cannot write", "COHORTSYNC_HOME")
    assert home_state(home) == before


def test_a_catalog_made_read_only_fails_its_write_in_one_line(cli: CliRunner, home: Path) -> None:
    assert cli("auth", "list").returncode == 0
    before = home_state(home)
    _make_read_only(home / "catalog.db")
    try:
        done = cli("query", "save", "q", "--sql", "SELECT 'u1' AS user_ids")
    finally:
        _make_writable(home / "catalog.db")
    assert_one_line_error(done, 2, "cannot write to the home's database", "readonly", "df")
    assert home_state(home) == before


# --- the warehouse URL --------------------------------------------------------------


@pytest.mark.parametrize("url", ["duckdb:///", "duckdb://"])
def test_a_duckdb_url_without_a_file_is_refused(
    cli: CliRunner, home: Path, ids_csv: Path, url: str
) -> None:
    assert cli("warehouse", "load", "keep", str(ids_csv)).returncode == 0
    before = home_state(home)
    for args in (
        ("warehouse", "load", "t", str(ids_csv), "--warehouse", url),
        ("warehouse", "query", "SELECT 1", "--warehouse", url),
    ):
        assert_one_line_error(cli(*args), 2, f"the warehouse URL {url!r} names no database file")
    done = cli("warehouse", "load", "t", str(ids_csv), env={"COHORTSYNC_WAREHOUSE": url})
    assert_one_line_error(done, 2, "names no database file")
    assert home_state(home) == before


MEMORY = "duckdb:///:memory:"


def test_an_in_memory_warehouse_is_refused_where_a_stored_one_is_needed(
    cli: CliRunner, home: Path, ids_csv: Path, tmp_path: Path
) -> None:
    assert cli("warehouse", "load", "customers", str(ids_csv)).returncode == 0
    before = home_state(home)
    definitions = tmp_path / "memory.yaml"
    definitions.write_text(
        "parents:\n  - name: p\n    table: customers\n    key: user_ids\n"
        f'    warehouse: "{MEMORY}"\n'
    )
    cases = [
        (("warehouse", "load", "t", str(ids_csv), "--warehouse", MEMORY), "warehouse load"),
        (
            (
                "audience",
                "parent",
                "create",
                "p",
                "--table",
                "customers",
                "--key",
                "user_ids",
                "--warehouse",
                MEMORY,
            ),
            "parent 'p'",
        ),
        (("query", "save", "q", "--sql", "SELECT 1", "--warehouse", MEMORY), "saved query 'q'"),
        (("apply", str(definitions)), "parents[0].warehouse"),
        (("apply", str(definitions), "--dry-run"), "parents[0].warehouse"),
    ]
    for args, where in cases:
        assert_one_line_error(cli(*args), 2, where, "needs a stored warehouse", "is in memory")
    done = cli("warehouse", "load", "t", str(ids_csv), env={"COHORTSYNC_WAREHOUSE": MEMORY})
    assert_one_line_error(done, 2, "warehouse load needs a stored warehouse")
    done = cli("scheduler", "--once", env={"COHORTSYNC_WAREHOUSE": MEMORY})
    assert_one_line_error(done, 2, "the scheduler (COHORTSYNC_WAREHOUSE) needs a stored warehouse")
    assert home_state(home) == before


def test_an_in_memory_warehouse_still_answers_a_one_off_query(cli: CliRunner, home: Path) -> None:
    """Reading changes nothing later commands rely on: a scratch check stays allowed."""
    done = cli("warehouse", "query", "SELECT 'u1' AS user_ids", "--warehouse", MEMORY, "--json")
    assert done.returncode == 0, done.stderr
    assert '"row_count": 1' in done.stdout


def test_a_relative_warehouse_path_is_saved_absolute(tmp_path: Path) -> None:
    """A saved query that names ``duckdb:///w.duckdb`` means the file next to where it was saved.

    The scheduler and later commands run from other directories; saved as
    given, the query would open (and create) another, empty file from each.
    """
    home = tmp_path / "home"
    work = tmp_path / "work"
    work.mkdir()
    saved = run_in(
        work,
        "query", "save", "q", "--sql", "SELECT 'u1' AS user_ids",
        "--warehouse", "duckdb:///data/w.duckdb",
        home=str(home),
    )  # fmt: skip
    assert saved.returncode == 0, saved.stderr
    shown = run_in(tmp_path, "query", "show", "q", "--json", home=str(home))
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["warehouse_url"] == f"duckdb:///{work / 'data' / 'w.duckdb'}"


# --- the secret key -----------------------------------------------------------------

KEY = "dik-0123456789abcdef0123"


def test_a_missing_secret_key_is_refused_while_authentications_exist(
    cli: CliRunner, home: Path, ids_csv: Path
) -> None:
    assert cli("warehouse", "load", "customers", str(ids_csv)).returncode == 0
    save_home_auth("prod", "http://127.0.0.1:1", KEY)
    (home / "secret.key").unlink()
    before = home_state(home)
    env = {"COHORTSYNC_PARTNER_API_KEY": "partner-key", "COHORTSYNC_DATA_IMPORT_KEY": KEY}
    needles = ("secret key file", "secret.key is missing", "restore", "chmod 600")
    done = cli("export", "--auth", "prod", "--cohort-id", "c", "--table", "customers", env=env)
    line = assert_one_line_error(done, 2, *needles)
    assert "cohortsync auth delete NAME" in line and "cohortsync auth create NAME" in line
    done = cli("auth", "create", "other", "--endpoint", "http://127.0.0.1:1", env=env)
    assert_one_line_error(done, 2, *needles)
    assert home_state(home) == before
    assert not (home / "secret.key").exists()

    # The way out still works: list the authentications, delete them...
    listed = cli("auth", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert '"prod"' in listed.stdout
    deleted = cli("auth", "delete", "prod")
    assert deleted.returncode == 0, deleted.stderr
    # ...and a home with no authentication left may start a fresh key.
    save_home_auth("prod", "http://127.0.0.1:1", KEY)
    assert (home / "secret.key").exists()
    assert (home / "secret.key").stat().st_mode & 0o777 == 0o600
