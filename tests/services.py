"""Where the real services are, and what a suite does when one is missing.

A module of its own, not a conftest: suites import these names, and
``import conftest`` would find whichever suite's conftest was loaded first.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

POSTGRES_ADMIN_URL = os.environ.get(
    "COHORTSYNC_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def require_all() -> bool:
    return os.environ.get("COHORTSYNC_REQUIRE_ALL", "") not in ("", "0")


def missing_service(reason: str) -> None:
    """Skip on a laptop without the service; fail where every suite must run."""
    if require_all():
        pytest.fail(f"{reason} (COHORTSYNC_REQUIRE_ALL is set)")
    pytest.skip(reason)


@contextmanager
def fresh_postgres_database(prefix: str) -> Iterator[str]:
    """A new, empty PostgreSQL database named ``PREFIX_<random>``, dropped at the end.

    Yields its ``postgresql://`` URL (for psycopg and psql; SQLAlchemy callers add
    ``+psycopg``). Where no server answers, the caller is skipped, or failed
    under ``COHORTSYNC_REQUIRE_ALL`` (:func:`missing_service`).
    """
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        missing_service("psycopg is not installed")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = POSTGRES_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as error:
        missing_service(f"no PostgreSQL server answers at {admin}: {error}")
    try:
        yield f"{admin.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
