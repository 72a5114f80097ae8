"""A Data Workbench set up for real: a DuckDB warehouse, the receiving service, an auth.

Shared by the saved-query, scheduler and apply tests: every export in them
travels over HTTP to the real Braze-compatible service.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from catalog_helpers import save_home_auth
from support import CliResult, run_cli

AUTH = "sandbox"


@dataclass
class Workbench:
    """The home, its warehouse file, and the sandbox service the auth points at."""

    home: Path
    sandbox: Any  # cohortsync.braze.sandbox.Sandbox

    @property
    def warehouse_path(self) -> Path:
        return self.home / "warehouse.duckdb"

    def sql(self, statement: str) -> None:
        """Run SQL on the home's DuckDB warehouse (create and change tables)."""
        with duckdb.connect(str(self.warehouse_path)) as connection:
            connection.execute(statement)

    def add_customers(self, count: int, *, table: str = "customers") -> None:
        """``count`` customers c1..cN (tier gold every 3rd), known to the service too."""
        self.sql(
            f"CREATE OR REPLACE TABLE {table} AS SELECT 'c' || i AS external_id, "
            "CASE WHEN i % 3 = 0 THEN 'gold' ELSE 'silver' END AS tier, "
            "'c' || i || '@example.com' AS email, i AS score FROM range(1, "
            f"{count + 1}) t(i)"
        )
        self.sandbox.load_users({"external_id": f"c{i}"} for i in range(1, count + 1))

    def members(self, cohort_id: str) -> list[str]:
        """External ids of the cohort in the service, sorted."""
        return sorted(m["external_id"] for m in self.sandbox.members(cohort_id))

    def cli(self, *args: str, timeout: float = 120) -> CliResult:
        """Run ``cohortsync`` in a subprocess, as a user would; the test checks the exit code."""
        return run_cli(*args, timeout=timeout, expect=None)

    def cli_json(self, *args: str) -> Any:
        return run_cli(*args, "--json").json()


def make_workbench(home: Path, sandbox: Any) -> Workbench:
    """Save the auth ``sandbox`` pointing at the running service."""
    os.environ["COHORTSYNC_PARTNER_API_KEY"] = sandbox.partner_api_key
    save_home_auth(AUTH, sandbox.base_url, sandbox.data_import_key)
    return Workbench(home, sandbox)
