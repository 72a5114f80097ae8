"""Integrations Hub > Catalog in the browser: create, list and delete authentications.

Against the real receiving service: the key is checked there before it is
saved, a refusal shows the server's message and saves nothing, and the key
itself never comes back in any page.
"""

from __future__ import annotations

from typing import Any

from tests.console.conftest import RunningConsole

from cohortsync.catalog.auths import list_auths
from cohortsync.catalog.db import open_catalog
from support.browser import screenshot


def saved_names(console: RunningConsole) -> list[str]:
    catalog = open_catalog(console.settings.catalog_path)
    try:
        return [record.name for record in list_auths(catalog)]
    finally:
        catalog.dispose()


def fill_auth_form(page: Any, name: str, endpoint: str, key: str) -> None:
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("REST endpoint").fill(endpoint)
    page.get_by_label("Data import key").fill(key)
    page.get_by_role("button", name="Check and save").click()


def test_create_list_and_delete_an_authentication(
    console_page: Any, console: RunningConsole, braze_sandbox: Any
) -> None:
    page = console_page
    screenshot(page, "console-hub-catalog")
    page.get_by_role("link", name="Braze Cohorts").click()
    page.get_by_role("link", name="Create Authentication").click()
    screenshot(page, "console-hub-create-authentication")
    fill_auth_form(page, "braze-sandbox", braze_sandbox.base_url, braze_sandbox.data_import_key)
    page.wait_for_url(f"{console.url}/hub/braze?saved=braze-sandbox")
    assert "was checked against its endpoint and saved" in page.get_by_role("status").inner_text()
    row = page.get_by_role("row").filter(has_text="braze-sandbox")
    assert braze_sandbox.base_url in row.inner_text()
    assert braze_sandbox.data_import_key[-4:] in row.inner_text()
    assert braze_sandbox.data_import_key not in page.content()
    screenshot(page, "console-hub-authentications")
    assert saved_names(console) == ["braze-sandbox"]

    page.get_by_role("link", name="Delete braze-sandbox").click()
    screenshot(page, "console-hub-delete-authentication")
    page.get_by_role("button", name="Delete braze-sandbox").click()
    assert "was deleted" in page.get_by_role("status").inner_text()
    assert saved_names(console) == []


def test_a_refused_key_shows_the_servers_message_and_saves_nothing(
    console_page: Any, console: RunningConsole, braze_sandbox: Any
) -> None:
    page = console_page
    page.goto(f"{console.url}/hub/braze/new")
    fill_auth_form(page, "wrong-key", braze_sandbox.base_url, "not-a-data-import-key")
    alert = page.get_by_role("alert").inner_text()
    assert alert.startswith("Not saved:")
    assert "data import key" in alert.lower()
    # What was typed stays, except the key, which is never sent back.
    assert page.get_by_label("Name", exact=True).input_value() == "wrong-key"
    assert page.get_by_label("Data import key").input_value() == ""
    assert "not-a-data-import-key" not in page.content()
    screenshot(page, "console-hub-key-refused")
    assert saved_names(console) == []


def test_each_bad_field_is_named_next_to_it(console_page: Any, console: RunningConsole) -> None:
    page = console_page
    page.goto(f"{console.url}/hub/braze/new")
    fill_auth_form(page, "", "rest.iad-01.braze.com", "")
    assert "not an http(s) URL" in page.locator("#e-endpoint").inner_text()
    assert page.locator("#e-name").inner_text() != ""
    assert page.locator("#e-data_import_key").inner_text() != ""
    assert page.get_by_label("REST endpoint").get_attribute("aria-invalid") == "true"
    screenshot(page, "console-hub-field-errors")
    assert saved_names(console) == []


def test_a_rest_attribute_authentication_asks_for_a_rest_api_key(
    console_page: Any, console: RunningConsole, braze_sandbox: Any
) -> None:
    page = console_page
    page.goto(f"{console.url}/hub/braze/new")
    assert page.get_by_label("Partner name").is_visible()
    page.get_by_label("Destination type").select_option(label="Braze REST (custom attribute)")
    key = page.get_by_label("REST API key")
    key.wait_for()
    assert page.get_by_label("Data import key").count() == 0
    assert page.get_by_label("Partner name").count() == 0
    page.get_by_label("Name", exact=True).fill("braze-rest")
    page.get_by_label("REST endpoint").fill(braze_sandbox.base_url)
    key.fill(braze_sandbox.rest_api_key)
    screenshot(page, "console-hub-create-rest-authentication")
    page.get_by_role("button", name="Check and save").click()
    page.wait_for_url(f"{console.url}/hub/braze?saved=braze-rest")
    row = page.get_by_role("row").filter(has_text="braze-rest")
    assert "rest-attribute" in row.inner_text() and "REST API key" in row.inner_text()
    assert braze_sandbox.rest_api_key not in page.content()
    screenshot(page, "console-hub-rest-authentication-saved")
    assert saved_names(console) == ["braze-rest"]

    page.goto(f"{console.url}/hub/braze/new")
    page.get_by_label("Destination type").select_option("rest-attribute")
    page.get_by_label("REST API key").wait_for()
    fill = page.get_by_label("Name", exact=True).fill
    fill("wrong-rest")
    page.get_by_label("REST endpoint").fill(braze_sandbox.base_url)
    page.get_by_label("REST API key").fill("not-a-rest-api-key")
    page.get_by_role("button", name="Check and save").click()
    alert = page.get_by_role("alert").inner_text()
    assert alert.startswith("Not saved:") and "users.track" in alert
    assert page.get_by_label("REST API key").input_value() == ""  # the type chosen stays
    assert "not-a-rest-api-key" not in page.content()
    assert saved_names(console) == ["braze-rest"]


def test_replace_key_checks_the_new_key_first_and_keeps_the_old_one_when_refused(
    console_page: Any, console: RunningConsole, braze_sandbox: Any
) -> None:
    page = console_page
    page.goto(f"{console.url}/hub/braze/new")
    fill_auth_form(page, "braze-sandbox", braze_sandbox.base_url, braze_sandbox.data_import_key)
    page.wait_for_url(f"{console.url}/hub/braze?saved=braze-sandbox")
    new_key = braze_sandbox.generate_key()  # Braze: a second data import key of the workspace

    page.get_by_role("link", name="Replace the key of braze-sandbox").click()
    screenshot(page, "console-hub-replace-key")
    page.get_by_label("New data import key").fill("not-a-data-import-key")
    page.get_by_role("button", name="Check and replace").click()
    alert = page.get_by_role("alert").inner_text()
    assert alert.startswith("Not changed:") and "The saved key is kept." in alert
    assert "not-a-data-import-key" not in page.content()
    screenshot(page, "console-hub-replace-key-refused")
    [before] = list_auth_records(console)
    assert before.masked_key.endswith(braze_sandbox.data_import_key[-4:])

    page.get_by_label("New data import key").fill(new_key)
    page.get_by_role("button", name="Check and replace").click()
    page.wait_for_url(f"{console.url}/hub/braze?updated=braze-sandbox")
    assert "replaced the old one" in page.get_by_role("status").inner_text()
    row = page.get_by_role("row").filter(has_text="braze-sandbox")
    assert new_key[-4:] in row.inner_text() and new_key not in page.content()
    screenshot(page, "console-hub-key-replaced")
    [after] = list_auth_records(console)
    assert after.masked_key.endswith(new_key[-4:]) and after.created_at == before.created_at


def list_auth_records(console: RunningConsole) -> list[Any]:
    catalog = open_catalog(console.settings.catalog_path)
    try:
        return list_auths(catalog)
    finally:
        catalog.dispose()
