"""A client of the sandbox's Braze REST endpoints, as a customer's backend calls them."""

from __future__ import annotations

from typing import Any

import requests

from cohortsync.braze.sandbox import Sandbox


class RestClient:
    """``POST`` with the workspace's REST API key; ``track`` and ``export`` check the status."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {sandbox.rest_api_key}"

    def post(self, path: str, body: Any) -> requests.Response:
        return self.session.post(f"{self.sandbox.base_url}{path}", json=body, timeout=30)

    def track(self, status: int = 200, **body: Any) -> dict[str, Any]:
        response = self.post("/users/track", body)
        assert response.status_code == status, response.text
        return dict(response.json())

    def export(self, **body: Any) -> list[dict[str, Any]]:
        response = self.post("/users/export/ids", body)
        assert response.status_code == 200, response.text
        return list(response.json()["users"])

    def profile(self, external_id: str) -> dict[str, Any]:
        [user] = self.export(external_ids=[external_id])
        return user
