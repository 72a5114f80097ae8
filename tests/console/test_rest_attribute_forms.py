"""The query editor's attribute fields in the browser, against the real receiving service.

*Attribute mode* and *Attribute name* are shown for a ``rest-attribute``
authentication only, decided by the server from the authentication chosen;
a query saved with them runs through ``POST /users/track`` and the profiles
carry the attribute, read back with ``POST /users/export/ids``. An attribute
name Braze reads as a profile field is refused at its field, when saved.
"""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path
from typing import Any

from playwright.sync_api import expect
from tests.console.conftest import RunningConsole, save_sandbox_auth

from cohortsync import queries
from cohortsync.audience import activations, parents, segments
from cohortsync.jobs.run_history import list_run_views
from support import run_cli, wait_for
from support.browser import screenshot

USERS = ["u1", "u2", "u3"]
SQL = "SELECT * FROM (VALUES ('u1'), ('u3')) AS t(user_ids)"


def create_rest_auth(page: Any, console: RunningConsole, sandbox: Any) -> None:
    """The authentication ``braze-rest``, through the Integrations Hub as a person saves one."""
    page.goto(f"{console.url}/hub/braze/new")
    page.get_by_label("Destination type").select_option(label="Braze REST (custom attribute)")
    page.get_by_label("REST API key").wait_for()
    page.get_by_label("Name", exact=True).fill("braze-rest")
    page.get_by_label("REST endpoint").fill(sandbox.base_url)
    page.get_by_label("REST API key").fill(sandbox.rest_api_key)
    page.get_by_role("button", name="Check and save").click()
    page.wait_for_url(f"{console.url}/hub/braze?saved=braze-rest")


