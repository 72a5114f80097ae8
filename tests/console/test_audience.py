"""Audience Studio in the browser: parent, segment builder with its live count, activation.

The whole path runs against the real parts: the seed's example_cohort_table
loaded into the home's DuckDB warehouse with the real command line, the
receiving service as the Braze side, and the cohort's members read back with
``cohortsync braze cohorts members``. Refused forms are checked to save
nothing through the library's own lists.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import duckdb
from playwright.sync_api import expect
from tests.console.conftest import (
    SANDBOX_AUTH,
    RunningConsole,
    load_seed_table,
    save_sandbox_auth,
)

from cohortsync.audience import activations, parents, segments
from cohortsync.definitions import Activation
from cohortsync.demo import SEED_ROWS
from support import run_cli, wait_for
from support.browser import screenshot

AUTH = SANDBOX_AUTH
# Gmail addresses, and of those either TDCohort1 or the owner of device 7h8j9k.
EXPECTED_SQL = (
    "SELECT external_id FROM example_cohort_table WHERE email LIKE '%@gmail.com' "
    "AND (external_id = 'TDCohort1' OR device_ids = '7h8j9k') ORDER BY external_id"
)


def warehouse_ids(console: RunningConsole, sql: str) -> list[str]:
    """``sql`` run straight in the warehouse file, apart from the console."""
    path = console.settings.warehouse_url.removeprefix("duckdb:///")
    with duckdb.connect(path, read_only=True) as connection:
        return [row[0] for row in connection.execute(sql).fetchall()]


def settled(page: Any) -> None:
    """Wait until htmx has no request in flight and has swapped in its last answer."""
    busy = page.locator(".htmx-request, .htmx-swapping, .htmx-settling, .htmx-added")
    expect(busy).to_have_count(0)


def choose(page: Any, label: str, value: str) -> None:
    """Pick an option that re-renders the builder, and wait for the builder to come back."""
    with page.expect_response(lambda response: response.url.endswith("/builder")):
        page.get_by_label(label).select_option(value)
    settled(page)


def type_table(page: Any, table: str) -> None:
    """Type a parent's table and leave the field, as a person does before picking its key.

    Leaving the field loads the table's columns once more (its ``change``),
    which re-renders the key field: wait for that before filling the key.
    """
    field = page.get_by_label("Warehouse table")
    field.fill(table)
    with page.expect_response(lambda response: "/audience/parents/columns" in response.url):
        field.blur()
    settled(page)


def click(page: Any, button: str) -> None:
    """Press a builder button (add or remove a rule or group) and wait for the new builder."""
    page.get_by_role("button", name=button).click()
    settled(page)


def live_count(page: Any) -> str:
    return page.locator("#live-count").inner_text()


def wait_for_count(page: Any, count: int) -> None:
    expect(page.locator("#count-value")).to_have_text(f"{count:,}")


def test_parent_segment_activation_and_run_now(
    console_page: Any, console: RunningConsole, braze_sandbox: Any, tmp_path: Path
) -> None:
    load_seed_table(console, tmp_path)
    braze_sandbox.load_users(
        {"external_id": external_id, "aliases": [{"alias_label": "email", "alias_name": email}]}
        for external_id, email, _device in SEED_ROWS
    )
    save_sandbox_auth(console, braze_sandbox)
    page = console_page

    page.get_by_role("link", name="Audience Studio").click()
    assert "Start with a parent segment" in page.content()
    screenshot(page, "console-audience-home-empty")

    # A parent on the seed table: its columns show once the table is typed.
    page.get_by_role("link", name="Create Parent Segment").first.click()
    page.get_by_label("Name", exact=True).fill("seed")
    type_table(page, "example_cohort_table")
    columns = page.locator("#table-columns")
    columns.get_by_role("cell", name="device_ids").wait_for()
    assert "VARCHAR" in columns.inner_text().upper() or "string" in columns.inner_text()
    page.get_by_label("Key column").select_option("external_id")
    screenshot(page, "console-audience-parent-new")
    page.get_by_role("button", name="Create parent segment").click()
    page.wait_for_url(f"{console.url}/audience/parents/seed?saved=1")
    assert "was saved" in page.get_by_role("status").inner_text()
    screenshot(page, "console-audience-parent")

    # The builder: email like gmail AND (TDCohort1 OR device 7h8j9k).
    page.get_by_role("link", name="Create Segment").click()
    screenshot(page, "console-audience-segment-new")
    page.get_by_label("Segment name").fill("gmail_picks")
    choose(page, "Group 1, rule 1 Attribute", "email")
    choose(page, "Group 1, rule 1 Operator", "like")
    page.get_by_label("Group 1, rule 1 Value").fill("%@gmail.com")
    wait_for_count(page, 4)
    click(page, "Add group")
    page.get_by_label("Group 2 matches").select_option("or")
    choose(page, "Group 2, rule 1 Attribute", "external_id")
    page.get_by_label("Group 2, rule 1 Value").fill("TDCohort1")
    wait_for_count(page, 1)
    click(page, "Add rule to group 2")
    choose(page, "Group 2, rule 2 Attribute", "device_ids")
    page.get_by_label("Group 2, rule 2 Value").fill("7h8j9k")
    expected = warehouse_ids(console, EXPECTED_SQL)
    assert expected == ["TDCohort1", "TDCohort3"]
    wait_for_count(page, len(expected))
    assert "customers match" in live_count(page)
    screenshot(page, "console-audience-segment-builder")
    page.get_by_role("button", name="Create segment").click()
    page.wait_for_url(f"{console.url}/audience/segments/gmail_picks?saved=1")
    assert page.locator("#count-value").inner_text() == "2"
    assert page.get_by_label("Group 2, rule 2 Value").input_value() == "7h8j9k"
    saved = segments.get_segment("gmail_picks", settings=console.settings)
    assert saved.parent == "seed" and set(saved.rules) == {"and"}
    screenshot(page, "console-audience-segment")

    # Create Activation: mapping, alias, a schedule with its next three runs.
    page.get_by_role("link", name="Create Activation").click()
    page.get_by_label("Activation name").fill("gmail_vip")
    page.get_by_label("Authentication").select_option(AUTH)
    page.get_by_label("Cohort ID").fill("gmail_vip")
    page.get_by_label("Cohort Name").fill("Gmail VIPs")
    assert page.locator(".mirror-guards").is_hidden()
    page.get_by_label("Operation").select_option("mirror")
    assert page.locator(".mirror-guards").is_visible()
    page.get_by_label("Operation").select_option("add")
    page.get_by_label("Mapping 1 Attribute column").select_option("external_id")
    page.get_by_role("button", name="Add mapping").click()
    settled(page)
    page.get_by_label("Mapping 2 Attribute column").select_option("email")
    page.get_by_label("Mapping 2 Output column").select_option("alias")
    page.get_by_label("Alias column").fill("email")
    assert page.get_by_label("Template").is_disabled()
    page.get_by_label("Cron schedule").fill("0 6 * * *")
    page.get_by_label("Time zone").fill("Europe/Paris")
    page.locator("ol.next-runs li").nth(2).wait_for()
    runs = page.locator("ol.next-runs li").all_inner_texts()
    assert len(runs) == 3 and all(text.endswith("06:00") for text in runs)
    screenshot(page, "console-audience-activation-new")
    page.get_by_role("button", name="Create activation").click()
    page.wait_for_url(f"{console.url}/audience/activations/gmail_vip?saved=1")
    activation = activations.get_activation("gmail_vip", settings=console.settings)
    assert [str(m) for m in activation.mapping] == ["external_id=user_ids", "email=email"]
    assert (activation.schedule, activation.timezone) == ("0 6 * * *", "Europe/Paris")
    screenshot(page, "console-audience-activation")

    # Run now: the browser goes on to the run; the cohort holds the segment's people.
    page.get_by_role("button", name="Run now").click()
    page.wait_for_url(re.compile(r".*/runs/.+"))
    members = wait_for(
        lambda: cohort_members(braze_sandbox, "gmail_vip"), what="the cohort's members"
    )
    assert sorted(member["external_id"] for member in members) == expected

    # The studio's home lists all three; deleting asks first and refuses what is in use.
    page.goto(f"{console.url}/audience")
    assert "gmail_vip" in page.get_by_role("table").nth(2).inner_text()
    screenshot(page, "console-audience-home")
    page.goto(f"{console.url}/audience/parents/seed")
    page.get_by_role("link", name="Delete parent segment").click()
    page.get_by_role("button", name="Delete seed").click()
    assert "used by segments: gmail_picks" in page.get_by_role("alert").inner_text()
    screenshot(page, "console-audience-delete-refused")
    page.goto(f"{console.url}/audience/activations/gmail_vip")
    page.get_by_role("link", name="Delete activation").click()
    screenshot(page, "console-audience-delete-activation")
    page.get_by_role("button", name="Delete gmail_vip").click()
    assert "was deleted" in page.get_by_role("status").inner_text()
    assert activations.list_activations(settings=console.settings) == []


def cohort_members(braze_sandbox: Any, cohort_id: str) -> list[dict[str, Any]]:
    """The cohort's members as ``cohortsync braze cohorts members`` prints them."""
    done = run_cli(
        "braze",
        "cohorts",
        "members",
        cohort_id,
        "--workspace",
        str(braze_sandbox.workspace),
        env={"COHORTSYNC_BRAZE_DB": braze_sandbox.db_url},
    )
    members: list[dict[str, Any]] = done.json()
    return members


