"""A user's mistake ends in one line with what to do, never in a Python traceback.

Each case is typed as a clumsy new user would, through the real executable:
a file that is not UTF-8, YAML aliases that explode or refer to themselves,
rules nested thousands deep, a port or a count out of range, ``runs resume``
of a run that never sent anything, Ctrl-C, a reader that stops early. Every
case asserts the exit code, the message, and that the home did not change.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from catalog_helpers import save_home_auth
from support import run_cli, wait_for

from .conftest import CliRunner, assert_one_line_error, home_state

HUGE = "99999999999999999999"
EXPORT = ("export", "--table", "t", "--auth", "x", "--cohort-id", "c")


def assert_usage_error(done: subprocess.CompletedProcess[str], option: str, *needles: str) -> None:
    """Click's usage error: exit 2, the option named, no traceback."""
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    assert f"Invalid value for '{option}'" in done.stderr, done.stderr
    for needle in needles:
        assert needle in done.stderr, (needle, done.stderr)


@pytest.fixture
def customers(cli: CliRunner, tmp_path: Path) -> Path:
    """A warehouse table ``customers`` and a parent of it."""
    path = tmp_path / "customers.csv"
    path.write_text("user_ids,country\nu1,FR\nu2,BE\n")
    assert cli("warehouse", "load", "customers", str(path)).returncode == 0
    done = cli("audience", "parent", "create", "customers", "--table", "customers")
    assert done.returncode == 0 or "--key" in done.stderr
    if done.returncode != 0:
        args = ("audience", "parent", "create", "customers", "--table", "customers")
        assert cli(*args, "--key", "user_ids").returncode == 0
    return path


# --- files --------------------------------------------------------------------------


def test_files_that_are_not_utf8_are_refused(cli: CliRunner, home: Path, tmp_path: Path) -> None:
    yaml_file = tmp_path / "defs.yaml"
    yaml_file.write_bytes(b"queries:\n  - name: caf\xe9\n")
    sql_file = tmp_path / "q.sql"
    sql_file.write_bytes(b"SELECT 'caf\xe9' AS user_ids\n")
    before = home_state(home)
    done = cli("apply", str(yaml_file))
    assert_one_line_error(done, 2, str(yaml_file), "not UTF-8", "line 2", "iconv")
    done = cli("export", "--query-file", str(sql_file), "--auth", "x", "--cohort-id", "c")
    assert_one_line_error(done, 2, f"the query file {sql_file}", "not UTF-8", "0xe9")
    done = cli("query", "save", "q", "--sql-file", str(sql_file))
    assert_one_line_error(done, 2, f"--sql-file {sql_file}", "not UTF-8")
    assert home_state(home) == before


def test_missing_files_and_directories_are_refused(cli: CliRunner, tmp_path: Path) -> None:
    missing = tmp_path / "missing.sql"
    done = cli("export", "--query-file", str(missing), "--auth", "x", "--cohort-id", "c")
    assert_one_line_error(done, 2, "No such file or directory")
    assert_one_line_error(cli("apply", str(missing)), 2, "No such file or directory")
    done = cli("query", "save", "q", "--sql-file", str(tmp_path))
    assert_usage_error(done, "--sql-file", "is a directory")
    assert_usage_error(cli("apply", str(tmp_path)), "file", "is a directory")


# --- YAML aliases and nesting -------------------------------------------------------

LAUGHS = "\n".join(
    [
        'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]',
        *(
            f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]"
            for previous, name in zip("abcdefg", "bcdefgh", strict=True)
        ),
    ]
)


def test_exploding_yaml_aliases_are_refused_quickly(
    cli: CliRunner, home: Path, tmp_path: Path
) -> None:
    path = tmp_path / "laughs.yaml"
    path.write_text(LAUGHS + "\n")
    before = home_state(home)
    started = time.monotonic()
    done = cli("apply", str(path))
    assert time.monotonic() - started < 20
    assert_one_line_error(done, 2, "more than 500,000 values", "aliases")
    assert home_state(home) == before


