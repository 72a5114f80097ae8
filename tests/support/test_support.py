"""The shared helpers: what a failing check says, and which environment a command gets."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from support import cli_environment, run_cli, run_cli_in_process, wait_for

UNKNOWN_RUN = ("runs", "show", "nope")


def test_the_subprocess_and_the_in_process_runner_end_alike(home: Path) -> None:
    outside = run_cli(*UNKNOWN_RUN, expect=2)
    inside = run_cli_in_process(*UNKNOWN_RUN, expect=2)
    assert (inside.returncode, inside.stdout, inside.stderr) == (2, outside.stdout, outside.stderr)
    assert run_cli_in_process("runs", "list", "--json").json() == []


def test_an_unexpected_exit_code_fails_showing_the_command_and_its_stderr(home: Path) -> None:
    with pytest.raises(
        AssertionError,
        match=r"^cohortsync runs show nope exited 2, expected 0\n--- stderr\n"
        r"error: no export run with id 'nope'",
    ):
        run_cli_in_process(*UNKNOWN_RUN)


def test_a_home_alone_drops_the_test_settings_and_env_unsets_with_none(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COHORTSYNC_PARTNER_API_KEY", "partner-key")
    monkeypatch.setenv("SOME_VARIABLE", "set")
    inherited = cli_environment()
    assert inherited["COHORTSYNC_HOME"] == str(home)
    assert inherited["COHORTSYNC_PARTNER_API_KEY"] == "partner-key"
    alone = cli_environment(tmp_path, {"SOME_VARIABLE": None, "OTHER": "1"})
    assert alone["COHORTSYNC_HOME"] == str(tmp_path)
    assert "COHORTSYNC_PARTNER_API_KEY" not in alone and "SOME_VARIABLE" not in alone
    assert alone["OTHER"] == "1"


def test_wait_for_returns_what_came_and_names_what_did_not() -> None:
    start = time.monotonic()
    assert wait_for(lambda: time.monotonic() - start > 0.05 and "came", 5, what="it") == "came"
    with pytest.raises(AssertionError, match=r"^timed out after 0\.1 s waiting for the moon$"):
        wait_for(lambda: False, 0.1, what="the moon")


def test_wait_for_stops_when_the_process_meant_to_bring_it_ended() -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stderr.write('boom'); sys.exit(3)"],
        stderr=subprocess.PIPE,
        text=True,
    )
    start = time.monotonic()
    with pytest.raises(
        AssertionError, match=r"^the command ended \(exit 3\) before the port\n--- stderr\nboom$"
    ):
        wait_for(lambda: False, 60, what="the port", process=process)
    assert time.monotonic() - start < 30
