"""A ready-to-use sandbox: a workspace with the partner enabled and a data import key.

Tests, the demo and anyone trying an export need the same setup every time:
one workspace, the ``treasuredata`` partner with a US partner API key,
enabled, and one data import key. :func:`provision` makes it in a store;
:func:`running_sandbox` also serves it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from cohortsync.braze import admin
from cohortsync.braze.keys import new_key
from cohortsync.braze.ratelimit import RateLimit
from cohortsync.braze.server import serve_in_background
from cohortsync.braze.store import Store, open_store


@dataclass
class Sandbox:
    """A provisioned workspace and the keys a partner client needs to reach it."""

    store: Store
    db_url: str
    workspace: int
    workspace_name: str
    rest_api_key: str
    partner: str
    partner_api_key: str
    data_import_key: str
    base_url: str = ""

    def load_users(self, rows: Iterable[Any]) -> dict[str, int]:
        """Load users from dicts of the NDJSON line shape."""
        return admin.load_users(self.store, workspace=self.workspace, rows=rows)

    def members(self, cohort_id: str) -> list[dict[str, Any]]:
        """The cohort's sorted ``{"external_id", "aliases", "device_ids"}`` list."""
        return admin.cohort_members(self.store, cohort_id, workspace=self.workspace)

    def cohorts(self) -> list[dict[str, Any]]:
        """Every cohort with its size and match counts."""
        return admin.list_cohorts(self.store, workspace=self.workspace)

    def lock(self, cohort_id: str) -> None:
        admin.lock_cohort(self.store, cohort_id, workspace=self.workspace)

    def unlock(self, cohort_id: str) -> None:
        admin.unlock_cohort(self.store, cohort_id, workspace=self.workspace)

    def generate_key(self) -> str:
        """Another valid data import key of this workspace and partner."""
        made = admin.generate_key(self.store, workspace=self.workspace, partner=self.partner)
        return str(made["data_import_key"])

    def invalidate_key(self, key: str) -> None:
        admin.invalidate_key(self.store, key)

    def segment_members(self, name: str) -> list[dict[str, Any]]:
        return admin.segment_members(self.store, name, workspace=self.workspace)


def provision(
    store: Store,
    *,
    workspace_name: str = "sandbox",
    partner: str = admin.DEFAULT_PARTNER,
    display_name: str = "Treasure Data",
    partner_api_key: str | None = None,
    region: str = "us",
) -> Sandbox:
    """Create the workspace, the partner (or add the key), enable it, make a key."""
    workspace = admin.create_workspace(store, workspace_name)
    partner_key = partner_api_key or new_key()
    admin.create_partner(
        store, partner, api_key=partner_key, display_name=display_name, region=region
    )
    admin.enable_partner(store, partner, workspace=workspace["id"])
    key = admin.generate_key(store, workspace=workspace["id"], partner=partner)
    return Sandbox(
        store=store,
        db_url=store.url,
        workspace=workspace["id"],
        workspace_name=workspace_name,
        rest_api_key=workspace["rest_api_key"],
        partner=partner,
        partner_api_key=partner_key,
        data_import_key=key["data_import_key"],
    )


@contextmanager
def running_sandbox(
    db_url: str,
    *,
    rate_limit: RateLimit | str | int = RateLimit(),
    busy_timeout: float = 30.0,
    **options: Any,
) -> Iterator[Sandbox]:
    """Provision a sandbox in the store at ``db_url`` and serve it while in use."""
    store = open_store(db_url)
    try:
        sandbox = provision(store, **options)
        with serve_in_background(
            db_url, rate_limit=rate_limit, busy_timeout=busy_timeout
        ) as base_url:
            sandbox.base_url = base_url
            yield sandbox
    finally:
        store.close()
