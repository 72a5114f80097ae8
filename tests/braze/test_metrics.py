"""GET /metrics: requests, latency, identifiers and rate-limit refusals, scraped for real.

Each test runs the real server (in a thread, or the real ``cohortsync braze
serve`` process), sends real requests with an HTTP client, scrapes
``/metrics`` as Prometheus does, parses the text with
``prometheus_client.parser`` and compares exact values.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cohortsync.braze.sandbox import Sandbox, running_sandbox
from cohortsync.braze.server import serve_in_background
from support import cli_environment, cohortsync_command, served_url_on_stderr

from .support import PARTNER, PartnerClient, email, unique

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
CHANGES = "/partners/{partner}/cohorts/users"


def scrape(base_url: str) -> Samples:
    """Every sample of ``/metrics``, keyed by (sample name, labels)."""
    response = httpx.get(f"{base_url}/metrics", timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def requests_of(samples: Samples, route: str, method: str, status: int) -> float:
    return value(
        samples, "cohortsync_braze_requests_total", route=route, method=method, status=str(status)
    )


def rest(sandbox: Sandbox, path: str, body: Any, key: str | None = None) -> httpx.Response:
    return httpx.post(
        f"{sandbox.base_url}{path}",
        json=body,
        headers={"Authorization": f"Bearer {key or sandbox.rest_api_key}"},
        timeout=30,
    )


def test_requests_latency_and_identifiers_are_counted_by_route_template(
    sandbox: Sandbox, partner: PartnerClient
) -> None:
    sandbox.load_users(
        [
            {"external_id": "u1"},
            {"external_id": "u2"},
            {"device_ids": ["d1"]},
            {"aliases": [email("ann@example.com")]},
            {"external_id": "u3", "device_ids": ["d-identified"]},
        ]
    )
    before = scrape(sandbox.base_url)
    assert requests_of(before, CHANGES, "POST", 200) == 0
    for kind in ("user_ids", "device_ids", "aliases"):
        assert value(before, "cohortsync_braze_identifiers_received_total", kind=kind) == 0

    assert partner.define("vip", "VIP").status_code == 200
    added = partner.change(
        "vip",
        {
            "user_ids": ["u1", "u2", "nobody"],
            "device_ids": ["d1", "d-unknown", "d-identified"],
            "aliases": [email("ann@example.com"), email("bob@example.com")],
        },
    )
    assert added.status_code == 200, added.text
    removed = partner.change("vip", {"user_ids": ["u2"], "should_remove": True})
    assert removed.status_code == 200, removed.text
    wrong_key = partner.post(
        "/cohorts/users", {**partner.keys(), "client_secret": "nope", "cohort_id": "vip"}
    )
    assert wrong_key.status_code == 401
    bad_shape = partner.change("vip", {"user_ids": [1]})
    assert bad_shape.status_code == 400

    track = {"attributes": [{"external_id": "u1", "plan": "gold"}]}
    assert rest(sandbox, "/users/track", track).status_code == 200
    assert rest(sandbox, "/users/track", track).status_code == 200
    assert rest(sandbox, "/users/track", track, key="not-a-key").status_code == 401
    assert httpx.get(f"{sandbox.base_url}/segments/list", timeout=30).status_code == 401
    assert httpx.get(f"{sandbox.base_url}/no/such/path", timeout=30).status_code == 404

    after = scrape(sandbox.base_url)
    assert requests_of(after, "/partners/{partner}/cohorts", "POST", 200) == 1
    assert requests_of(after, CHANGES, "POST", 200) == 2
    assert requests_of(after, CHANGES, "POST", 401) == 1
    assert requests_of(after, CHANGES, "POST", 400) == 1
    assert requests_of(after, "/users/track", "POST", 200) == 2
    assert requests_of(after, "/users/track", "POST", 401) == 1
    assert requests_of(after, "/segments/list", "GET", 401) == 1
    assert requests_of(after, "unmatched", "GET", 404) == 1
    # The first scrape was counted once it had answered, the second is not yet.
    assert requests_of(after, "/metrics", "GET", 200) == 1
    labels = {dict(key[1]).get("route") for key in after}
    assert not any(label and PARTNER in label for label in labels), labels
    assert not any(label and "no/such" in label for label in labels), labels

    duration = "cohortsync_braze_request_duration_seconds"
    for route, count in (("/users/track", 3), (CHANGES, 4)):
        assert value(after, f"{duration}_count", route=route, method="POST") == count
        assert value(after, f"{duration}_bucket", route=route, method="POST", le="+Inf") == count
        assert 0 < value(after, f"{duration}_sum", route=route, method="POST") < 60

    # u1, u2 found, "nobody" dropped, then u2 again (the removal); d1 is anonymous,
    # d-identified belongs to an identified user and matches nobody (Braze's rule).
    expected = {"user_ids": (4, 3), "device_ids": (3, 1), "aliases": (2, 1)}
    for kind, (received, matched) in expected.items():
        assert value(after, "cohortsync_braze_identifiers_received_total", kind=kind) == received
        assert value(after, "cohortsync_braze_identifiers_matched_total", kind=kind) == matched
        assert (
            value(after, "cohortsync_braze_identifiers_dropped_total", kind=kind)
            == received - matched
        )
    members = "cohortsync_braze_cohort_members_changed_total"
    assert value(after, members, change="added") == 4
    assert value(after, members, change="removed") == 1
    # The store's own counters agree with the metrics.
    [cohort] = sandbox.cohorts()
    assert cohort["identifiers"]["external_id"] == {"received": 4, "matched": 3, "dropped": 1}
    assert cohort["identifiers"]["device_id"] == {"received": 3, "matched": 1, "dropped": 2}


def test_rate_limit_refusals_are_counted_by_api(db_url: str) -> None:
    with running_sandbox(
        db_url, workspace_name=unique("ws"), partner_api_key=unique("pk"), rate_limit="2/hour"
    ) as sandbox:
        partner = PartnerClient(sandbox)
        statuses = [partner.change("vip").status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        track = {"attributes": [{"external_id": "u1"}]}
        statuses = [rest(sandbox, "/users/track", track).status_code for _ in range(4)]
        assert statuses == [200, 200, 429, 429]
        samples = scrape(sandbox.base_url)
    assert value(samples, "cohortsync_braze_rate_limited_total", api="partner") == 1
    assert value(samples, "cohortsync_braze_rate_limited_total", api="rest") == 2
    assert requests_of(samples, CHANGES, "POST", 429) == 1
    assert requests_of(samples, "/users/track", "POST", 429) == 2
    assert requests_of(samples, "/users/track", "POST", 200) == 2


def test_two_services_in_one_process_count_apart(tmp_path: Path) -> None:
    with (
        running_sandbox(f"sqlite:///{tmp_path / 'a.db'}") as first,
        running_sandbox(f"sqlite:///{tmp_path / 'b.db'}") as second,
    ):
        track = {"attributes": [{"external_id": "u1"}]}
        for _ in range(3):
            assert rest(first, "/users/track", track).status_code == 200
        assert rest(second, "/users/track", track).status_code == 200
        assert requests_of(scrape(first.base_url), "/users/track", "POST", 200) == 3
        assert requests_of(scrape(second.base_url), "/users/track", "POST", 200) == 1


def test_dashboard_routes_are_labelled_with_their_mount(sandbox: Sandbox) -> None:
    assert httpx.get(f"{sandbox.base_url}/dashboard/login", timeout=30).status_code == 200
    assert httpx.get(f"{sandbox.base_url}/dashboard/nothing-here", timeout=30).status_code == 404
    samples = scrape(sandbox.base_url)
    assert requests_of(samples, "/dashboard/login", "GET", 200) == 1
    assert requests_of(samples, "/dashboard/*", "GET", 404) == 1


def test_without_metrics_there_is_no_endpoint(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'braze.db'}"
    with serve_in_background(db_url, metrics=False) as url:
        assert httpx.get(f"{url}/metrics", timeout=30).status_code == 404
        assert "/metrics" not in httpx.get(f"{url}/openapi.json", timeout=30).json()["paths"]
    with serve_in_background(db_url) as url:
        assert "/metrics" not in httpx.get(f"{url}/openapi.json", timeout=30).json()["paths"]
        assert scrape(url)


@pytest.mark.parametrize("option", ["--metrics", "--no-metrics"])
def test_the_serve_command_serves_metrics_unless_told_not_to(
    home: Path, tmp_path: Path, option: str
) -> None:
    db_url = f"sqlite:///{tmp_path / 'served.db'}"
    process = subprocess.Popen(
        cohortsync_command("braze", "serve", "--port", "0", "--db", db_url, option),
        env=cli_environment(),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url, _ = served_url_on_stderr(process)
        body = {"attributes": [{"external_id": "u1"}]}
        assert httpx.post(f"{url}/users/track", json=body, timeout=30).status_code == 401
        if option == "--no-metrics":
            assert httpx.get(f"{url}/metrics", timeout=30).status_code == 404
        else:
            assert requests_of(scrape(url), "/users/track", "POST", 401) == 1
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)


def test_methods_and_paths_a_client_makes_up_never_become_labels(sandbox: Sandbox) -> None:
    unknown_method = httpx.request("PROPFIND", f"{sandbox.base_url}/users/track", timeout=30)
    assert unknown_method.status_code == 405
    for path in ("/a", "/b/c", "/partners"):
        assert httpx.get(f"{sandbox.base_url}{path}", timeout=30).status_code == 404
    samples = scrape(sandbox.base_url)
    assert requests_of(samples, "/users/track", "other", 405) == 1
    assert requests_of(samples, "unmatched", "GET", 404) == 3
    methods = {dict(labels).get("method") for _, labels in samples}
    assert "PROPFIND" not in methods
