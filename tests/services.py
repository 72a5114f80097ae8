"""Where the real services are, and what a suite does when one is missing.

A module of its own, not a conftest: suites import these names, and
``import conftest`` would find whichever suite's conftest was loaded first.
"""

from __future__ import annotations

import os

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