def test_a_yaml_alias_inside_its_own_anchor_is_refused(
    cli: CliRunner, home: Path, tmp_path: Path
) -> None:
    path = tmp_path / "self.yaml"
    path.write_text("queries: &q\n  - *q\n")
    before = home_state(home)
    assert_one_line_error(cli("apply", str(path)), 2, "refers to its own anchor")
    assert home_state(home) == before


def _nested_rules(depth: int) -> str:
    rule = '{"column": "country", "op": "=", "value": "FR"}'
    return '{"not": ' * depth + rule + "}" * depth


@pytest.mark.parametrize("depth", [60, 5_000])
def test_rules_nested_too_deep_are_refused(
    cli: CliRunner, home: Path, tmp_path: Path, customers: Path, depth: int
) -> None:
    rules_file = tmp_path / "rules.json"
    rules_file.write_text(_nested_rules(depth))
    yaml_file = tmp_path / "segments.yaml"
    yaml_file.write_text(
        f"segments:\n  - name: deep\n    parent: customers\n    rules: {_nested_rules(depth)}\n"
    )
    before = home_state(home)
    for rules in (str(rules_file), _nested_rules(depth)):
        done = cli("segment", "create", "deep", "--parent", "customers", "--rules", rules)
        assert_one_line_error(done, 2, "nested more than 50 levels deep", "flatten")
    done = cli("apply", str(yaml_file))
    assert_one_line_error(done, 2, "nested more than", "levels deep")
    assert home_state(home) == before


def test_rules_fifty_deep_are_accepted(cli: CliRunner, customers: Path) -> None:
    done = cli("segment", "create", "ok", "--parent", "customers", "--rules", _nested_rules(49))
    assert done.returncode == 0, done.stderr


# --- numeric options ----------------------------------------------------------------


@pytest.mark.parametrize(("port", "bound"), [("70000", "65535"), ("-1", "0")])
def test_a_port_out_of_range_is_a_usage_error(cli: CliRunner, port: str, bound: str) -> None:
    assert_usage_error(cli("braze", "serve", "--port", port), "--port", bound)


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (("warehouse", "query", "SELECT 1", "--limit", HUGE), "--limit"),
        (("runs", "list", "--limit", HUGE), "--limit"),
        (("segment", "show", "s", "--sample", HUGE), "--sample"),
        (("activation", "show", "a", "--runs", HUGE), "--runs"),
        (("scheduler", "--once", "--max-parallel", HUGE), "--max-parallel"),
        (("scheduler", "--once", "--poll-interval", "1e400"), "--poll-interval"),
        ((*EXPORT, "--lock-timeout", "1e400"), "--lock-timeout"),
    ],
)  # fmt: skip
def test_an_over_large_number_is_a_usage_error(
    cli: CliRunner, home: Path, args: tuple[str, ...], option: str
) -> None:
    before = home_state(home)
    assert_usage_error(cli(*args), option, "less than or equal to")
    assert home_state(home) == before


@pytest.mark.parametrize(
    "args",
    [(*EXPORT, "--threads"), ("runs", "resume", "r", "--threads")],
)
@pytest.mark.parametrize(
    ("value", "needle"),
    [(HUGE, "is above 64"), ("0", "is below 1"), ("many", "neither auto nor a number")],
)
def test_a_thread_count_out_of_bounds_is_a_usage_error(
    cli: CliRunner, home: Path, args: tuple[str, ...], value: str, needle: str
) -> None:
    """--threads takes auto or 1..64 on every command, refused in the definitions' words."""
    before = home_state(home)
    assert_usage_error(cli(*args, value), "--threads", needle, "give auto or 1 to 64")
    assert home_state(home) == before


# --- runs resume --------------------------------------------------------------------


