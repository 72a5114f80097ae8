"""Helpers of the receiving service's suite: a partner client and small builders."""

from __future__ import annotations

import uuid
from typing import Any

import requests

from cohortsync.braze.sandbox import Sandbox

PARTNER = "treasuredata"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class PartnerClient:
    """Calls the partner endpoints of a sandbox the way a warehouse exporter does."""

    def __init__(self, sandbox: Sandbox, *, client_secret: str | None = None) -> None:
        self.sandbox = sandbox
        self.session = requests.Session()
        self.client_secret = client_secret or sandbox.data_import_key

    def keys(self) -> dict[str, str]:
        return {
            "partner_api_key": self.sandbox.partner_api_key,
            "client_secret": self.client_secret,
        }

    def post(
        self, path: str, body: Any, *, partner: str = PARTNER, **kwargs: Any
    ) -> requests.Response:
        url = f"{self.sandbox.base_url}/partners/{partner}{path}"
        return self.session.post(url, json=body, timeout=30, **kwargs)

    def define(self, cohort_id: str, name: str = "", **fields: Any) -> requests.Response:
        body = {
            **self.keys(),
            "cohort_id": cohort_id,
            "name": name or cohort_id,
            "created_at": "2021-01-21T19:20:30+05:00",
            **fields,
        }
        return self.post("/cohorts", body)

    def change(self, cohort_id: str, *changes: dict[str, Any], **fields: Any) -> requests.Response:
        body = {**self.keys(), "cohort_id": cohort_id, "cohort_changes": list(changes), **fields}
        return self.post("/cohorts/users", body)

    def add(self, cohort_id: str, **identifiers: Any) -> None:
        response = self.change(cohort_id, identifiers)
        assert response.status_code == 200, response.text

    def remove(self, cohort_id: str, **identifiers: Any) -> None:
        response = self.change(cohort_id, {**identifiers, "should_remove": True})
        assert response.status_code == 200, response.text


def member_ids(members: list[dict[str, Any]]) -> list[str | None]:
    """External ids of a member listing (None for anonymous users), in order."""
    return [member["external_id"] for member in members]


def email(name: str) -> dict[str, str]:
    return {"alias_label": "email", "alias_name": name}
