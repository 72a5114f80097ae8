"""Data Workbench > Queries in the browser: write, Run, Export Results, Dry run, Save, Run now.

Against the real parts: the home's DuckDB warehouse holding the seed's
``example_cohort_table``, the receiving service the export sends to, and the
command line a user checks the cohort with. The data import key never comes
back in any page.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import expect
from tests.console.conftest import RunningConsole, load_seed_table, save_sandbox_auth

from cohortsync import queries
from cohortsync.demo import SEED_ROWS
from cohortsync.jobs.run_history import list_run_views
from support import run_cli, wait_for
from support.browser import screenshot

SEED_SQL = "SELECT external_id AS user_ids FROM example_cohort_table"
SEED_IDS = sorted(external_id for external_id, _email, _device in SEED_ROWS)


class Pages:
    """Every page's HTML as the browser had it, to check that no key is in any."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.seen: list[str] = []

    def shot(self, name: str) -> None:
        self.seen.append(self.page.content())
        screenshot(self.page, f"console-workbench-{name}")

    def assert_never_shown(self, secret: str) -> None:
        assert self.seen and all(secret not in html for html in self.seen)


def run_sql(page: Any, sql: str) -> str:
    """Type ``sql``, press Run, and return what the result area shows."""
    page.get_by_label("SQL", exact=True).fill(sql)
    result = page.locator("#result")
    result.evaluate("area => area.replaceChildren()")  # so the wait is for this run's answer
    page.get_by_role("button", name="Run", exact=True).click()
    result.locator(".alert, .result-count").first.wait_for()
    return str(result.inner_text())


def test_the_data_workbench_path(
    console_page: Any, console: RunningConsole, braze_sandbox: Any, tmp_path: Path
) -> None:
    page = console_page
    pages = Pages(page)
    braze_sandbox.load_users([{"external_id": external_id} for external_id in SEED_IDS])
    load_seed_table(console, tmp_path)

    # An authentication, through the Integrations Hub as a person saves one.
    page.goto(f"{console.url}/hub/braze/new")
    page.get_by_label("Name", exact=True).fill("braze-sandbox")
    page.get_by_label("REST endpoint").fill(braze_sandbox.base_url)
    page.get_by_label("Data import key").fill(braze_sandbox.data_import_key)
    page.get_by_role("button", name="Check and save").click()
    page.wait_for_url(f"{console.url}/hub/braze?saved=braze-sandbox")

    page.get_by_role("link", name="Data Workbench").click()
    page.wait_for_url(f"{console.url}/queries")
    assert "No saved queries yet" in page.locator("main").inner_text()
    pages.shot("queries-empty")
    page.get_by_role("link", name="New Query").first.click()
    page.wait_for_url(f"{console.url}/queries/new")
    pages.shot("new-query")

    shown = run_sql(page, SEED_SQL)
    assert "4 rows" in shown
    assert sorted(page.locator("#result tbody td").all_inner_texts()) == SEED_IDS
    pages.shot("run-result")

    # Export Results: the alias select now offers the result's columns.
    alias = page.get_by_label("Alias", exact=True)
    assert alias.locator("option").all_inner_texts() == ["none", "user_ids"]
    page.get_by_label("Authentication").select_option("braze-sandbox")
    page.get_by_label("Cohort ID").fill("td_external_ids")
    page.get_by_label("Cohort Name").fill("TD external ids")
    page.get_by_label("Operation").select_option("add")
    page.get_by_role("button", name="Dry run").click()
    plan = page.locator("#plan")
    plan.get_by_text("Dry run: the plan, nothing sent").wait_for()
    stats = plan.locator(".stat").all_inner_texts()
    assert "4\nuser_ids" in stats and "0\ndevice_ids" in stats and "0\naliases" in stats
    assert any(text.startswith("2\nrequests") for text in stats)
    sample = plan.locator("pre.sample").inner_text()
    assert '"cohort_id": "td_external_ids"' in sample and "TDCohort1" in sample
    assert braze_sandbox.data_import_key not in page.content()
    assert braze_sandbox.partner_api_key not in page.content()
    pages.shot("dry-run")

    # Save with a schedule: its next three runs show as it is typed.
    page.get_by_label("Query name").fill("td_daily")
    page.get_by_label("Time zone").select_option("Europe/Paris")
    page.get_by_label("Schedule (cron)").press_sequentially("0 6 * * *")
    upcoming = page.locator("#schedule-preview li")
    upcoming.nth(2).wait_for()
    assert upcoming.count() == 3
    assert all(text.endswith("06:00") for text in upcoming.all_inner_texts())
    assert "Europe/Paris" in page.locator("#schedule-preview").inner_text()
    pages.shot("schedule")
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_url(f"{console.url}/queries/td_daily?saved=created")
    assert "was created" in page.get_by_role("status").first.inner_text()
    assert page.get_by_label("SQL", exact=True).input_value() == SEED_SQL
    assert page.get_by_label("Cohort ID").input_value() == "td_external_ids"
    pages.shot("saved")
    [saved] = queries.list_queries(settings=console.settings)
    assert (saved.schedule, saved.timezone) == ("0 6 * * *", "Europe/Paris")
    assert saved.export is not None and saved.export.cohort_id == "td_external_ids"

    page.get_by_role("button", name="Run now").click()
    page.wait_for_url(re.compile(r"/runs/"))
    wait_for(
        lambda: (
            [v["status"] for v in list_run_views(console.settings, job="query:td_daily")]
            == ["succeeded"]
        ),
        timeout=30,
        what="the run of td_daily to succeed",
    )
    members = run_cli(
        "braze", "cohorts", "members", "td_external_ids",
        "--workspace", str(braze_sandbox.workspace), "--db", braze_sandbox.db_url,
    ).json()  # fmt: skip
    assert sorted(member["external_id"] for member in members) == SEED_IDS

    page.goto(f"{console.url}/queries")
    row = page.get_by_role("row").filter(has_text="td_daily")
    assert "td_external_ids" in row.inner_text() and "succeeded" in row.inner_text()
    assert "0 6 * * *" in row.inner_text()
    pages.shot("queries-list")

    row.get_by_role("link", name="td_daily").click()
    page.get_by_role("link", name="Delete query").click()
    pages.shot("delete")
    page.get_by_role("button", name="Delete td_daily").click()
    page.wait_for_url(f"{console.url}/queries?deleted=td_daily")
    assert queries.list_queries(settings=console.settings) == []
    pages.assert_never_shown(braze_sandbox.data_import_key)


