"""Fixtures of the receiving service's suite: every test runs on SQLite and PostgreSQL.

SQLite tests get a fresh store file each; PostgreSQL tests share the
session's fresh database and stay apart by using a workspace of their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cohortsync.braze.sandbox import Sandbox, running_sandbox

from .support import PartnerClient, unique


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL: a fresh SQLite file, or the session's PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'braze.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def sandbox(db_url: str) -> Iterator[Sandbox]:
    """A served workspace with treasuredata enabled, on the parametrised store."""
    with running_sandbox(db_url, workspace_name=unique("ws"), partner_api_key=unique("pk")) as made:
        yield made


@pytest.fixture
def partner(sandbox: Sandbox) -> PartnerClient:
    return PartnerClient(sandbox)