def make_customers(console: RunningConsole, tmp_path: Path) -> None:
    """A parent ``customers`` on a table with a number column, made through the library."""
    csv = tmp_path / "customers.csv"
    csv.write_text("customer_id,age,email\nc1,17,a@x.io\nc2,34,b@x.io\nc3,52,c@x.io\n")
    run_cli("warehouse", "load", "customers", str(csv), home=console.home)
    parents.create_parent("customers", "customers", "customer_id", settings=console.settings)


def test_a_value_of_the_wrong_type_shows_next_to_its_rule_and_saves_nothing(
    console_page: Any, console: RunningConsole, tmp_path: Path
) -> None:
    make_customers(console, tmp_path)
    page = console_page
    # A table the warehouse does not have is named under its field, before and at saving.
    page.goto(f"{console.url}/audience/parents/new")
    page.get_by_label("Name", exact=True).fill("ghosts")
    type_table(page, "no_such_table")
    page.locator("#table-columns .alert").filter(has_text="no_such_table").wait_for()
    page.get_by_label("Key column").fill("id")
    page.get_by_role("button", name="Create parent segment").click()
    assert "no_such_table" in page.locator("#e-table").inner_text()
    assert page.get_by_label("Name", exact=True).input_value() == "ghosts"
    screenshot(page, "console-audience-parent-refused")
    assert [row.name for row in parents.list_parents(settings=console.settings)] == ["customers"]

    page.goto(f"{console.url}/audience/parents/customers/segments/new")
    page.get_by_label("Segment name").fill("adults")
    choose(page, "Group 1, rule 1 Attribute", "age")
    operators = page.get_by_label("Group 1, rule 1 Operator").locator("option").all_inner_texts()
    assert "matches" not in operators  # like is for text columns
    choose(page, "Group 1, rule 1 Operator", ">=")
    page.get_by_label("Group 1, rule 1 Value").fill("eighteen")
    problem = page.locator("#e-rule-0-0")
    problem.filter(has_text="does not fit").wait_for()
    assert "'age'" in problem.inner_text() and "number" in problem.inner_text()
    screenshot(page, "console-audience-rule-wrong-type")
    page.get_by_role("button", name="Create segment").click()
    assert "Not saved" in page.get_by_role("alert").first.inner_text()
    assert "does not fit" in page.locator("#e-rule-0-0").inner_text()
    assert page.get_by_label("Group 1, rule 1 Value").input_value() == "eighteen"
    screenshot(page, "console-audience-segment-refused")
    assert segments.list_segments(settings=console.settings) == []

    page.get_by_label("Group 1, rule 1 Value").fill("18")
    wait_for_count(page, 2)