def test_resuming_an_activation_run_that_never_sent_says_to_run_it_again(
    cli: CliRunner, home: Path, customers: Path
) -> None:
    save_home_auth("prod", "http://127.0.0.1:1", "dik-0123456789abcdef0123")
    rules = '{"column": "country", "op": "=", "value": "FR"}'
    assert cli("segment", "create", "fr", "--parent", "customers", "--rules", rules).returncode == 0
    created = cli(
        "activation", "create", "fr_vip", "--segment", "fr", "--auth", "prod",
        "--cohort-id", "fr", "--map", "user_ids=user_ids",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert cli("auth", "delete", "prod").returncode == 0
    failed = cli("activation", "run", "fr_vip")
    assert failed.returncode == 2, failed.stderr
    (run,) = json.loads(cli("runs", "list", "--json").stdout)
    before = home_state(home)
    done = cli("runs", "resume", run["id"])
    assert_one_line_error(
        done, 2, f"run {run['id']}", "never started sending", "cohortsync activation run fr_vip"
    )
    assert home_state(home) == before
    shown = json.loads(cli("runs", "show", run["id"], "--json").stdout)
    assert shown["resumable"] is False


# --- interrupts and pipes -----------------------------------------------------------


def _blocked_on_stdin(process: subprocess.Popen[str], started: float) -> bool:
    """Whether the process sleeps reading its stdin pipe (Linux tells it in ``wchan``).

    A kernel that hides ``wchan`` (it reads ``0``, or not at all) cannot tell:
    then the process is given two seconds to reach its read instead.
    """
    try:
        wchan = Path(f"/proc/{process.pid}/wchan").read_text().strip()
    except OSError:
        wchan = ""
    if wchan in ("", "0"):
        return time.monotonic() - started > 2
    return "pipe" in wchan


def test_ctrl_c_is_one_line_and_exit_6(home: Path) -> None:
    """``auth create --data-import-key -`` waits on stdin: a Ctrl-C there, as in any command."""
    environment = {
        "COHORTSYNC_HOME": str(home),
        "COHORTSYNC_PARTNER_API_KEY": "partner-key",
        "PATH": "/usr/bin:/bin",
    }
    arguments = ["auth", "create", "prod", "--endpoint", "http://127.0.0.1:1"]
    process = subprocess.Popen(
        [sys.executable, "-m", "cohortsync", *arguments, "--data-import-key", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )
    try:
        started = time.monotonic()
        wait_for(
            lambda: _blocked_on_stdin(process, started), what="a read of stdin", process=process
        )
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    done = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    assert_one_line_error(done, 6, "interrupted (Ctrl-C)", "run it again")
    assert "Aborted" not in err
    assert json.loads(run_cli("auth", "list", "--json", home=home).stdout) == []


def test_a_reader_that_stops_early_ends_quietly(cli: CliRunner, home: Path) -> None:
    sql = "SELECT CAST(range AS VARCHAR) AS user_ids FROM range(100000)"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cohortsync",
            "warehouse",
            "query",
            sql,
            "--limit",
            "100000",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={"COHORTSYNC_HOME": str(home), "PATH": "/usr/bin:/bin"},
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.read(200)
    process.stdout.close()
    err = process.stderr.read().decode()
    process.wait(timeout=60)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert err.strip() == ""
    assert process.returncode in (0, 1)


# --- other clumsy input -------------------------------------------------------------


def test_other_clumsy_input_is_one_line(cli: CliRunner, home: Path) -> None:
    before = home_state(home)
    env = {"COHORTSYNC_PARTNER_API_KEY": "p", "COHORTSYNC_DATA_IMPORT_KEY": "k"}
    save = ("query", "save", "q", "--sql", "SELECT 1")
    bad_pg = "postgresql://u:pw@[::1/db"
    cases = [
        (("auth", "create", "my auth/../x", "--endpoint", "http://h"), "invalid authentication"),
        (("auth", "create", "x", "--endpoint", "http://[::1"), "is not a valid URL"),
        ((*EXPORT[:3], "--endpoint", "http://[::1", "--cohort-id", "c"), "not a valid URL"),
        (("warehouse", "query", "SELECT 1", "--warehouse", bad_pg), "cannot read the warehouse"),
        ((*save, "--schedule", "61 * * * *"), "cron expression"),
        ((*save, "--schedule", "0 6 * * *", "--timezone", "Mars/Base"), "unknown time zone"),
        (("segment", "create", "s", "--parent", "p", "--rules", '{"and": ['), "not valid JSON"),
    ]  # fmt: skip
    for args, needle in cases:
        line = assert_one_line_error(cli(*args, env=env), 2, needle)
        assert "pw@" not in line
    assert home_state(home) == before
