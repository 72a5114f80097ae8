"""Fixtures of the upgrade suite: copies of state frozen by earlier releases.

Each test works on its own copy, so an upgrade (which rewrites the file and
leaves a backup beside it) never touches the committed fixtures.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from services import fresh_postgres_database, missing_service
from support import CliResult, run_cli

DATABASES = Path(__file__).parent / "fixtures" / "databases"


@pytest.fixture(scope="session")
def facts() -> dict[str, Any]:
    """What the fixtures hold, as recorded by make_database_fixtures.py."""
    return json.loads((DATABASES / "facts.json").read_text())


@pytest.fixture
def old_home(home: Path) -> Path:
    """The test's home holding the previous release's catalog.db and secret.key."""
    shutil.copyfile(DATABASES / "catalog.db", home / "catalog.db")
    shutil.copyfile(DATABASES / "secret.key", home / "secret.key")
    (home / "secret.key").chmod(0o600)
    return home


@pytest.fixture
def old_store(tmp_path: Path) -> Callable[[str], Path]:
    """A copy of a frozen SQLite store: ``braze.db`` (previous release) or ``braze-0001.db``."""

    def copy(name: str = "braze.db") -> Path:
        target = tmp_path / "store" / "braze.db"
        target.parent.mkdir(exist_ok=True)
        shutil.copyfile(DATABASES / name, target)
        return target

    return copy


@pytest.fixture
def cli() -> Callable[..., CliResult]:
    """Run the real ``cohortsync`` with the test's environment; exit 0 unless ``check=False``."""

    def run(*args: str, check: bool = True, timeout: float = 120) -> CliResult:
        return run_cli(*args, timeout=timeout, expect=0 if check else None)

    return run


@pytest.fixture
def old_postgres_store(postgres_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database restored from the previous release's pg_dump."""
    if shutil.which("psql") is None:
        missing_service("psql is not installed")
    with fresh_postgres_database("cohortsync_upgrade") as url:
        subprocess.run(
            ["psql", "--quiet", "--no-psqlrc", "-v", "ON_ERROR_STOP=1", "-f",
             str(DATABASES / "braze-postgres.sql"), url],
            check=True,
            capture_output=True,
        )  # fmt: skip
        yield url
