"""Fixtures of the alert tests: a webhook receiver, the partner API server, a warehouse."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pytest

from alerts.receiver import Receiver
from export.conftest import partner as partner  # the partner API server fixture
from export.partner_server import CLIENT_SECRET, PartnerServer
from support import CliResult, run_cli

Cli = Callable[..., CliResult]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver that answers 200 until a test scripts it otherwise."""
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def warehouse(home: Path) -> Callable[[str], None]:
    """Run SQL against the home's embedded DuckDB warehouse."""

    def run(sql: str) -> None:
        with duckdb.connect(str(home / "warehouse.duckdb")) as connection:
            connection.execute(sql)

    return run


@pytest.fixture
def cli(home: Path) -> Cli:
    """The real ``cohortsync`` in a subprocess; the test checks the exit code."""

    def run(*args: str, timeout: float = 120) -> CliResult:
        return run_cli(*args, expect=None, timeout=timeout)

    return run


@pytest.fixture
def customers(warehouse: Callable[[str], None]) -> Callable[[int], None]:
    """Replace the customers table with ``n`` customers, c0 .. c(n-1)."""

    def fill(count: int) -> None:
        warehouse(
            "CREATE OR REPLACE TABLE customers AS SELECT 'c' || i::VARCHAR AS external_id "
            f"FROM range({count}) t(i)"
        )

    fill(10)
    return fill


@pytest.fixture
def auth(partner: PartnerServer, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> str:
    """A saved authentication of the partner server, and quick alert retries."""
    monkeypatch.setenv("COHORTSYNC_ALERT_BACKOFF", "0.05")
    created = cli(
        "auth", "create", "local", "--endpoint", partner.url, "--data-import-key", CLIENT_SECRET
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    return "local"
