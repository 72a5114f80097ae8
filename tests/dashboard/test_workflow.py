"""The workflow from start to end, as the people who run it do it: a browser and the CLI.

In Braze's dashboard a marketer generates the data import key on the
Technology Partners page; a data engineer saves it with ``cohortsync auth
create`` and exports ``example_cohort_table`` (the seed example of the spec)
to a cohort; the marketer builds a segment with the *Treasure Data Cohorts*
filter, targets it with a campaign and launches it. The outbox then holds
exactly the cohort's matched users, each message rendered from the profile.
Invalidating the key on the partner page makes the exporter's next run fail
with the 401 message.

The browser is Chromium through Playwright; the exporter is the real
``cohortsync`` executable; the service is the real server over SQLite.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import duckdb
import pytest
import requests

from cohortsync.braze.keys import key_fingerprint
from support import run_cli
from support.browser import screenshot

from .conftest import Site

# The seed example (spec section 1): external id, email alias, device id of four users.
EXAMPLE = [
    ("TDCohort1", "TDCohort1@gmail.com", "1a2b3c", "Ada"),
    ("TDCohort2", "TDCohort2@gmail.com", "4d5f6g", "Bo"),
    ("TDCohort3", "TDCohort3@gmail.com", "7h8j9k", "Cy"),
    ("TDCohort4", "TDCohort4@gmail.com", "1ab2cd", "Dee"),
]
MESSAGE = "Hi {{${first_name}}}, your VIP offer is ready."


@pytest.fixture
def home(tmp_path: Path, site: Site) -> Path:
    """The data engineer's cohortsync home: its DuckDB warehouse holds example_cohort_table.

    The Braze side knows the four users (and a stranger no query selects), each
    with a first name set through ``/users/track``.
    """
    home = tmp_path / "home"
    home.mkdir()
    rows = ", ".join(f"('{uid}', '{email}', '{device}')" for uid, email, device, _ in EXAMPLE)
    with duckdb.connect(str(home / "warehouse.duckdb")) as warehouse:
        warehouse.execute(
            f"CREATE TABLE example_cohort_table AS SELECT * FROM (VALUES {rows}) "
            "t(external_id, email, device_ids)"
        )
    site.acme.load_users(
        [
            {"external_id": uid, "aliases": [{"alias_label": "email", "alias_name": email}]}
            for uid, email, _, _ in EXAMPLE
        ]
        + [{"external_id": "stranger"}]
    )
    answer = requests.post(
        f"{site.url}/users/track",
        json={
            "attributes": [{"external_id": uid, "first_name": first} for uid, *_, first in EXAMPLE]
        },
        headers={"Authorization": f"Bearer {site.acme.rest_api_key}"},
        timeout=30,
    )
    assert answer.status_code in (200, 201), answer.text
    return home


def cohortsync(
    site: Site, home: Path, *args: str, stdin: str | None = None, expect: int | None = 0
):
    """The exporter's command line, with the partner API key the sandbox's partner has."""
    return run_cli(
        *args,
        home=home,
        env={"COHORTSYNC_PARTNER_API_KEY": site.acme.partner_api_key},
        stdin=stdin,
        expect=expect,
    )


EXPORT = (
    "export", "--auth", "braze-sandbox", "--cohort-id", "example_cohort",
    "--cohort-name", "Example cohort",
    "--query", "SELECT external_id AS user_ids FROM example_cohort_table",
)  # fmt: skip


def test_key_to_cohort_to_segment_to_campaign_outbox(
    dashboard_page: Any, site: Site, home: Path
) -> None:
    from playwright.sync_api import expect

    page = dashboard_page
    # 1. Partner Integrations > Technology Partners > Treasure Data: a new data import key.
    page.get_by_role("link", name="Technology Partners").first.click()
    page.get_by_role("link", name="Treasure Data", exact=True).first.click()
    page.wait_for_url(site.acme_page("/partners/treasuredata"))
    assert site.url in page.inner_text("main")  # the REST endpoint is this service
    page.get_by_role("button", name="Generate new key").click()
    key = page.locator("#new-key").inner_text().strip()
    assert re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", key), key
    screenshot(page, "dashboard-workflow-new-key")

    # 2. The exporter saves it as an authentication and exports the example table.
    saved = cohortsync(
        site, home, "auth", "create", "braze-sandbox", "--endpoint", site.url,
        "--data-import-key", "-", "--json", stdin=key + "\n",
    )  # fmt: skip
    assert json.loads(saved.stdout)["data_import_key"] == "****" + key[-4:]
    exported = cohortsync(site, home, *EXPORT, "--json")
    assert json.loads(exported.stdout)["sent"] == {"user_ids": 4}

    # The cohort is in the dashboard, with its history naming the new key.
    page.get_by_role("link", name="Cohorts", exact=True).first.click()
    page.get_by_role("link", name="Example cohort").click()
    history = page.locator("main").inner_text()
    assert key_fingerprint(key) in history and key not in history

    # 3. Segments: the Treasure Data Cohorts filter, the cohort chosen by name.
    page.get_by_role("link", name="Segments", exact=True).first.click()
    page.get_by_role("link", name="Create segment").first.click()
    assert page.get_by_label("Filter 1: Filter").locator("option:checked").inner_text() == (
        "Treasure Data Cohorts"
    )
    page.get_by_label("Filter 1: Cohort").select_option(label="Example cohort")
    expect(page.locator("#reachable-users")).to_have_text("4")
    page.get_by_label("Segment name").fill("Example cohort users")
    page.get_by_role("button", name="Save segment").click()
    page.wait_for_url(re.compile(r".*/segments/[0-9a-f-]{36}\?saved=1$"))

    # 4. A campaign targeting the segment, launched now.
    page.get_by_role("link", name="Campaigns", exact=True).first.click()
    page.get_by_role("link", name="Create campaign").first.click()
    page.get_by_label("Campaign name").fill("VIP offer")
    page.get_by_label("Channel").select_option("email")
    page.get_by_label("Message").fill(MESSAGE)
    page.get_by_label(re.compile("^Example cohort users")).first.check()
    expect(page.locator("#reachable-count")).to_have_text("4")
    page.get_by_role("button", name="Save campaign").click()
    page.wait_for_url(re.compile(r".*/campaigns/[0-9a-f-]{36}$"))
    page.get_by_role("link", name="Launch now").click()
    page.get_by_role("button", name="Launch now").click()
    page.wait_for_url(re.compile(r".*\?launched=\d+$"))
    assert "Launched: 4 messages written to the outbox." in page.inner_text("main")
    outbox = page.locator("#outbox").inner_text()
    for uid, _, _, first in EXAMPLE:
        assert uid in outbox and f"Hi {first}, your VIP offer is ready." in outbox
    assert "stranger" not in outbox
    screenshot(page, "dashboard-workflow-outbox")

    # The outbox holds exactly the cohort's matched users, each message rendered.
    sends = run_cli(
        "braze", "campaign", "sends", "VIP offer", "--workspace", "acme", "--json",
        "--db", site.acme.db_url, home=home,
    )  # fmt: skip
    messages = {send["external_id"]: send["message"] for send in json.loads(sends.stdout)["sends"]}
    assert messages == {
        uid: f"Hi {first}, your VIP offer is ready." for uid, _, _, first in EXAMPLE
    }

    # 5. Invalidate the key: the exporter's next run is refused with the 401 message.
    page.goto(site.acme_page("/partners/treasuredata"))
    page.get_by_role("link", name=f"Invalidate key {key_fingerprint(key)}").click()
    page.get_by_role("button", name=f"Invalidate key {key_fingerprint(key)}").click()
    page.wait_for_url(re.compile(r".*/partners/treasuredata.*"))
    refused = cohortsync(site, home, *EXPORT, expect=None)
    assert refused.returncode == 4, refused.stderr
    assert "HTTP 401 Invalid client secret" in refused.stderr
    assert "check the data import key (Braze: Partner Integrations > Technology Partners)" in (
        refused.stderr
    )
    assert key not in refused.stderr and "Traceback" not in refused.stderr
