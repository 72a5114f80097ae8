"""Runs in the browser: the history and its filters, a run's page, live progress, Stop, Resume.

The runs are real exports to the receiving service (``braze_sandbox``)
through the library, recorded in the console's own catalog; the receiving
service is rate limited in the progress test, so a resumed run lasts long
enough to be watched from its page.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
from tests.console.conftest import SANDBOX_AUTH, RunningConsole, save_sandbox_auth

from cohortsync.braze.sandbox import running_sandbox
from cohortsync.catalog import runs as history
from cohortsync.catalog.db import open_catalog
from cohortsync.console import launches
from cohortsync.console.charts import line_chart
from cohortsync.errors import CohortsyncError
from cohortsync.export.destinations import destination_for_auth
from cohortsync.export.locks import CohortLock
from cohortsync.export.reporting import SilentReporter
from cohortsync.export.run import run_export
from cohortsync.export.spec import Destination, ExportSpec, Source
from cohortsync.export.stopping import StopToken
from cohortsync.identity import CohortKey
from cohortsync.jobs.run_history import error_parts, exit_reason, list_run_views
from cohortsync.settings import Settings
from support.browser import screenshot

AUTH = SANDBOX_AUTH


@pytest.fixture
def braze_sandbox(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """The receiving service, at ``request.param`` requests per second when a test asks."""
    rate = getattr(request, "param", None) or "250000/hour"
    with running_sandbox(f"sqlite:///{tmp_path / 'braze-sandbox.db'}", rate_limit=rate) as sandbox:
        yield sandbox


def off_the_page_thread(work: Callable[[], Any]) -> Any:
    """Run ``work`` in another thread: Playwright's event loop holds the test's thread."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(work).result()


def users(sandbox: Any, table: str, count: int, *, start: int = 0) -> list[str]:
    """``count`` users known to the service, and the warehouse table ``table`` of their ids."""
    ids = [f"u{n:05d}" for n in range(start, start + count)]
    sandbox.load_users([{"external_id": uid} for uid in ids])
    home = Settings().home_dir
    with duckdb.connect(str(home / "warehouse.duckdb")) as connection:
        connection.execute(
            f"CREATE OR REPLACE TABLE {table} AS SELECT 'u' || lpad(CAST(n AS VARCHAR), 5, '0') "
            f"AS user_ids FROM range({start}, {start + count}) t(n)"
        )
    return ids


def export(
    console: RunningConsole,
    *,
    table: str,
    cohort: str,
    job: str | None,
    operation: str = "mirror",
    destination: Destination | None = None,
    **options: Any,
) -> str:
    """Run one export through the library; the id of the run it recorded, failed or not."""
    spec = ExportSpec(
        source=Source(table=table),
        destination=destination or destination_for_auth(AUTH, console.settings),
        cohort_id=cohort,
        operation=operation,  # type: ignore[arg-type]
        job=job,
        **options,
    )
    try:
        report = off_the_page_thread(lambda: run_export(spec, settings=console.settings))
        return str(report.run_id)
    except CohortsyncError as error:
        assert error.run_id is not None, error
        return error.run_id


def rows_of(page: Any) -> list[str]:
    return [row.inner_text() for row in page.locator("table.runs tbody tr").all()]