def test_a_slow_builder_answer_is_not_lost_to_the_live_count(
    console_page: Any, console: RunningConsole, tmp_path: Path
) -> None:
    """A select fires input as well as change: the live count (500 ms after an input) waits
    for the builder's answer to a new column, however late that comes, and never cancels it."""
    make_customers(console, tmp_path)
    page = console_page
    page.goto(f"{console.url}/audience/parents/customers/segments/new")
    held: list[Any] = []
    page.route("**/builder", lambda route: held.append(route))  # answered once released
    page.get_by_label("Group 1, rule 1 Attribute").select_option("age")
    page.wait_for_timeout(1500)  # well past the count's 500 ms: it asks while the builder waits
    assert len(held) == 1
    with page.expect_response(lambda response: response.url.endswith("/builder")):
        held[0].continue_()
    settled(page)
    operators = page.get_by_label("Group 1, rule 1 Operator").locator("option").all_inner_texts()
    assert "matches" not in operators  # re-rendered for a number column


def test_threads_and_cron_are_refused_next_to_their_fields(
    console_page: Any, console: RunningConsole, braze_sandbox: Any, tmp_path: Path
) -> None:
    make_customers(console, tmp_path)
    segments.create_segment(
        "adults",
        "customers",
        {"column": "age", "op": ">=", "value": 18},
        settings=console.settings,
    )
    save_sandbox_auth(console, braze_sandbox)
    page = console_page
    # The saved segment opens in the builder; a change saves through segment update.
    page.goto(f"{console.url}/audience/segments/adults")
    wait_for_count(page, 2)
    page.get_by_label("Group 1, rule 1 Value").fill("40")
    wait_for_count(page, 1)
    page.get_by_role("button", name="Save segment").click()
    page.wait_for_url(f"{console.url}/audience/segments/adults?saved=1")
    saved = segments.get_segment("adults", settings=console.settings)
    assert saved.rules == {"and": [{"and": [{"column": "age", "op": ">=", "value": 40}]}]}

    page.get_by_role("link", name="Create Activation").click()
    page.get_by_label("Activation name").fill("adults_cohort")
    page.get_by_label("Authentication").select_option(AUTH)
    page.get_by_label("Cohort ID").fill("adults")
    page.get_by_label("Mapping 1 Attribute column").select_option("customer_id")
    page.get_by_label("Thread count").fill("65")
    page.get_by_label("Cron schedule").fill("61 * * * *")
    page.locator("#next-runs .error").wait_for()
    screenshot(page, "console-audience-cron-live-error")
    page.get_by_role("button", name="Create activation").click()
    assert "above 64" in page.locator("#e-threads").inner_text()
    assert "61 * * * *" in page.locator("#e-schedule").inner_text()
    assert page.get_by_label("Cohort ID").input_value() == "adults"
    assert page.get_by_label("Mapping 1 Attribute column").input_value() == "customer_id"
    screenshot(page, "console-audience-activation-refused")
    assert activations.list_activations(settings=console.settings) == []

    # Fixed, it saves; its page changes it through activation update.
    page.get_by_label("Thread count").fill("8")
    page.get_by_label("Cron schedule").fill("30 7 * * 1")
    page.get_by_role("button", name="Create activation").click()
    page.wait_for_url(f"{console.url}/audience/activations/adults_cohort?saved=1")
    page.get_by_label("Thread count").fill("16")
    page.get_by_label("Cron schedule").fill("")
    page.get_by_role("button", name="Save activation").click()
    page.wait_for_url(f"{console.url}/audience/activations/adults_cohort?saved=1")
    saved_activation = activations.get_activation("adults_cohort", settings=console.settings)
    assert (saved_activation.threads, saved_activation.schedule) == (16, None)
    assert "runs only when someone presses" in page.locator("#next-runs").inner_text()


