"""Alerts of saved queries, end to end: the CLI in real processes, a real webhook receiver.

The export goes to the partner API server of tests/export (a real HTTP
server on 127.0.0.1); the alerts go to :class:`alerts.receiver.Receiver`.
Each trigger is shown to fire past its threshold and to stay quiet under it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from alerts.conftest import Cli
from alerts.receiver import Receiver
from export.partner_server import PartnerServer

SQL = "SELECT external_id AS user_ids FROM customers"


def save(cli: Cli, auth: str, receiver: Receiver, *options: str, operation: str = "mirror") -> None:
    saved = cli(
        "query", "save", "vip", "--sql", SQL, "--export", auth, "--cohort-id", "vip",
        "--operation", operation, "--alert-webhook", receiver.url, *options,
    )  # fmt: skip
    assert saved.returncode == 0, saved.stderr


def run(cli: Cli, expect: int = 0) -> dict[str, Any]:
    done = cli("query", "run", "vip", "--json")
    assert done.returncode == expect, done.stderr
    return json.loads(done.stdout) if expect == 0 else {"stderr": done.stderr}


def shown(cli: Cli, run_id: str) -> dict[str, Any]:
    done = cli("runs", "show", run_id, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def latest_run(cli: Cli) -> dict[str, Any]:
    listed = cli("runs", "list", "--job", "query:vip", "--json", "--limit", "1")
    assert listed.returncode == 0, listed.stderr
    return shown(cli, json.loads(listed.stdout)[0]["id"])


def test_size_change_fires_past_its_threshold_only(
    cli: Cli, auth: str, receiver: Receiver, customers: Callable[[int], None]
) -> None:
    save(cli, auth, receiver, "--alert-size-change", "20")
    first = run(cli)  # no baseline yet: nothing to compare with
    assert first["status"] == "succeeded" and receiver.bodies == []
    assert shown(cli, first["run_id"])["alerts"] == []

    customers(16)  # +60 %
    second = run(cli)
    assert second["status"] == "succeeded"
    (body,) = receiver.bodies
    assert body["event"] == "cohortsync.alert"
    assert (body["job"], body["run_id"], body["status"]) == (
        "query:vip",
        second["run_id"],
        "succeeded",
    )
    assert body["held"] is False and body["cohort_id"] == "vip"
    (trigger,) = body["triggers"]
    assert trigger["trigger"] == "size_change"
    assert (trigger["value"], trigger["threshold"]) == (60.0, 20.0)
    assert (trigger["size"], trigger["previous_size"]) == (16, 10)
    assert "from 10 to 16" in trigger["text"]
    assert body["counts"]["size"] == 16
    assert receiver.received[0].path == "/hooks/t0ken-secret"
    assert receiver.received[0].headers["Content-Type"] == "application/json"

    (delivery,) = shown(cli, second["run_id"])["alerts"]
    assert delivery["status"] == "delivered" and delivery["attempts"] == 1
    assert delivery["http_status"] == 200 and delivery["error"] is None
    assert [t["trigger"] for t in delivery["triggers"]] == ["size_change"]
    assert delivery["destination"].startswith("http://127.0.0.1:")
    assert "t0ken" not in json.dumps(delivery)
    text = cli("runs", "show", second["run_id"])
    assert text.returncode == 0, text.stderr
    assert "size_change" in text.stdout and "delivered" in text.stdout

    customers(18)  # +12.5 % against the last successful run (16): under 20 %
    run(cli)
    assert len(receiver.bodies) == 1


def test_removals_fire_past_their_threshold_only(
    cli: Cli, auth: str, receiver: Receiver, customers: Callable[[int], None]
) -> None:
    save(cli, auth, receiver, "--alert-removals", "3", "--max-remove-pct", "100")
    run(cli)
    customers(7)  # 3 removals: not more than 3
    run(cli)
    assert receiver.bodies == []
    customers(2)  # 5 removals
    done = run(cli)
    (body,) = receiver.bodies
    (trigger,) = body["triggers"]
    assert trigger["trigger"] == "removals"
    assert (trigger["value"], trigger["threshold"], trigger["removals"]) == (5, 3, 5)
    assert body["run_id"] == done["run_id"] and body["counts"]["removals"] == 5


def test_duration_fires_past_its_threshold_only(
    cli: Cli, auth: str, receiver: Receiver, customers: Callable[[int], None]
) -> None:
    save(cli, auth, receiver, "--alert-duration", "3600")
    run(cli)
    assert receiver.bodies == []
    save(cli, auth, receiver, "--alert-duration", "0")
    done = run(cli)
    (body,) = receiver.bodies
    (trigger,) = body["triggers"]
    assert trigger["trigger"] == "duration" and trigger["threshold"] == 0
    assert trigger["value"] > 0 and trigger["duration_s"] == trigger["value"]
    assert body["run_id"] == done["run_id"]


def test_a_failed_run_alerts_unless_turned_off(
    cli: Cli,
    auth: str,
    receiver: Receiver,
    partner: PartnerServer,
    customers: Callable[[int], None],
) -> None:
    save(cli, auth, receiver)
    partner.script("cohorts", 401, "Invalid client secret")
    failed = run(cli, expect=4)
    assert "Invalid client secret" in failed["stderr"]
    (body,) = receiver.bodies
    assert body["status"] == "failed" and "Invalid client secret" in body["error"]
    (trigger,) = body["triggers"]
    assert trigger["trigger"] == "failure" and "Invalid client secret" in trigger["error"]
    assert latest_run(cli)["alerts"][0]["status"] == "delivered"

    save(cli, auth, receiver, "--no-alert-on-failure")
    partner.script("cohorts", 401, "Invalid client secret")
    run(cli, expect=4)
    assert len(receiver.bodies) == 1


def test_a_query_that_fails_before_its_export_alerts_too(
    cli: Cli, auth: str, receiver: Receiver, warehouse: Callable[[str], None]
) -> None:
    saved = cli(
        "query", "save", "vip", "--sql", "SELECT external_id AS user_ids FROM customers",
        "--alert-webhook", receiver.url,
    )  # fmt: skip
    assert saved.returncode == 0, saved.stderr
    warehouse("CREATE TABLE other AS SELECT 1 AS n")  # no customers table
    done = cli("query", "run", "vip")
    assert done.returncode == 3, done.stderr
    (body,) = receiver.bodies
    assert body["status"] == "failed" and body["triggers"][0]["trigger"] == "failure"
    assert "customers" in body["error"]
    [recorded] = json.loads(cli("runs", "list", "--json").stdout)
    shown = cli("runs", "show", recorded["id"])  # a run without its export's destination
    assert shown.returncode == 0, shown.stderr
    assert "failed" in shown.stdout and "Traceback" not in shown.stderr


def test_slack_payload_is_one_text(
    cli: Cli, auth: str, receiver: Receiver, customers: Callable[[int], None]
) -> None:
    save(cli, auth, receiver, "--alert-format", "slack", "--alert-duration", "0",
         "--alert-size-change", "10")  # fmt: skip
    run(cli)
    customers(20)
    done = run(cli)
    body = receiver.bodies[-1]
    assert set(body) == {"text"}
    lines = body["text"].splitlines()
    assert lines[0] == f"cohortsync alert: query:vip run {done['run_id']} succeeded"
    assert lines[1].startswith("• cohort size changed by +100.0% (from 10 to 20")
    assert lines[2].startswith("• run took ")


def test_a_receiver_answering_500_is_retried_then_recorded_failed(
    cli: Cli, auth: str, receiver: Receiver, customers: Callable[[int], None], monkeypatch: Any
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    receiver.status = 500
    save(cli, auth, receiver, "--alert-duration", "0")
    done = run(cli)
    assert done["status"] == "succeeded"
    assert len(receiver.bodies) == 3
    assert receiver.bodies[0] == receiver.bodies[2]
    view = shown(cli, done["run_id"])
    assert view["status"] == "succeeded" and view["error"] is None
    (delivery,) = view["alerts"]
    assert (delivery["status"], delivery["attempts"], delivery["http_status"]) == ("failed", 3, 500)
    assert delivery["error"] == "answered HTTP 500"
    text = cli("runs", "show", done["run_id"]).stdout
    assert "failed: answered HTTP 500, 3 attempts" in text


def test_a_hanging_receiver_times_out_and_the_run_ends_promptly(
    cli: Cli, auth: str, receiver: Receiver, customers: Callable[[int], None], monkeypatch: Any
) -> None:
    monkeypatch.setenv("COHORTSYNC_ALERT_TIMEOUT", "0.5")
    receiver.hang = 30
    save(cli, auth, receiver, "--alert-duration", "0")
    began = time.monotonic()
    done = run(cli)
    took = time.monotonic() - began
    assert done["status"] == "succeeded"
    # three attempts of 0.5 s and two short backoffs, plus the process itself
    assert took < 15, took
    view = shown(cli, done["run_id"])
    assert view["duration_s"] < 5
    (delivery,) = view["alerts"]
    assert delivery["status"] == "failed" and delivery["attempts"] == 3
    assert delivery["error"] == "did not answer within 0.5 s"
    assert len(receiver.bodies) == 3
