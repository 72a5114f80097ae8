"""``cohortsync scheduler --once`` from cron: real process, real exports, a real webhook."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from scheduler_helpers import WebhookReceiver

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "queries"))

from workbench_helpers import AUTH, Workbench, make_workbench

from cohortsync.catalog import runs as run_history
from cohortsync.catalog.db import open_catalog
from cohortsync.queries import QueryExport, save_query
from cohortsync.settings import Settings


@pytest.fixture
def bench(home: Path, braze_sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> Workbench:
    monkeypatch.setenv("COHORTSYNC_PARTNER_API_KEY", braze_sandbox.partner_api_key)
    return make_workbench(home, braze_sandbox)


def test_once_runs_due_jobs_records_failures_and_posts_them(
    bench: Workbench, webhook: WebhookReceiver
) -> None:
    bench.add_customers(12)
    yesterday = datetime.now(UTC) - timedelta(days=1)
    gold = "SELECT external_id AS user_ids FROM customers WHERE tier = 'gold'"
    save_query(
        "gold",
        gold,
        export=QueryExport(auth=AUTH, cohort_id="gold"),
        schedule="0 * * * *",
        now=yesterday,
    )
    save_query(
        "broken",
        "SELECT id AS user_ids FROM no_such_table",
        export=QueryExport(auth=AUTH, cohort_id="broken"),
        schedule="0 * * * *",
        now=yesterday,
    )
    save_query("later", "SELECT 1 AS x", schedule="0 0 1 1 *", now=datetime.now(UTC))

    done = bench.cli("scheduler", "--once", "--webhook", webhook.url, "--json")
    assert done.returncode == 1, done.stderr  # one job failed
    lines = {line["job"]: line for line in map(orjson.loads, done.stdout.splitlines())}
    assert set(lines) == {"query:gold", "query:broken"}  # "later" is not due
    assert lines["query:gold"]["status"] == "succeeded"
    assert lines["query:broken"]["status"] == "failed"
    assert "no_such_table" in lines["query:broken"]["error"]
    assert lines["query:broken"]["webhook_sent"] is True
    assert bench.members("gold") == ["c12", "c3", "c6", "c9"]

    [body] = webhook.bodies
    assert body["job"] == "query:broken"
    assert body["status"] == "failed"
    assert body["run_id"] == lines["query:broken"]["run_id"]
    assert "no_such_table" in str(body["error"])

    catalog = open_catalog(Settings().catalog_path)
    failed = run_history.get_run(catalog, lines["query:broken"]["run_id"])
    assert failed.status == "failed"
    assert "no_such_table" in (failed.error or "")
    assert failed.job["job"] == "query:broken"
    catalog.dispose()

    again = bench.cli("scheduler", "--once", "--json")
    assert again.returncode == 0, again.stderr
    assert again.stdout == ""  # nothing due until the next slot

    listed = bench.cli_json("scheduler", "--list")["jobs"]
    by_job = {job["job"]: job for job in listed}
    assert by_job["query:broken"]["last_status"] == "failed"
    assert by_job["query:gold"]["last_status"] == "succeeded"
    assert by_job["query:later"]["last_status"] is None
    assert by_job["query:later"]["next_run"].startswith(f"{datetime.now(UTC).year + 1}-01-01")


def test_a_bad_webhook_url_is_refused(bench: Workbench) -> None:
    done = bench.cli("scheduler", "--once", "--webhook", "ftp://example.com/hook")
    assert done.returncode == 2
    assert "webhook URL 'ftp://example.com/hook' is not an http(s) URL" in done.stderr
