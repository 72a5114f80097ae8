"""Fixtures of the run tests: a recording partner API server, a warehouse, a command
started in the background.

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
from support import cohortsync_command

__all__ = ["partner", "warehouse"]


@pytest.fixture
def spawn(home: Path) -> Iterator[Callable[[list[str]], subprocess.Popen[str]]]:
    """Start ``cohortsync ARGS`` in the background; whatever is left is killed at the end."""
    started: list[subprocess.Popen[str]] = []

    def start(args: list[str]) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            cohortsync_command(*args),
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
