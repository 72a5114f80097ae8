"""The Alerts fields of the query editor and the activation form, in the browser.

They build the same :class:`cohortsync.definitions.Alerts` as the command
line: a bad value is refused next to its field in the definition's words,
saved alerts show again in the fields, and what the browser saves is what
``query show --json`` and ``activation show --json`` print.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.console.conftest import (
    SANDBOX_AUTH,
    RunningConsole,
    load_seed_table,
    save_sandbox_auth,
)

from cohortsync import queries
from cohortsync.audience import activations
from support import run_cli
from support.browser import screenshot

SEED_SQL = "SELECT external_id AS user_ids FROM example_cohort_table"
HOOK = "https://hooks.example.com/services/T0/B0/secret"


def test_the_query_editor_saves_alerts(
    console_page: Any, console: RunningConsole, braze_sandbox: Any, tmp_path: Path
) -> None:
    page = console_page
    save_sandbox_auth(console, braze_sandbox)
    load_seed_table(console, tmp_path)
    page.goto(f"{console.url}/queries/new")
    page.get_by_label("SQL", exact=True).fill(SEED_SQL)
    page.get_by_label("Authentication").select_option(SANDBOX_AUTH)
    page.get_by_label("Cohort ID").fill("seed")
    page.get_by_label("Query name").fill("seed")
    assert page.get_by_label("Alert when a run fails").is_checked()
    page.get_by_label("Webhook URL").fill(HOOK)
    page.get_by_label("Format").select_option("slack")
    page.get_by_label("Size change above (%)").fill("150")
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_load_state()
    assert (
        "alert size change 150 is above 100"
        in page.locator("#e-alert_size_change_pct").inner_text().lower()
    )
    assert page.get_by_label("Webhook URL").input_value() == HOOK  # what was typed stays
    screenshot(page, "console-alerts-query-refused")
    assert queries.list_queries(settings=console.settings) == []

    page.get_by_label("Size change above (%)").fill("20")
    page.get_by_label("Removals above").fill("2")
    page.get_by_label("Hold a run whose plan crosses").check()
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_url(f"{console.url}/queries/seed?saved=created")
    screenshot(page, "console-alerts-query-saved")
    shown = json.loads(run_cli("query", "show", "seed", "--json", home=console.home).stdout)
    assert shown["alerts"] == {
        "webhook": HOOK, "format": "slack", "on_failure": True, "size_change_pct": 20.0,
        "removals": 2, "duration_s": None, "refused_pct": None, "hold": True,
    }  # fmt: skip
    # shown again in the fields; saved as it is, it is unchanged
    assert page.get_by_label("Removals above").input_value() == "2"
    assert page.get_by_label("Hold a run whose plan crosses").is_checked()
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_url(f"{console.url}/queries/seed?saved=unchanged")
    # emptied, the alerts are removed
    page.get_by_label("Webhook URL").fill("")
    page.get_by_label("Size change above (%)").fill("")
    page.get_by_label("Removals above").fill("")
    page.get_by_label("Hold a run whose plan crosses").uncheck()
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_url(f"{console.url}/queries/seed?saved=updated")
    assert queries.get_query("seed", settings=console.settings).alerts is None


def test_the_activation_form_keeps_and_changes_alerts(
    console_page: Any, console: RunningConsole, braze_sandbox: Any, tmp_path: Path
) -> None:
    page = console_page
    save_sandbox_auth(console, braze_sandbox)
    load_seed_table(console, tmp_path)
    for step in (
        ("audience", "parent", "create", "seed", "--table", "example_cohort_table",
         "--key", "external_id"),
        ("segment", "create", "all", "--parent", "seed", "--rules",
         '{"column": "external_id", "op": "!=", "value": ""}'),
        ("activation", "create", "seed", "--segment", "all", "--auth", SANDBOX_AUTH,
         "--cohort-id", "seed", "--map", "external_id=user_ids", "--alert-webhook", HOOK,
         "--alert-duration", "600", "--no-alert-on-failure"),
    ):  # fmt: skip
        run_cli(*step, home=console.home)
    page.goto(f"{console.url}/audience/activations/seed")
    assert page.get_by_label("Webhook URL").input_value() == HOOK
    assert page.get_by_label("Duration above (s)").input_value() == "600"
    assert not page.get_by_label("Alert when a run fails").is_checked()
    page.get_by_label("Webhook URL").scroll_into_view_if_needed()
    screenshot(page, "console-alerts-activation")

    page.get_by_label("Hold a run whose plan crosses").check()
    page.get_by_role("button", name="Save activation").click()
    page.wait_for_load_state()
    assert "needs a size change or removals threshold" in page.locator("#e-alert_hold").inner_text()
    page.get_by_label("Refused above (%)").fill("5")
    page.get_by_label("Removals above").fill("10")
    page.get_by_role("button", name="Save activation").click()
    page.wait_for_url(f"{console.url}/audience/activations/seed?saved=1")
    alerts = activations.get_activation("seed", settings=console.settings).alerts
    assert alerts is not None
    assert (alerts.duration_s, alerts.refused_pct, alerts.removals, alerts.hold) == (
        600.0, 5.0, 10, True,
    )  # fmt: skip
    assert alerts.on_failure is False and alerts.format == "json"