def test_refusals_show_next_to_their_field_and_save_nothing(
    console_page: Any, console: RunningConsole, braze_sandbox: Any
) -> None:
    page = console_page
    pages = Pages(page)
    save_sandbox_auth(console, braze_sandbox)
    page.goto(f"{console.url}/queries/new")

    shown = run_sql(page, "SELEC external_id FROM somewhere")
    assert "syntax error" in shown.lower()
    pages.shot("bad-sql")
    assert "no_such_table" in run_sql(page, "SELECT * FROM no_such_table")
    pages.shot("unknown-table")
    assert "DELETE statement, and queries only read" in run_sql(
        page, "DELETE FROM example_cohort_table"
    )
    pages.shot("writing-refused")

    page.get_by_label("SQL", exact=True).fill("SELECT 'u1' AS user_ids")
    page.get_by_label("Authentication").select_option("braze-sandbox")
    page.get_by_label("Cohort ID").fill("vip")
    page.get_by_label("Query name").fill("vip")
    page.get_by_label("Schedule (cron)").fill("61 * * * *")
    page.locator("#schedule-preview .error").wait_for()
    assert "61" in page.locator("#e-schedule").inner_text()
    for threads, words in (("0", "below 1"), ("65", "above 64")):
        page.get_by_label("Thread count").fill(threads)
        page.get_by_role("button", name="Save", exact=True).click()
        page.wait_for_load_state()
        assert words in page.locator("#e-threads").inner_text()
        assert page.get_by_label("Thread count").get_attribute("aria-invalid") == "true"
        assert "Not saved" in page.get_by_role("alert").first.inner_text()
        # What was typed stays.
        assert page.get_by_label("Cohort ID").input_value() == "vip"
        assert "61" in page.locator("#e-schedule").inner_text()
    pages.shot("refused-save")
    # The same bound in a dry run, next to the field.
    page.get_by_label("Thread count").fill("0")
    page.get_by_role("button", name="Dry run").click()
    expect(page.locator("#e-threads")).to_contain_text("below 1")
    pages.shot("refused-dry-run")
    # The mirror guards show with the operation mirror, and are checked as saved.
    page.get_by_label("Thread count").fill("4")
    assert not page.get_by_label("Max remove %").is_visible()
    page.get_by_label("Operation").select_option("mirror")
    page.get_by_label("Max remove %").fill("150")
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_load_state()
    assert "not within 0..100" in page.locator("#e-max_remove_pct").inner_text()
    assert page.get_by_label("Max remove %").is_visible()
    pages.shot("refused-mirror-guard")
    assert queries.list_queries(settings=console.settings) == []
    pages.assert_never_shown(braze_sandbox.data_import_key)


def test_a_huge_result_shows_its_first_rows_and_its_count(
    console_page: Any, console: RunningConsole
) -> None:
    page = console_page
    page.goto(f"{console.url}/queries/new")
    started = time.monotonic()
    shown = run_sql(page, "SELECT range AS n, 'user' || range AS user_ids FROM range(5000000)")
    elapsed = time.monotonic() - started
    assert "5,000,000 rows" in shown and "first 100 shown" in shown
    assert page.locator("#result tbody tr").count() == 100
    html = page.content()
    assert len(html) < 150_000, f"the page holds {len(html):,} characters"
    assert elapsed < 30
    screenshot(page, "console-workbench-huge-result")


def test_the_list_finds_queries_by_name_a_page_at_a_time(
    console_page: Any, console: RunningConsole, monkeypatch: Any
) -> None:
    from cohortsync.console.routes import workbench

    monkeypatch.setattr(workbench, "LIST_PAGE", 2)
    for name in ("churn_weekly", "vip_daily", "vip_weekly"):
        queries.save_query(name, "SELECT 'u1' AS user_ids", settings=console.settings)
    page = console_page
    page.goto(f"{console.url}/queries")
    names = page.locator("tbody td:first-child").all_inner_texts()
    assert names == ["churn_weekly", "vip_daily"]
    assert (
        "Showing 1 to 2 of 3 queries"
        in page.get_by_role("navigation", name="Pages of queries").inner_text()
    )
    page.get_by_role("link", name="Next page").click()
    assert page.locator("tbody td:first-child").all_inner_texts() == ["vip_weekly"]
    page.get_by_label("Find by name").fill("weekly")
    page.get_by_role("button", name="Find").click()
    assert page.locator("tbody td:first-child").all_inner_texts() == ["churn_weekly", "vip_weekly"]
    assert "on demand" in page.get_by_role("row").filter(has_text="vip_weekly").inner_text()
    screenshot(page, "console-workbench-queries-found")
    page.get_by_label("Find by name").fill("nothing-like-it")
    page.get_by_role("button", name="Find").click()
    assert "No saved query has nothing-like-it in its name" in page.locator(".empty").inner_text()