def custom_attribute(sandbox: Any, attribute: str) -> dict[str, Any]:
    """Each known user's ``attribute``, as the service's ``/users/export/ids`` exports it."""
    body = json.dumps(
        {"external_ids": USERS, "fields_to_export": ["external_id", "custom_attributes"]}
    )
    request = urllib.request.Request(
        f"{sandbox.base_url}/users/export/ids",
        data=body.encode(),
        headers={
            "Authorization": f"Bearer {sandbox.rest_api_key}",
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        users = json.load(answer)["users"]
    return {
        user["external_id"]: user["custom_attributes"][attribute]
        for user in users
        if attribute in user.get("custom_attributes", {})
    }


def test_a_boolean_attribute_query_saved_and_run_from_the_console(
    console_page: Any, console: RunningConsole, braze_sandbox: Any
) -> None:
    page = console_page
    braze_sandbox.load_users([{"external_id": uid} for uid in USERS])
    save_sandbox_auth(console, braze_sandbox)  # a partner-cohort authentication beside it
    create_rest_auth(page, console, braze_sandbox)

    page.goto(f"{console.url}/queries/new")
    page.get_by_label("SQL", exact=True).fill(SQL)
    mode = page.get_by_label("Attribute mode")
    assert mode.count() == 0  # no authentication chosen: no attribute fields
    page.get_by_label("Authentication").select_option("braze-rest")
    mode.wait_for()
    page.get_by_label("Cohort ID").fill("vip")
    mode.select_option("boolean")
    name = page.get_by_label("Attribute name")
    # The mode's change re-renders the fields: the default name follows the mode.
    page.locator("#f-attribute[placeholder='cohort_vip']").wait_for()
    assert "empty: cohort_vip" in page.locator("#attribute-fields").inner_text()
    screenshot(page, "console-rest-attribute-query-boolean")

    page.get_by_label("Authentication").select_option("braze-sandbox")
    expect(mode).to_have_count(0)
    assert name.count() == 0
    screenshot(page, "console-rest-attribute-query-partner-auth")
    page.get_by_label("Authentication").select_option("braze-rest")
    mode.wait_for()
    mode.select_option("boolean")
    page.locator("#f-attribute[placeholder='cohort_vip']").wait_for()

    page.get_by_label("Query name").fill("vip_flag")
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_url(f"{console.url}/queries/vip_flag?saved=created")
    [saved] = queries.list_queries(settings=console.settings)
    assert saved.export is not None
    assert (saved.export.attribute_mode, saved.export.attribute) == ("boolean", None)
    # Reopened, the saved values are in their fields.
    page.goto(f"{console.url}/queries/vip_flag")
    assert page.get_by_label("Attribute mode").input_value() == "boolean"
    assert page.get_by_label("Attribute name").input_value() == ""
    screenshot(page, "console-rest-attribute-query-saved")

    page.get_by_role("button", name="Run now").click()
    page.wait_for_url(re.compile(r"/runs/"))
    wait_for(
        lambda: (
            [v["status"] for v in list_run_views(console.settings, job="query:vip_flag")]
            == ["succeeded"]
        ),
        timeout=30,
        what="the run of vip_flag to succeed",
    )
    assert custom_attribute(braze_sandbox, "cohort_vip") == {"u1": True, "u3": True}
    assert braze_sandbox.rest_api_key not in page.content()

    # A named attribute survives an edit, a save and a reopen.
    page.goto(f"{console.url}/queries/vip_flag")
    page.get_by_label("Attribute name").fill("is_vip")
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_url(re.compile(r"/queries/vip_flag\?saved="))
    page.goto(f"{console.url}/queries/vip_flag")
    assert page.get_by_label("Attribute name").input_value() == "is_vip"
    assert page.get_by_label("Attribute mode").input_value() == "boolean"
    [saved] = queries.list_queries(settings=console.settings)
    assert saved.export is not None and saved.export.attribute == "is_vip"


def test_an_attribute_braze_reads_as_a_profile_field_is_refused_at_its_field(
    console_page: Any, console: RunningConsole, braze_sandbox: Any
) -> None:
    page = console_page
    create_rest_auth(page, console, braze_sandbox)
    page.goto(f"{console.url}/queries/new")
    page.get_by_label("SQL", exact=True).fill(SQL)
    page.get_by_label("Authentication").select_option("braze-rest")
    page.get_by_label("Attribute name").wait_for()
    page.get_by_label("Cohort ID").fill("vip")
    page.get_by_label("Attribute name").fill("email")
    page.get_by_label("Query name").fill("vip_email")
    page.get_by_role("button", name="Save", exact=True).click()
    error = page.locator("#e-attribute")
    error.wait_for()
    assert error.inner_text() == (
        "'email' is not a custom attribute name: Braze reads it as a profile field or an "
        "identifier (give a custom attribute name, e.g. cohorts or cohort_vip)"
    )
    assert page.get_by_label("Attribute name").get_attribute("aria-invalid") == "true"
    assert page.get_by_label("Attribute name").input_value() == "email"
    screenshot(page, "console-rest-attribute-query-refused")
    assert queries.list_queries(settings=console.settings) == []


def test_an_activation_with_a_named_attribute_saved_reopened_and_run(
    console_page: Any, console: RunningConsole, braze_sandbox: Any, tmp_path: Path
) -> None:
    page = console_page
    braze_sandbox.load_users([{"external_id": uid} for uid in USERS])
    csv = tmp_path / "customers.csv"
    csv.write_text("external_id,age\nu1,17\nu2,34\nu3,52\n")
    run_cli("warehouse", "load", "customers", str(csv), home=console.home)
    parents.create_parent("customers", "customers", "external_id", settings=console.settings)
    rules = {"column": "age", "op": ">=", "value": 18}
    segments.create_segment("adults", "customers", rules, settings=console.settings)
    create_rest_auth(page, console, braze_sandbox)

    page.goto(f"{console.url}/audience/segments/adults/activations/new")
    assert page.get_by_label("Attribute name").count() == 0
    page.get_by_label("Activation name").fill("adults_flag")
    page.get_by_label("Authentication").select_option("braze-rest")
    page.get_by_label("Attribute name").wait_for()
    page.get_by_label("Cohort ID").fill("adults")
    page.get_by_label("Attribute mode").select_option("boolean")
    page.locator("#f-attribute[placeholder='cohort_adults']").wait_for()
    page.get_by_label("Attribute name").fill("first_name")
    page.get_by_label("Mapping 1 Attribute column").select_option("external_id")
    page.get_by_role("button", name="Create activation").click()
    assert (
        "'first_name' is not a custom attribute name" in page.locator("#e-attribute").inner_text()
    )
    assert activations.list_activations(settings=console.settings) == []
    page.get_by_label("Attribute name").fill("is_adult")
    screenshot(page, "console-rest-attribute-activation-new")
    page.get_by_role("button", name="Create activation").click()
    page.wait_for_url(f"{console.url}/audience/activations/adults_flag?saved=1")
    assert page.get_by_label("Attribute mode").input_value() == "boolean"
    assert page.get_by_label("Attribute name").input_value() == "is_adult"
    screenshot(page, "console-rest-attribute-activation-saved")
    saved = activations.get_activation("adults_flag", settings=console.settings)
    assert (saved.attribute_mode, saved.attribute) == ("boolean", "is_adult")

    page.get_by_role("button", name="Run now").click()
    page.wait_for_url(re.compile(r"/runs/"))
    wait_for(
        lambda: (
            [v["status"] for v in list_run_views(console.settings, job="activation:adults_flag")]
            == ["succeeded"]
        ),
        timeout=30,
        what="the run of adults_flag to succeed",
    )
    assert custom_attribute(braze_sandbox, "is_adult") == {"u2": True, "u3": True}
