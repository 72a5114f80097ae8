"""``cohortsync scheduler --metrics-port``: a real scheduler process scraped over HTTP.

The scheduler runs two saved queries against the recording partner API
server: one mirror export (its first batch answered 503 once, so it retries)
and one whose SQL fails. Its ``/metrics`` is fetched with a real HTTP client
while the export runs and after both jobs ended, and parsed with
prometheus-client's own parser; every value is checked exactly. Then a run
stopped by SIGTERM and resumed by the next scheduler (which counts only what
it sent itself), and a scheduled activation, counted as a query is.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from catalog_helpers import save_home_auth
from cohortsync.apply import apply_file
from cohortsync.jobs.metrics import SchedulerMetrics
from cohortsync.queries import QueryExport, save_query
from export.conftest import partner  # noqa: F401  (the fixture)
from export.partner_server import CLIENT_SECRET, PartnerServer
from support import cohortsync_command, wait_for

# Due once now (its latest slot, this 1 January, is after the schedule was saved), and
# not again before next year: a slot that comes while a test runs would run its jobs again.
ONCE_A_YEAR = "0 0 1 1 *"
METRICS_ON = re.compile(r"metrics on (http://\S+)")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    """Every sample of ``url``, by name and labels, as Prometheus would read them."""
    answer = httpx.get(url, timeout=5)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def test_the_scheduler_serves_its_runs_as_prometheus_metrics(
    home: Path,
    partner: PartnerServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    with duckdb.connect(str(home / "warehouse.duckdb")) as connection:
        # 2,500 distinct members, 100 of them twice, and 10 NULLs: the result holds 2,500.
        connection.execute(
            "CREATE TABLE customers AS SELECT 'c' || (i % 2500) AS external_id "
            "FROM range(2600) t(i) UNION ALL SELECT NULL FROM range(10)"
        )
    save_home_auth("partner", partner.url, CLIENT_SECRET)
    two_years_ago = datetime.now(UTC) - timedelta(days=730)
    vip = QueryExport(auth="partner", cohort_id="vip", operation="mirror", threads=2)
    sql = "SELECT external_id AS user_ids FROM customers"
    save_query("vip", sql, export=vip, schedule=ONCE_A_YEAR, now=two_years_ago)
    broken = QueryExport(auth="partner", cohort_id="broken")
    save_query("broken", "SELECT * FROM no_such_table", export=broken, schedule=ONCE_A_YEAR,
               now=two_years_ago)  # fmt: skip
    partner.script("users", 503, "upstream unavailable")  # one retry
    partner.delay = 0.7  # each batch takes a while: the export is seen in flight

    stdout, stderr = tmp_path / "stdout", tmp_path / "stderr"
    with stdout.open("w") as out, stderr.open("w") as err:
        process = subprocess.Popen(
            cohortsync_command("scheduler", "--poll-interval", "0.2", "--json",
                               "--metrics-port", "0"),
            stdout=out, stderr=err, text=True, env=dict(os.environ),
        )  # fmt: skip
    try:
        url = wait_for(
            lambda: (found := METRICS_ON.search(stderr.read_text())) and found.group(1),
            30,
            what="the scheduler to say where its metrics are",
            process=process,
        )
        assert url.startswith("http://127.0.0.1:") and url.endswith("/metrics")

        # While the export sends: the failed job is counted, the export is in flight.
        def export_under_way() -> Samples | None:
            samples = scrape(url)
            failed = value(samples, "cohortsync_scheduler_runs_total", job="query:broken",
                           status="failed")  # fmt: skip
            return samples if failed == 1 else None

        during = wait_for(export_under_way, 30, what="the failed job's run", process=process)
        assert value(during, "cohortsync_scheduler_runs_in_flight") == 1
        assert value(during, "cohortsync_scheduler_runs_total", job="query:vip",
                     status="succeeded") is None  # fmt: skip

        def outcomes() -> dict[str, dict[str, object]] | None:
            lines = [orjson.loads(line) for line in stdout.read_text().splitlines()]
            found = {line["job"]: line for line in lines}
            return found if len(found) == 2 else None

        ended = wait_for(outcomes, 30, what="both jobs to end", process=process)
        assert ended["query:vip"]["status"] == "succeeded", ended["query:vip"]
        assert ended["query:broken"]["status"] == "failed"
        after = wait_for(
            lambda: (
                (s := scrape(url)) and value(s, "cohortsync_scheduler_runs_in_flight") == 0 and s
            ),
            10,
            what="no run in flight",
        )
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert process.returncode == 0, stderr.read_text()

    finished = datetime.fromisoformat(str(ended["query:vip"]["finished_at"]))
    expected = {
        ("cohortsync_scheduler_runs_total", "query:vip", "succeeded"): 1,
        ("cohortsync_scheduler_runs_total", "query:broken", "failed"): 1,
        ("cohortsync_scheduler_identifiers_sent_total", "query:vip", None): 2500,
        ("cohortsync_scheduler_retries_total", "query:vip", None): 1,
        ("cohortsync_scheduler_cohort_members", "query:vip", None): 2500,
        ("cohortsync_scheduler_last_success_timestamp_seconds", "query:vip", None): (
            finished.timestamp()
        ),
    }
    for (name, job, status), wanted in expected.items():
        labels = {"job": job} if status is None else {"job": job, "status": status}
        assert value(after, name, **labels) == pytest.approx(wanted, abs=1e-3), name
    # The job that never exported: its counters at 0, no size, no success.
    assert value(after, "cohortsync_scheduler_identifiers_sent_total", job="query:broken") == 0
    assert value(after, "cohortsync_scheduler_retries_total", job="query:broken") == 0
    assert value(after, "cohortsync_scheduler_cohort_members", job="query:broken") is None
    assert (
        value(after, "cohortsync_scheduler_last_success_timestamp_seconds", job="query:broken")
        is None
    )
    # what the server acknowledged is what the metrics say was sent
    assert sum(len(r.body["cohort_changes"][0]["user_ids"]) for r in partner.users_requests()) == (
        2500
    )


def test_a_busy_metrics_port_is_one_line_and_exit_2(home: Path) -> None:
    held = SchedulerMetrics().serve("127.0.0.1", 0)
    port = held.url.rsplit(":", 1)[1].split("/")[0]
    try:
        duckdb.connect(str(home / "warehouse.duckdb")).close()
        result = subprocess.run(
            cohortsync_command("scheduler", "--once", "--metrics-port", port),
            capture_output=True, text=True, env=dict(os.environ), timeout=60,
        )  # fmt: skip
    finally:
        held.close()
    assert result.returncode == 2, result.stderr
    assert f"cannot serve the metrics on 127.0.0.1:{port}" in result.stderr
    assert "--metrics-port" in result.stderr
    assert "Traceback" not in result.stderr


def start_scheduler(folder: Path, name: str) -> tuple[subprocess.Popen[str], str, Path]:
    """A scheduler process with its metrics on a free port; its URL, and its stdout file."""
    stdout, stderr = folder / f"{name}.out", folder / f"{name}.err"
    with stdout.open("w") as out, stderr.open("w") as err:
        process = subprocess.Popen(
            cohortsync_command("scheduler", "--poll-interval", "0.1", "--json",
                               "--metrics-port", "0"),
            stdout=out, stderr=err, text=True, env=dict(os.environ),
        )  # fmt: skip
    url = wait_for(
        lambda: (found := METRICS_ON.search(stderr.read_text())) and found.group(1),
        30,
        what=f"{name} to say where its metrics are",
        process=process,
    )
    return process, url, stdout


def test_a_resumed_run_counts_only_what_it_sent_itself(
    home: Path,
    partner: PartnerServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    with duckdb.connect(str(home / "warehouse.duckdb")) as connection:
        connection.execute("CREATE TABLE t AS SELECT 'u' || i AS user_ids FROM range(12000) r(i)")
    save_home_auth("partner", partner.url, CLIENT_SECRET)
    two_years_ago = datetime.now(UTC) - timedelta(days=730)
    export = QueryExport(auth="partner", cohort_id="big", operation="mirror", threads=1)
    save_query("big", "SELECT user_ids FROM t", export=export, schedule=ONCE_A_YEAR,
               now=two_years_ago)  # fmt: skip
    partner.delay = 0.15  # 12 batches, one at a time

    first, _url, _ = start_scheduler(tmp_path, "first")
    try:
        wait_for(lambda: len(partner.users_requests()) >= 3, 30, what="3 batches", process=first)
    finally:
        first.send_signal(signal.SIGTERM)  # the run ends interrupted, its slot handed back
        first.wait(timeout=30)
    assert first.returncode == 0
    before = len(partner.users_requests())
    assert 3 <= before < 12

    partner.delay = 0
    second, url, stdout = start_scheduler(tmp_path, "second")
    try:
        wait_for(lambda: stdout.read_text(), 30, what="the resumed run to end", process=second)
        [outcome] = [orjson.loads(line) for line in stdout.read_text().splitlines()]
        assert outcome["status"] == "succeeded"
        samples = wait_for(
            lambda: (s := scrape(url)) and value(s, "cohortsync_scheduler_runs_in_flight") == 0
            and s,
            10,
            what="no run in flight",
        )  # fmt: skip
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
    sent = value(samples, "cohortsync_scheduler_identifiers_sent_total", job="query:big")
    assert sent == 12_000 - 1000 * before  # the batches the first attempt got in are not counted
    assert value(samples, "cohortsync_scheduler_cohort_members", job="query:big") == 12_000
    assert value(samples, "cohortsync_scheduler_runs_total", job="query:big",
                 status="succeeded") == 1  # fmt: skip
    assert len(partner.users_requests()) == 12  # and nothing was sent twice


ACTIVATION = """\
parents:
  - name: members
    table: members
    key: external_id
