"""The refused share trigger, on the rest-attribute path against the receiving service.

The ``braze_sandbox`` fixture is the real receiving service: it knows six
users, and ``/users/track`` answers each object naming an unknown user with
a non-fatal error, which the run's match report counts as refused. The same
trigger is also shown on an activation, whose runs go through the same
jobs code as a saved query's.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from alerts.conftest import Cli
from alerts.receiver import Receiver

KNOWN = [f"u{i}" for i in range(6)]
UNKNOWN = [f"ghost{i}" for i in range(4)]


@pytest.fixture
def rest_auth(
    braze_sandbox: Any,
    warehouse: Callable[[str], None],
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
) -> str:
    """Six known users, a table of ten customers (four unknown to Braze), a rest-attribute auth."""
    monkeypatch.setenv("COHORTSYNC_REST_API_KEY", braze_sandbox.rest_api_key)
    monkeypatch.setenv("COHORTSYNC_ALERT_BACKOFF", "0.05")
    braze_sandbox.load_users([{"external_id": uid} for uid in KNOWN])
    rows = ", ".join(f"('{uid}')" for uid in KNOWN + UNKNOWN)
    warehouse(f"CREATE TABLE customers AS SELECT * FROM (VALUES {rows}) t(external_id)")
    created = cli(
        "auth", "create", "rest", "--type", "rest-attribute", "--endpoint", braze_sandbox.base_url
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    return "rest"


def test_refused_share_fires_past_its_threshold_only(
    rest_auth: str, cli: Cli, receiver: Receiver
) -> None:
    def save(threshold: str) -> None:
        saved = cli(
            "query", "save", "all", "--sql", "SELECT external_id AS user_ids FROM customers",
            "--export", rest_auth, "--cohort-id", "all", "--alert-webhook", receiver.url,
            "--alert-refused-pct", threshold,
        )  # fmt: skip
        assert saved.returncode == 0, saved.stderr

    save("50")  # 4 of 10 refused: 40 %
    done = cli("query", "run", "all", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["report"]["match"]["errors"] == 4
    assert receiver.bodies == []

    save("25")
    done = cli("query", "run", "all", "--json")
    assert done.returncode == 0, done.stderr
    (body,) = receiver.bodies
    (trigger,) = body["triggers"]
    assert trigger["trigger"] == "refused_pct"
    assert (trigger["value"], trigger["threshold"]) == (40.0, 25.0)
    assert (trigger["objects"], trigger["refused"]) == (10, 4)
    assert sum(trigger["reasons"].values()) == 4
    assert "4 of 10 objects refused (40.0%)" in trigger["text"]
    assert body["run_id"] == json.loads(done.stdout)["run_id"]


def test_an_activation_alerts_through_the_same_jobs_code(
    rest_auth: str, cli: Cli, receiver: Receiver
) -> None:
    steps = [
        ("audience", "parent", "create", "customers", "--table", "customers",
         "--key", "external_id"),
        ("segment", "create", "all", "--parent", "customers", "--rules",
         '{"column": "external_id", "op": "!=", "value": ""}'),
        ("activation", "create", "all", "--segment", "all", "--auth", rest_auth,
         "--cohort-id", "all", "--map", "external_id=user_ids", "--alert-webhook", receiver.url,
         "--alert-format", "slack", "--alert-refused-pct", "10"),
    ]  # fmt: skip
    for step in steps:
        done = cli(*step)
        assert done.returncode == 0, (step, done.stderr)
    ran = cli("activation", "run", "all", "--json")
    assert ran.returncode == 0, ran.stderr
    run_id = json.loads(ran.stdout)["run_id"]
    (body,) = receiver.bodies
    assert body["text"].splitlines() == [
        f"cohortsync alert: activation:all run {run_id} succeeded",
        "• 4 of 10 objects refused (40.0%), more than 10%",
    ]
    view = json.loads(cli("runs", "show", run_id, "--json").stdout)
    (delivery,) = view["alerts"]
    assert delivery["format"] == "slack" and delivery["status"] == "delivered"
