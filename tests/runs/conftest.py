"""Fixtures of the run tests: a recording partner API server, a warehouse, the CLI.

The exporter always runs as a real ``cohortsync`` process, so signals and
kills are real; the server is the faithful partner API of the export suite,
which records every request and its answer.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# The partner API server and warehouse fixtures are the export suite's.
from export.conftest import partner, warehouse

__all__ = ["partner", "warehouse"]


@pytest.fixture
def run_cli(home: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run a command line to completion with this test's environment."""

    def run(command: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, env=dict(os.environ)
        )

    return run


@pytest.fixture
def spawn(home: Path) -> Iterator[Callable[[list[str]], subprocess.Popen[str]]]:
    """Start a command line in the background; whatever is left is killed at the end."""
    started: list[subprocess.Popen[str]] = []

    def start(command: list[str]) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ),
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate()
