"""Helpers every suite shares: running the ``cohortsync`` command, waiting for something.

Import them as ``from support import run_cli, wait_for`` (``tests/`` is on
``sys.path``, as for :mod:`services`). A suite's conftest may bind them to
its fixtures, but never defines a runner or a waiter of its own.
"""

from __future__ import annotations

from support.cli import (
    CliResult,
    CliRunner,
    cli_environment,
    cohortsync_command,
    run_cli,
    run_cli_in_process,
    stderr_lines,
)
from support.ports import served_url, served_url_on_stderr, unused_port
from support.waiting import accepting, wait_for

__all__ = [
    "CliResult",
    "CliRunner",
    "accepting",
    "cli_environment",
    "cohortsync_command",
    "run_cli",
    "run_cli_in_process",
    "served_url",
    "served_url_on_stderr",
    "stderr_lines",
    "unused_port",
    "wait_for",
]
