"""Fixtures of the alert tests: a webhook receiver, the partner API server, a warehouse."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from alerts.receiver import Receiver

# The partner API server, the warehouse and the CLI are the export suite's fixtures.
from export.conftest import cli as cli
from export.conftest import partner as partner
from export.conftest import warehouse as warehouse
from export.partner_server import CLIENT_SECRET, PartnerServer
from support import CliResult

Cli = Callable[..., CliResult]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver that answers 200 until a test scripts it otherwise."""
    server = Receiver().start()
    yield server
    server.stop()


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