segments:
  - name: gold
    parent: members
    rules: {column: tier, op: "=", value: gold}
activations:
  - name: gold_daily
    segment: gold
    auth: partner
    cohort_id: gold
    operation: mirror
    mapping: [external_id=user_ids]
    schedule: "0 0 1 1 *"
"""


def test_an_activation_job_is_counted_as_a_query_is(
    home: Path,
    partner: PartnerServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    with duckdb.connect(str(home / "warehouse.duckdb")) as connection:
        connection.execute(
            "CREATE TABLE members AS SELECT 'm' || i AS external_id, "
            "CASE WHEN i % 3 = 0 THEN 'gold' ELSE 'silver' END AS tier FROM range(1500) r(i)"
        )
    save_home_auth("partner", partner.url, CLIENT_SECRET)
    definitions = tmp_path / "cohortsync.yaml"
    definitions.write_text(ACTIVATION)
    assert apply_file(definitions).changed
    # saved now, the schedule owes nothing before next year: anchor it two years back
    with sqlite3.connect(home / "catalog.db") as catalog:
        anchor = (datetime.now(UTC) - timedelta(days=730)).replace(tzinfo=None)
        catalog.execute("UPDATE schedules SET anchor = ?", (anchor.isoformat(" "),))

    process, url, stdout = start_scheduler(tmp_path, "scheduler")
    try:
        wait_for(lambda: stdout.read_text(), 30, what="the activation to run", process=process)
        [outcome] = [orjson.loads(line) for line in stdout.read_text().splitlines()]
        assert (outcome["job"], outcome["status"]) == ("activation:gold_daily", "succeeded")
        samples = wait_for(
            lambda: (s := scrape(url)) and value(s, "cohortsync_scheduler_runs_in_flight") == 0
            and s,
            10,
            what="no run in flight",
        )  # fmt: skip
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    job = "activation:gold_daily"
    assert value(samples, "cohortsync_scheduler_runs_total", job=job, status="succeeded") == 1
    assert value(samples, "cohortsync_scheduler_identifiers_sent_total", job=job) == 500
    assert value(samples, "cohortsync_scheduler_retries_total", job=job) == 0
    assert value(samples, "cohortsync_scheduler_cohort_members", job=job) == 500
    finished = datetime.fromisoformat(outcome["finished_at"]).timestamp()
    assert value(samples, "cohortsync_scheduler_last_success_timestamp_seconds", job=job) == (
        pytest.approx(finished, abs=1e-3)
    )
