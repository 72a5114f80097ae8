"""Fixtures shared by every suite: an isolated home, PostgreSQL, a Braze sandbox, a
command started in the background (``spawn``).

Tests use real parts: a real HTTP server on 127.0.0.1, real DuckDB files and
the PostgreSQL server on 127.0.0.1:5432 (a fresh database per test session).
A suite that needs a service skips only when the service is absent and
``COHORTSYNC_REQUIRE_ALL`` is unset; CI sets it so nothing skips silently.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cohortsync.filemodes import private_umask
from services import fresh_postgres_database
from support import cohortsync_command

# A process that opens a home narrows its umask (cohortsync.filemodes); the test
# process does so from the start, so a file a test writes into a home (a warehouse,
# a fixture) is private as cohortsync would make it, whichever test ran first in
# this worker. Otherwise a command's first run would say it made the home private.
private_umask()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh ``COHORTSYNC_HOME`` for one test, with no partner keys leaking in.

    Made 0700, as cohortsync makes a home: a wider one would be made private
    by the first command, which says so on stderr.
    """
    path = tmp_path / "home"
    path.mkdir(mode=0o700)
    monkeypatch.setenv("COHORTSYNC_HOME", str(path))
    for name in list(os.environ):
        if name.startswith("COHORTSYNC_") and name not in (
            "COHORTSYNC_HOME",
            "COHORTSYNC_REQUIRE_ALL",
            "COHORTSYNC_TEST_POSTGRES",
        ):
            monkeypatch.delenv(name)
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    with fresh_postgres_database("cohortsync_test") as url:
        yield url


@pytest.fixture
def braze_sandbox(tmp_path: Path) -> Iterator[object]:
    """A running Braze-compatible service on a fresh SQLite store.

    It holds a workspace with the ``treasuredata`` partner ("Treasure Data",
    a US partner API key) enabled and one data import key. The yielded
    :class:`cohortsync.braze.sandbox.Sandbox` has ``base_url``,
    ``partner_api_key``, ``data_import_key``, ``workspace`` (id), ``db_url``,
    ``rest_api_key``, and the admin operations: ``load_users(rows)``,
    ``members(cohort_id)``, ``cohorts()``, ``lock`` / ``unlock``,
    ``generate_key()``, ``invalidate_key(key)``, ``segment_members(name)``.
    """
    from cohortsync.braze.sandbox import running_sandbox

    with running_sandbox(f"sqlite:///{tmp_path / 'braze-sandbox.db'}") as sandbox:
        yield sandbox


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    """Keep each phase's report on the test, so a fixture can tell that its test failed."""
    report = yield
    setattr(item, f"report_{call.when}", report)
    return report


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
