"""Fixtures of the export tests: the partner API server, a warehouse, the CLI."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import duckdb
import pytest

from export.partner_server import PARTNER_API_KEY, PartnerServer
from support import CliRunner as CliRunner  # the suite's tests import it from here
from support import run_cli


@pytest.fixture
def partner(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PartnerServer]:
    """A fresh partner API server; the home's partner key matches it."""
    monkeypatch.setenv("COHORTSYNC_PARTNER_API_KEY", PARTNER_API_KEY)
    monkeypatch.setenv("COHORTSYNC_HTTP_BACKOFF_BASE", "0.01")
    monkeypatch.setenv("COHORTSYNC_HTTP_BACKOFF_MAX", "0.05")
    server = PartnerServer().start()
    yield server
    server.stop()


@pytest.fixture
def warehouse(home: Path) -> Callable[[str], None]:
    """Run SQL against the home's embedded DuckDB warehouse (to create tables)."""

    def run(sql: str) -> None:
        with duckdb.connect(str(home / "warehouse.duckdb")) as connection:
            connection.execute(sql)

    return run


@pytest.fixture
def cli(home: Path) -> CliRunner:
    """Run ``cohortsync`` in a subprocess, as a user would, with this test's env.

    The tests check the exit code themselves (``expect=None``).
    """
    return partial(run_cli, expect=None)
