"""Run ``cohortsync`` as a user runs it, and check how it ended.

:func:`run_cli` is the one way the suites run a command: the real executable
in a subprocess, so exit codes, signals, stdin and the environment are what
a user gets. :func:`run_cli_in_process` has the same interface and result for
the few suites that make dozens of quick administrative calls, where starting
an interpreter per call would double their time.
"""

from __future__ import annotations

import io
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

from cohortsync.cli.main import main

# Enough of a long output to see what went wrong, not a whole export report.
_SHOWN_STDOUT = 2000


class CliResult(subprocess.CompletedProcess[str]):
    """How a command ended: ``returncode``, ``stdout``, ``stderr``, and stdout as JSON."""

    def json(self) -> Any:
        """Stdout parsed as JSON (the command was given ``--json``)."""
        return json.loads(self.stdout)


CliRunner = Callable[..., CliResult]


def cohortsync_command(*args: str) -> list[str]:
    """The command line of the real executable: this interpreter running the installed package.

    For tests that start a long-running command themselves (``subprocess.Popen``)
    to signal it or watch it work.
    """
    return [sys.executable, "-m", "cohortsync", *args]


Environment = Mapping[str, str | None]


def cli_environment(
    home: Path | str | None = None, env: Environment | None = None
) -> dict[str, str]:
    """The environment a command runs with.

    Without ``home``: the test's own environment, where the ``home`` fixture
    set ``COHORTSYNC_HOME`` and the test set any other setting (monkeypatch).
    With ``home``: a user who set only ``COHORTSYNC_HOME=home``; no other
    ``COHORTSYNC_`` setting of the test process passes through. ``env`` is
    applied last either way; a ``None`` value there unsets the variable.
    """
    if home is None:
        environment = dict(os.environ)
    else:
        environment = {
            name: value for name, value in os.environ.items() if not name.startswith("COHORTSYNC_")
        }
        environment["COHORTSYNC_HOME"] = str(home)
    for name, value in (env or {}).items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    return environment


def run_cli(
    *args: str,
    home: Path | str | None = None,
    env: Environment | None = None,
    stdin: str | None = None,
    timeout: float = 120,
    expect: int | None = 0,
    cwd: Path | None = None,
) -> CliResult:
    """Run ``cohortsync ARGS`` to completion in a subprocess.

    The environment is :func:`cli_environment` of ``home`` and ``env``. The
    exit code must be ``expect`` (the failure shows stderr and stdout); a
    test that checks the code itself passes ``expect=None``.
    """
    __tracebackhide__ = True
    done = subprocess.run(
        cohortsync_command(*args),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_environment(home, env),
        cwd=cwd,
    )
    return _checked(CliResult(done.args, done.returncode, done.stdout, done.stderr), args, expect)


def run_cli_in_process(
    *args: str,
    home: Path | str | None = None,
    env: Environment | None = None,
    stdin: str | None = None,
    expect: int | None = 0,
) -> CliResult:
    """:func:`run_cli` without the subprocess: the entry point called in this process.

    Same arguments (but no timeout), same result. Only for commands that
    neither wait on signals nor leave threads or servers behind: the
    environment, ``sys.argv``, stdin, stdout and stderr are swapped for the
    call and restored after it.
    """
    __tracebackhide__ = True
    argv = ["cohortsync", *args]
    out, err = io.StringIO(), io.StringIO()
    environment = cli_environment(home, env)
    with (
        _swapped_process_state(argv, environment, stdin),
        redirect_stdout(out),
        redirect_stderr(err),
    ):
        code = _exit_code_of_main()
    return _checked(CliResult(argv, code, out.getvalue(), err.getvalue()), args, expect)


@contextmanager
def _swapped_process_state(
    argv: list[str], environment: dict[str, str], stdin: str | None
) -> Iterator[None]:
    saved_argv, saved_environment, saved_stdin = sys.argv, dict(os.environ), sys.stdin
    sys.argv = argv
    os.environ.clear()
    os.environ.update(environment)
    sys.stdin = io.StringIO(stdin or "")
    try:
        yield
    finally:
        sys.argv, sys.stdin = saved_argv, saved_stdin
        os.environ.clear()
        os.environ.update(saved_environment)


def _exit_code_of_main() -> int:
    """The code the process would exit with, as the interpreter computes it from SystemExit."""
    try:
        main()
    except SystemExit as done:
        if done.code is None or isinstance(done.code, int):
            return done.code or 0
        print(done.code, file=sys.stderr)
        return 1
    return 0


def _checked(result: CliResult, args: tuple[str, ...], expect: int | None) -> CliResult:
    __tracebackhide__ = True
    if expect is not None and result.returncode != expect:
        stdout = result.stdout[-_SHOWN_STDOUT:]
        raise AssertionError(
            f"{shlex.join(['cohortsync', *args])} exited {result.returncode}, expected {expect}\n"
            f"--- stderr\n{result.stderr}--- stdout (last {_SHOWN_STDOUT} characters)\n{stdout}"
        )
    return result


def stderr_lines(process: subprocess.Popen[str], count: int) -> list[str]:
    """The first ``count`` lines a running command printed on stderr (fewer if it ended).

    For a server that says where it listens and how to log in, then keeps
    running: started with ``stderr=subprocess.PIPE, text=True``. Each read
    waits for its line; the test's own timeout bounds a command that never
    prints.
    """
    assert process.stderr is not None, "start the command with stderr=subprocess.PIPE"
    lines: list[str] = []
    while len(lines) < count:
        line = process.stderr.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
    return lines