def test_the_home_lists_activations_a_page_at_a_time_and_finds_them_by_name(
    console_page: Any, console: RunningConsole, braze_sandbox: Any, tmp_path: Path
) -> None:
    settings = console.settings
    load_seed_table(console, tmp_path)
    save_sandbox_auth(console, braze_sandbox, checked=False)
    parents.create_parent("seed", "example_cohort_table", "external_id", settings=settings)
    segments.create_segment(
        "gmail",
        "seed",
        {"column": "email", "op": "like", "value": "%@gmail.com"},
        settings=settings,
    )
    names = [f"gmail_{number:02}" for number in range(60)]
    for name in names:
        fields = {"name": name, "segment": "gmail", "auth": AUTH, "cohort_id": name}
        definition = Activation.model_validate({**fields, "mapping": ["external_id=user_ids"]})
        activations.create_activation(definition, settings=settings)
    page = console_page

    page.goto(f"{console.url}/audience")
    shown = page.locator("h2:text-is('Activations') + .table-wrap tbody td:first-child")
    expect(shown).to_have_text(names[:50])
    stats = page.locator(".audience-stats").inner_text()
    assert re.search(r"60\s+activations", stats) and re.search(r"1\s+segments", stats)
    pages = page.get_by_role("navigation", name="Pages of activations")
    assert "Showing 1 to 50 of 60 activations" in pages.inner_text()
    expect(pages.get_by_role("link", name="Previous page")).to_have_count(0)
    screenshot(page, "console-audience-home-paged")

    pages.get_by_role("link", name="Next page").click()
    expect(shown).to_have_text(names[50:])
    assert "Showing 51 to 60 of 60 activations" in pages.inner_text()
    expect(pages.get_by_role("link", name="Next page")).to_have_count(0)
    # The segments' list stays as it was, with the count of all the segment's activations.
    segment_row = page.locator("h2:text-is('Segments') + .table-wrap tbody tr")
    assert segment_row.locator("td").all_inner_texts()[:3] == ["gmail", "seed", "60"]
    pages.get_by_role("link", name="Previous page").click()
    expect(shown).to_have_text(names[:50])

    page.get_by_label("Find by name").fill("gmail_42")
    page.get_by_role("button", name="Find").click()
    expect(shown).to_have_text(["gmail_42"])
    assert re.search(r"60\s+activations", page.locator(".audience-stats").inner_text())
    screenshot(page, "console-audience-home-found")
    page.get_by_label("Find by name").fill("nothing-like-it")
    page.get_by_role("button", name="Find").click()
    expect(page.get_by_text("No activation has nothing-like-it in its name")).to_be_visible()
