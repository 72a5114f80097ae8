"""The alert hold: a deviating plan fails its run before any request, and alerts.

Against the partner API server of tests/export, which records every request:
a held run sends no ``cohorts/users`` request, is recorded failed with the
trigger and its numbers, and leaves the snapshot as it was, so the next run
still sends the same changes once the threshold allows them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from alerts.conftest import Cli
from alerts.receiver import Receiver
from export.partner_server import PartnerServer

SQL = "SELECT external_id AS user_ids FROM customers"


def test_hold_sends_nothing_and_records_the_reason(
    cli: Cli,
    auth: str,
    receiver: Receiver,
    partner: PartnerServer,
    customers: Callable[[int], None],
) -> None:
    save = [
        "query", "save", "vip", "--sql", SQL, "--export", auth, "--cohort-id", "vip",
        "--operation", "mirror", "--max-remove-pct", "100", "--alert-webhook", receiver.url,
        "--alert-removals", "3", "--alert-size-change", "50", "--alert-hold",
    ]  # fmt: skip
    assert cli(*save).returncode == 0
    assert cli("query", "run", "vip").returncode == 0
    sent_before = len(partner.users_requests())
    assert sent_before >= 1 and receiver.bodies == []

    customers(4)  # 6 removals, and the size falls by 60 %
    held = cli("query", "run", "vip", "--json")
    assert held.returncode == 1
    (line,) = held.stderr.strip().splitlines()
    assert line.startswith("error: alert hold of query:vip: cohort size changed by -60.0% "
                           "(from 10 to 4 identifiers), more than 50%; 6 identifiers removed, "
                           "more than 3; the run was held back and nothing was sent")  # fmt: skip
    assert "--alert-size-change and --alert-removals" in line
    assert len(partner.users_requests()) == sent_before  # nothing sent

    listed = json.loads(cli("runs", "list", "--job", "query:vip", "--json").stdout)
    view = json.loads(cli("runs", "show", listed[0]["id"], "--json").stdout)
    assert view["status"] == "failed" and view["error"].startswith("alert hold of query:vip")
    assert view["resumable"] is False
    (delivery,) = view["alerts"]
    assert delivery["held"] is True and delivery["status"] == "delivered"
    assert [t["trigger"] for t in delivery["triggers"]] == ["size_change", "removals"]

    (body,) = receiver.bodies
    assert body["held"] is True and body["status"] == "failed"
    assert body["run_id"] == listed[0]["id"]
    size, removals = body["triggers"]
    assert (size["size"], size["previous_size"], size["value"]) == (4, 10, -60.0)
    assert (removals["removals"], removals["threshold"]) == (6, 3)
    assert "failure" not in [t["trigger"] for t in body["triggers"]]

    # the threshold raised, the same changes go out: the snapshot was left as it was
    assert cli(*save[:-5], "--alert-removals", "10", "--alert-size-change", "90",
               "--alert-hold").returncode == 0  # fmt: skip
    done = cli("query", "run", "vip", "--json")
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)["report"]
    assert report["mirror"]["exits"] == 6 and report["mirror"]["result_members"] == 4
    removed = {value for kind, value, remove in partner.identifiers() if remove}
    assert removed == {f"c{i}" for i in range(4, 10)}
    assert len(receiver.bodies) == 1  # under the new thresholds: no alert


def test_without_hold_the_same_deviation_is_sent_then_alerted(
    cli: Cli,
    auth: str,
    receiver: Receiver,
    partner: PartnerServer,
    customers: Callable[[int], None],
) -> None:
    assert cli(
        "query", "save", "vip", "--sql", SQL, "--export", auth, "--cohort-id", "vip",
        "--operation", "mirror", "--max-remove-pct", "100", "--alert-webhook", receiver.url,
        "--alert-removals", "3",
    ).returncode == 0  # fmt: skip
    assert cli("query", "run", "vip").returncode == 0
    sent_before = len(partner.users_requests())
    customers(4)
    done = cli("query", "run", "vip", "--json")
    assert done.returncode == 0, done.stderr
    assert len(partner.users_requests()) > sent_before
    (body,) = receiver.bodies
    assert body["held"] is False and body["status"] == "succeeded"
    assert [t["trigger"] for t in body["triggers"]] == ["removals"]
