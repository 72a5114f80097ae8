"""The partner API called as a warehouse exporter does, to put cohorts in the dashboard's store."""

from __future__ import annotations

from typing import Any

import httpx

from cohortsync.braze.sandbox import Sandbox


def partner_call(
    sandbox: Sandbox, path: str, body: dict[str, Any], *, key: str | None = None
) -> httpx.Response:
    """``POST /partners/{partner}{path}`` with the partner API key and a data import key."""
    keys = {
        "partner_api_key": sandbox.partner_api_key,
        "client_secret": sandbox.data_import_key if key is None else key,
    }
    return httpx.post(
        f"{sandbox.base_url}/partners/{sandbox.partner}{path}", json={**keys, **body}, timeout=30
    )


def define_cohort(
    sandbox: Sandbox, cohort_id: str, name: str = "", *, key: str | None = None
) -> httpx.Response:
    """Create or rename a cohort."""
    body = {"cohort_id": cohort_id, "name": name or cohort_id, "created_at": "2026-01-21T19:20:30Z"}
    return partner_call(sandbox, "/cohorts", body, key=key)


def change_cohort(
    sandbox: Sandbox, cohort_id: str, *changes: dict[str, Any], key: str | None = None
) -> httpx.Response:
    """Membership changes: each of ``changes`` is a ``cohort_changes`` object."""
    body = {"cohort_id": cohort_id, "cohort_changes": list(changes)}
    return partner_call(sandbox, "/cohorts/users", body, key=key)


def send_cohort(sandbox: Sandbox, cohort_id: str, name: str, **identifiers: Any) -> None:
    """Define the cohort and add ``identifiers`` (``user_ids=[...]``, ``device_ids``...)."""
    defined = define_cohort(sandbox, cohort_id, name)
    assert defined.status_code in (200, 201), defined.text
    added = change_cohort(sandbox, cohort_id, identifiers)
    assert added.status_code == 200, added.text
