"""A scheduled run alerts as a manual one does: the scheduler runs the same jobs code.

The query is saved by the real executable with a schedule; the scheduler runs
in this process over the same home, with a clock moved to the next slot, and
the real webhook receiver gets the alert of its run.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from alerts.conftest import Cli
from alerts.receiver import Receiver
from cohortsync.scheduler import Scheduler
from cohortsync.settings import Settings


def test_a_scheduled_run_delivers_its_alert(
    cli: Cli, auth: str, receiver: Receiver, customers: Callable[[int], None]
) -> None:
    saved = cli(
        "query", "save", "vip", "--sql", "SELECT external_id AS user_ids FROM customers",
        "--export", auth, "--cohort-id", "vip", "--schedule", "0 6 * * *",
        "--alert-webhook", receiver.url, "--alert-duration", "0",
    )  # fmt: skip
    assert saved.returncode == 0, saved.stderr
    tomorrow = datetime.now(UTC).replace(hour=6, minute=0, second=30) + timedelta(days=1)
    with Scheduler(Settings(), clock=lambda: tomorrow) as scheduler:
        (outcome,) = scheduler.run_once()
    assert outcome.result.status == "succeeded", outcome
    (body,) = receiver.bodies
    assert body["job"] == "query:vip" and body["run_id"] == outcome.result.run_id
    assert [t["trigger"] for t in body["triggers"]] == ["duration"]
