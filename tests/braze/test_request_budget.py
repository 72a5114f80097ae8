"""Each request is charged once against one rate-limit budget, whatever stops it.

A request whose keys pass is charged to its workspace; one stopped before
(by its body or its keys) to the anonymous budget of its partner or of the
REST API. Every answer says where that budget stands, and the anonymous
budgets never turn an error into a 429.
"""

from __future__ import annotations

from typing import Any

import requests

from cohortsync.braze.sandbox import running_sandbox

from .support import PartnerClient, unique


def remaining(response: requests.Response) -> int:
    return int(response.headers["X-RateLimit-Remaining"])


def post(base_url: str, path: str, data: bytes, **headers: str) -> requests.Response:
    return requests.post(f"{base_url}{path}", data=data, headers=headers, timeout=10)


def test_failures_before_the_keys_are_charged_once_to_their_familys_budget(
    db_url: str,
) -> None:
    with running_sandbox(
        db_url, workspace_name=unique("ws"), partner_api_key=unique("pk"), rate_limit="3/hour"
    ) as sandbox:
        partner_path = f"/partners/{sandbox.partner}/cohorts/users"
        not_json = {"Content-Type": "text/plain"}
        answers = [post(sandbox.base_url, partner_path, b"{}", **not_json) for _ in range(4)]
        assert [a.status_code for a in answers] == [415] * 4  # never 429
        assert [remaining(a) for a in answers] == [2, 1, 0, 0]
        assert "Retry-After" not in answers[2].headers
        assert 1 <= int(answers[3].headers["Retry-After"]) <= 3600
        # Bad JSON counts against the same anonymous budget of the partner...
        bad_json = post(
            sandbox.base_url, partner_path, b"{", **{"Content-Type": "application/json"}
        )
        assert (bad_json.status_code, remaining(bad_json)) == (400, 0)
        # ...but the REST API's anonymous budget and the workspace's are untouched.
        rest = post(sandbox.base_url, "/users/track", b"{}", **not_json)
        assert (rest.status_code, remaining(rest)) == (415, 2)
        segments = requests.get(f"{sandbox.base_url}/segments/list", timeout=10)
        assert (segments.status_code, remaining(segments)) == (401, 1)
        client = PartnerClient(sandbox)
        answered: list[Any] = [client.change("vip") for _ in range(4)]
        assert [a.status_code for a in answered] == [200, 200, 200, 429]
        assert [remaining(a) for a in answered] == [2, 1, 0, 0]


def test_a_workspace_request_is_charged_to_the_workspace_only(db_url: str) -> None:
    with running_sandbox(
        db_url, workspace_name=unique("ws"), partner_api_key=unique("pk"), rate_limit="3/hour"
    ) as sandbox:
        bearer = {"Authorization": f"Bearer {sandbox.rest_api_key}"}
        track = requests.post(
            f"{sandbox.base_url}/users/track",
            json={"attributes": [{"external_id": "u1"}]},
            headers=bearer,
            timeout=10,
        )
        assert (track.status_code, remaining(track)) == (200, 2)
        refused = requests.post(  # keys pass, then the body's shape fails: the workspace pays
            f"{sandbox.base_url}/users/track", json={"attributes": 1}, headers=bearer, timeout=10
        )
        assert (refused.status_code, remaining(refused)) == (400, 1)
        listed = requests.get(f"{sandbox.base_url}/segments/list", headers=bearer, timeout=10)
        assert (listed.status_code, remaining(listed)) == (200, 0)
        anonymous = requests.get(f"{sandbox.base_url}/segments/list", timeout=10)
        assert (anonymous.status_code, remaining(anonymous)) == (401, 2)