def test_history_filters_a_failed_runs_error_and_a_jobs_charts(
    console_page: Any,
    console: RunningConsole,
    braze_sandbox: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    page = console_page
    page.goto(f"{console.url}/runs")
    assert "No runs yet" in page.locator(".empty").inner_text()
    screenshot(page, "console-runs-history-empty")

    save_sandbox_auth(console, braze_sandbox, checked=False)
    for size in (3, 5, 4):  # a mirror that grows then shrinks
        users(braze_sandbox, "vip_users", size)
        export(console, table="vip_users", cohort="vip", job="query:vip")
    users(braze_sandbox, "churn_users", 2, start=100)
    export(console, table="churn_users", cohort="churn", job="activation:churn", operation="add")
    refused = export(
        console,
        table="churn_users",
        cohort="churn-ad-hoc",
        job=None,
        operation="add",
        destination=Destination(
            endpoint=braze_sandbox.base_url,
            data_import_key="not-the-key",
            partner_api_key=braze_sandbox.partner_api_key,
        ),
    )
    monkeypatch.setenv("COHORTSYNC_HTTP_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("COHORTSYNC_HTTP_BACKOFF_BASE", "0.01")
    braze_sandbox.lock("churn")  # Braze answers 423 while a cohort is locked
    busy = export(console, table="churn_users", cohort="churn", job="query:locked", operation="add")

    page.goto(f"{console.url}/runs")
    assert len(rows_of(page)) == 6
    screenshot(page, "console-runs-history")

    page.get_by_label("Status").select_option("failed")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**status=failed**")
    failed = rows_of(page)
    assert len(failed) == 2 and all("failed" in row for row in failed)
    assert page.get_by_label("Status").input_value() == "failed"  # the filter stays
    screenshot(page, "console-runs-history-failed")

    page.get_by_role("link", name="Clear filters").click()
    page.get_by_label("Cohort").select_option("churn")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**cohort=churn**")
    locked, churn = rows_of(page)
    assert "activation:churn" in churn and "succeeded" in churn
    assert "query:locked" in locked and "failed" in locked

    page.get_by_label("Cohort").select_option("")
    page.get_by_label("Job").select_option("query:vip")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**job=query%3Avip**")
    assert len(rows_of(page)) == 3
    charts = page.locator("section.run-charts")
    charts.wait_for()
    # three successful mirror runs: three points of cohort size (3, 5, 4) and of identifiers sent
    assert page.locator("svg#chart-query-vip-size circle.point").count() == 3
    assert page.locator("svg#chart-query-vip-sent circle.point").count() == 3
    size_desc = page.locator("svg#chart-query-vip-size desc").text_content() or ""
    assert "latest 4, lowest 3, highest 5" in size_desc
    screenshot(page, "console-runs-history-job-charts")

    # the run page of a mirror run: what it exported, the plan, the counts
    page.locator("table.runs tbody tr").first.get_by_role("link").click()
    assert "succeeded" in page.locator("#run-status").inner_text()
    assert "1 exits" in page.locator("#run-live").inner_text().replace(",", "") or (
        "exits" in page.locator("#run-live").inner_text()
    )
    assert "vip_users" in page.locator("dl.facts").inner_text()
    assert AUTH in page.locator("dl.facts").inner_text()
    screenshot(page, "console-runs-run-succeeded")

    # a refused key: the destination refused, with the server's message and what to do
    page.goto(f"{console.url}/runs/{refused}")
    alert = page.get_by_role("alert").inner_text()
    assert alert.startswith("The destination refused:")
    assert "HTTP 401" in alert and "What to do:" in alert
    assert page.get_by_role("button", name="Resume").count() == 0
    screenshot(page, "console-runs-run-refused")

    page.goto(f"{console.url}/runs/{busy}")
    alert = page.get_by_role("alert").inner_text()
    assert alert.startswith("Retries exhausted:") and "What to do:" in alert
    screenshot(page, "console-runs-run-retries-exhausted")

    page.goto(f"{console.url}/runs/nothing-like-this")
    assert "no export run with id" in page.content()


def test_charts_fragment_and_an_unknown_job(console_page: Any, console: RunningConsole) -> None:
    page = console_page
    page.goto(f"{console.url}/runs/charts?job=query:never-ran")
    assert "No runs of query:never-ran yet" in page.content()
    response = page.goto(f"{console.url}/runs?job=vip")
    assert response.status == 422
    assert "is not the name of a saved job" in page.get_by_role("alert").inner_text()
    screenshot(page, "console-runs-history-bad-filter")


class StopAfterFirstBatch(SilentReporter):
    def __init__(self, stop: StopToken) -> None:
        self.stop = stop

    def batches_sent(self, batches: int, identifiers: int) -> None:
        self.stop.request("the test")


def batches_shown(page: Any) -> int:
    return int(page.locator("#run-batches").inner_text().replace(",", ""))


@pytest.mark.parametrize("braze_sandbox", ["2/second"], indirect=True)
def test_live_progress_stop_and_resume_complete_the_cohort(
    console_page: Any,
    console: RunningConsole,
    braze_sandbox: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    page = console_page
    save_sandbox_auth(console, braze_sandbox, checked=False)
    expected = users(braze_sandbox, "big", 9_000)
    spec = ExportSpec(
        source=Source(table="big"),
        destination=destination_for_auth(AUTH, console.settings),
        cohort_id="big",
        operation="mirror",
        threads=1,
        job="query:big",
    )
    stop = StopToken()
    with pytest.raises(CohortsyncError) as interrupted:
        off_the_page_thread(
            lambda: run_export(
                spec, settings=console.settings, reporter=StopAfterFirstBatch(stop), stop=stop
            )
        )
    run_id = interrupted.value.run_id

    page.goto(f"{console.url}/runs/{run_id}")
    assert "interrupted" in page.locator("#run-status").inner_text()
    assert page.get_by_role("alert").inner_text().startswith("Interrupted:")
    screenshot(page, "console-runs-run-interrupted")

    page.get_by_role("button", name="Resume").click()
    page.wait_for_url(f"{console.url}/runs/{run_id}")
    page.locator("#run-batches").wait_for()
    first = batches_shown(page)
    # the page updates itself: the count grows without a reload
    page.wait_for_function(
        "n => Number(document.querySelector('#run-batches').textContent.replace(/,/g, '')) > n",
        arg=first,
        timeout=10_000,
    )
    assert batches_shown(page) > first
    assert page.locator("#run-stage").inner_text() == "sending batches"
    assert page.locator("progress").count() == 1
    screenshot(page, "console-runs-run-live-progress")

    page.get_by_role("button", name="Stop").click()
    page.get_by_role("button", name="Resume").wait_for(timeout=15_000)
    assert "interrupted" in page.locator("#run-status").inner_text()
    assert "the console user" in page.get_by_role("alert").inner_text()
    screenshot(page, "console-runs-run-stopped")

    # While another run holds the cohort, the resume waits: the browser is shown its launch,
    # then sent on to the run once it is recorded.
    monkeypatch.setattr(launches, "WAIT_FOR_RUN_ID", 0.5)
    catalog = open_catalog(console.settings.catalog_path)
    try:
        lock = CohortLock(
            console.settings.home_dir, CohortKey.for_run(history.get_run(catalog, run_id))
        )
    finally:
        catalog.dispose()
    lock.acquire(timeout=0)
    try:
        page.get_by_role("button", name="Resume").click()
        page.wait_for_url("**/runs/launches/**")
        assert "Waiting for the run to start" in page.locator("#launch-state").inner_text()
        screenshot(page, "console-runs-launch-waiting")
    finally:
        lock.release()
    page.wait_for_url(f"{console.url}/runs/{run_id}")
    page.locator("#run-status.succeeded").wait_for(timeout=30_000)
    assert page.locator("#run-sent").inner_text().replace(",", "") == str(len(expected))
    assert page.locator("[hx-trigger]").count() == 0  # polling stopped with the final report
    screenshot(page, "console-runs-run-resumed")
    members = {member["external_id"] for member in braze_sandbox.members("big")}
    assert members == set(expected)


class StopOnceRecorded(SilentReporter):
    def __init__(self, stop: StopToken) -> None:
        self.stop = stop

    def run_started(self, run_id: str) -> None:
        self.stop.request("the test")


def test_a_resume_asks_for_the_key_a_command_line_run_was_given(
    console_page: Any, console: RunningConsole, braze_sandbox: Any
) -> None:
    """A run given its key on the command line asks for it again; a wrong one is refused.

    A run stopped before its plan was written has nothing to resume: no Resume is offered.
    """
    page = console_page
    expected = users(braze_sandbox, "keyed", 2_500)
    destination = Destination(
        endpoint=braze_sandbox.base_url,
        data_import_key=braze_sandbox.data_import_key,
        partner_api_key=braze_sandbox.partner_api_key,
    )

    def interrupted_run(reporter: Any, stop: StopToken, cohort: str) -> str:
        spec = ExportSpec(
            source=Source(table="keyed"), destination=destination, cohort_id=cohort, threads=1
        )
        with pytest.raises(CohortsyncError) as interrupted:
            off_the_page_thread(
                lambda: run_export(spec, settings=console.settings, reporter=reporter, stop=stop)
            )
        return str(interrupted.value.run_id)

    stop = StopToken()
    unplanned = interrupted_run(StopOnceRecorded(stop), stop, "unplanned")
    page.goto(f"{console.url}/runs/{unplanned}")
    assert "interrupted" in page.locator("#run-status").inner_text()
    assert page.get_by_role("button", name="Resume").count() == 0
    assert "run the same export again" in page.get_by_role("alert").inner_text()
    screenshot(page, "console-runs-run-interrupted-before-planning")

    stop = StopToken()
    run_id = interrupted_run(StopAfterFirstBatch(stop), stop, "some")
    page.goto(f"{console.url}/runs/{run_id}")
    page.get_by_label("Data import key").fill("not-the-key")
    screenshot(page, "console-runs-resume-asks-key")
    page.get_by_role("button", name="Resume").click()
    error = page.locator("#e-data_import_key").inner_text()
    assert "is not the one run" in error and "not-the-key" not in page.content()
    assert page.get_by_label("Data import key").get_attribute("aria-invalid") == "true"
    screenshot(page, "console-runs-resume-wrong-key")

    page.get_by_label("Data import key").fill(braze_sandbox.data_import_key)
    page.get_by_role("button", name="Resume").click()
    page.wait_for_url(f"{console.url}/runs/{run_id}")
    page.locator("#run-status.succeeded").wait_for(timeout=15_000)
    assert braze_sandbox.data_import_key not in page.content()
    assert {member["external_id"] for member in braze_sandbox.members("some")} == set(expected)


def test_list_runs_pages_with_before(home: Path) -> None:
    """``before`` continues the history after a run: no run twice, none left out, ties by id."""
    settings = Settings()
    catalog = open_catalog(settings.catalog_path)
    started = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    try:
        with catalog.begin() as conn:
            conn.execute(
                history.runs.insert(),
                [
                    {
                        "id": f"run-{n:03d}",
                        "job": "{}",
                        "job_name": "query:q" if n % 2 else None,
                        "cohort_key": "k",
                        "endpoint": "",
                        "partner": "",
                        "cohort_id": "c",
                        "key_hash": "",
                        "operation": "add",
                        "status": "succeeded",
                        # pairs of runs share a start time
                        "started_at": started + dt.timedelta(seconds=n // 2),
                    }
                    for n in range(25)
                ],
            )
        seen: list[str] = []
        before = None
        while True:
            page = history.list_runs(catalog, limit=7, before=before)
            if not page:
                break
            seen += [run.id for run in page]
            before = page[-1].id
        assert seen == [f"run-{n:03d}" for n in reversed(range(25))]
        odd = list_run_views(settings, job="query:q", limit=3, before="run-019")
        assert [view["id"] for view in odd] == ["run-017", "run-015", "run-013"]
        assert history.list_runs(catalog, before="no-such-run") == []
    finally:
        catalog.dispose()


def test_exit_reasons_read_from_the_recorded_error() -> None:
    def reason(status: str, error: str | None = None, alive: bool = True) -> str | None:
        return exit_reason({"status": status, "error": error, "alive": alive})

    assert reason("succeeded") is None
    assert reason("running") is None
    assert reason("running", alive=False) == "died: no process holds its cohort"
    assert reason("interrupted", "interrupted by SIGTERM") == "interrupted"
    refused = "https://x/cohorts refused the cohort name request: HTTP 401 bad key (check it)"
    assert reason("failed", refused) == "the destination refused"
    assert reason(
        "failed", "gave up on the users request to https://x after 8 attempts: HTTP 503"
    ) == ("retries exhausted")
    assert reason("failed", "another run of cohort vip is in progress; waited 5 s for it") == (
        "the cohort was busy with another run"
    )
    assert reason("failed", "mirror of vip would remove 90 of its 100 tracked members") == (
        "the mirror guard refused"
    )
    assert reason("failed", "Catalog Error: Table with name nope does not exist!") == "failed"


def test_error_parts_and_chart_markup() -> None:
    assert error_parts("x refused (HTTP 401 (bad key)) (check the key)") == (
        "x refused (HTTP 401 (bad key))",
        "check the key",
    )
    assert error_parts("no hint here") == ("no hint here", None)
    moments = [dt.datetime(2026, 1, d, tzinfo=dt.UTC) for d in (1, 2, 3)]
    svg = str(line_chart(list(zip(moments, (3, 5, 4), strict=True)), title="Size", chart_id="s"))
    assert svg.count('class="point"') == 3
    assert "style=" not in svg and "<title" in svg and "<desc" in svg
    assert "<td>2026-01-02 00:00</td><td>5</td>" in svg


def test_the_history_and_a_run_page_render_fast_with_10000_runs(
    console_page: Any, console: RunningConsole
) -> None:
    catalog = open_catalog(console.settings.catalog_path)
    started = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    report = '{"rows_read": 10, "sent": {"user_ids": 10}, "sent_total": 10, "batches": 1}'
    try:
        with catalog.begin() as conn:
            conn.execute(
                history.runs.insert(),
                [
                    {
                        "id": f"20260101T000000-{n:04x}",
                        "job": orjson.dumps(
                            {"job": f"query:q{n % 40}", "cohort_id": f"c{n % 40}"}
                        ).decode(),
                        "job_name": f"query:q{n % 40}",
                        "cohort_key": f"k{n % 40}",
                        "endpoint": "",
                        "partner": "",
                        "cohort_id": f"c{n % 40}",
                        "key_hash": "",
                        "operation": "add",
                        "status": ("succeeded", "failed")[n % 7 == 0],
                        "started_at": started + dt.timedelta(seconds=n),
                        "finished_at": started + dt.timedelta(seconds=n + 1),
                        "report": report,
                    }
                    for n in range(10_000)
                ],
            )
    finally:
        catalog.dispose()
    page = console_page
    for path in (
        "/runs",
        "/runs?status=failed",
        "/runs?cohort=c3",
        "/runs?job=query:q5",
        "/runs?before=20260101T000000-1000",
        "/runs/20260101T000000-0100",
        "/runs/charts?job=query:q5",
    ):
        page.goto(f"{console.url}{path}")  # warm
        timings = []
        for _ in range(3):  # the best of three: another process may hold the CPU for a moment
            began = time.monotonic()
            response = page.request.get(f"{console.url}{path}")
            timings.append(time.monotonic() - began)
            assert response.status == 200, path
        assert min(timings) < 0.2, f"{path} took {min(timings):.3f} s at best"
    page.goto(f"{console.url}/runs")
    assert page.get_by_role("link", name="Older runs").count() == 1
    page.get_by_role("link", name="Older runs").click()
    assert len(rows_of(page)) == 50
    screenshot(page, "console-runs-history-older")
