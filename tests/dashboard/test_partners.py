"""Technology Partners: enabling a partner, its REST endpoint, and its data import keys.

The key's life is driven through Chromium as a person does it (generate,
copy, invalidate after a confirmation), and checked against the real partner
API: a key the page invalidated is refused at once. What a browser cannot
do (another workspace's address typed by hand, a POST without its CSRF
token) goes over plain HTTP.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from cohortsync.braze import admin
from cohortsync.braze.keys import key_fingerprint
from support.browser import screenshot

from .cohort_import import define_cohort
from .conftest import Site, form_token

SEGMENT = "segmentio"


def add_partner_not_enabled(site: Site) -> None:
    """A second partner, known to the store but enabled in no workspace."""
    admin.create_partner(site.store, SEGMENT, api_key="segment-partner-key", display_name="Segment")


def keys_of(site: Site, workspace: int, partner: str = "treasuredata") -> list[dict[str, Any]]:
    return admin.list_keys(site.store, workspace=workspace, partner=partner)


def test_a_key_is_generated_shown_once_and_invalidated(dashboard_page: Any, site: Site) -> None:
    page = dashboard_page
    add_partner_not_enabled(site)
    page.get_by_role("link", name="Technology Partners").first.click()
    page.wait_for_url(site.acme_page("/partners"))
    rows = page.locator("table.partners tbody tr")
    assert rows.count() == 2
    assert "Treasure Data" in rows.nth(1).inner_text() and "Enabled" in rows.nth(1).inner_text()
    assert "Not enabled" in rows.nth(0).inner_text()
    screenshot(page, "dashboard-partners-list")

    page.get_by_role("button", name="Enable Segment").click()
    page.wait_for_url(re.compile(r".*/partners/segmentio\?enabled=1$"))
    assert "Segment is enabled" in page.get_by_role("status").inner_text()
    assert page.get_by_role("button", name="Generate new key").is_visible()
    screenshot(page, "dashboard-partner-enabled")
    assert admin.workspace_partner(site.store, SEGMENT, workspace=site.acme.workspace)["enabled"]

    page.goto(site.acme_page("/partners/treasuredata"))
    assert page.locator("#rest-endpoint").inner_text() == site.url
    assert "Treasure Data Cohorts" in page.inner_text("main")
    first = key_fingerprint(site.acme.data_import_key)
    assert page.locator("table.keys tbody tr").count() == 1
    assert first in page.locator("table.keys").inner_text()
    assert site.acme.data_import_key not in page.content()
    screenshot(page, "dashboard-partner-page")

    page.get_by_role("button", name="Generate new key").click()
    new_key = page.locator("#new-key").inner_text()
    assert re.fullmatch(r"[0-9a-f-]{36}", new_key), new_key
    assert "/keys" in page.url and new_key not in page.url
    assert "Copy it now: it will not be shown again." in page.inner_text("main")
    assert page.locator("table.keys tbody tr").count() == 2
    screenshot(page, "dashboard-partner-new-key")
    assert define_cohort(site.acme, "made-with-new-key", key=new_key).status_code in (200, 201)

    fingerprint = key_fingerprint(new_key)
    page.goto(site.acme_page("/partners/treasuredata"))
    assert new_key not in page.content()
    page.get_by_role("link", name=f"Invalidate key {fingerprint}").click()
    assert page.get_by_role("heading", name=f"Invalidate key {fingerprint}?").is_visible()
    assert "401 Invalid client secret" in page.inner_text("main")
    assert new_key not in page.content()
    screenshot(page, "dashboard-partner-invalidate-confirm")
    page.get_by_role("button", name=f"Invalidate key {fingerprint}").click()
    page.wait_for_url(re.compile(rf".*/partners/treasuredata\?invalidated={fingerprint}$"))
    assert f"Key {fingerprint} is invalidated" in page.get_by_role("status").inner_text()
    [row] = [r for r in keys_of(site, site.acme.workspace) if r["fingerprint"] == fingerprint]
    assert not row["active"]
    screenshot(page, "dashboard-partner-key-invalidated")

    refused = define_cohort(site.acme, "after-invalidation", key=new_key)
    assert refused.status_code == 401, refused.text
    assert refused.json()["message"] == "Invalid client secret"  # the words the page warned of
    assert define_cohort(site.acme, "old-key-still-works").status_code in (200, 201)


def test_the_new_key_appears_on_no_page_after_its_answer(client: httpx.Client, site: Site) -> None:
    partner = f"/w/{site.acme.workspace}/partners/treasuredata"
    answer = client.post(f"{partner}/keys", data={"csrf_token": form_token(client, partner)})
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"
    new_key = re.search(r'<code class="key-value" id="new-key">([^<]+)</code>', answer.text)
    assert new_key, answer.text[:500]
    key = new_key.group(1)
    assert str(answer.url).endswith(f"{partner}/keys") and key not in str(answer.url)
    fingerprint = key_fingerprint(key)
    define_cohort(site.acme, "vip", key=key)
    pages = [
        f"/w/{site.acme.workspace}",
        f"/w/{site.acme.workspace}/partners",
        partner,
        f"{partner}/keys/{fingerprint}/invalidate",
        f"/w/{site.acme.workspace}/cohorts",
        f"/w/{site.acme.workspace}/cohorts/vip",
    ]
    for path in pages:
        shown = client.get(path)
        assert shown.status_code == 200, path
        assert key not in shown.text, path
    assert fingerprint in client.get(partner).text


def test_a_partner_not_enabled_gets_no_key(client: httpx.Client, site: Site) -> None:
    add_partner_not_enabled(site)
    partner = f"/w/{site.acme.workspace}/partners/{SEGMENT}"
    page = client.get(partner)
    assert "Not enabled" in page.text and "Enable Segment" in page.text
    token = form_token(client, partner)
    refused = client.post(f"{partner}/keys", data={"csrf_token": token})
    assert refused.status_code == 400
    assert "Enable Segment first" in refused.text
    assert 'id="new-key"' not in refused.text
    assert keys_of(site, site.acme.workspace, SEGMENT) == []


def test_unknown_partner_and_key_are_404(client: httpx.Client, site: Site) -> None:
    partners = f"/w/{site.acme.workspace}/partners"
    token = form_token(client, partners)
    assert client.get(f"{partners}/nobody").status_code == 404
    assert client.post(f"{partners}/nobody/keys", data={"csrf_token": token}).status_code == 404
    assert client.post(f"{partners}/nobody/enable", data={"csrf_token": token}).status_code == 404
    missing = client.get(f"{partners}/treasuredata/keys/0123456789ab/invalidate")
    assert missing.status_code == 404 and "unknown data import key" in missing.text


def test_globex_partners_and_keys_are_out_of_anas_reach(client: httpx.Client, site: Site) -> None:
    acme, globex = site.acme.workspace, site.globex.workspace
    add_partner_not_enabled(site)
    token = form_token(client, f"/w/{acme}/partners")
    theirs = key_fingerprint(site.globex.data_import_key)
    for path in (
        f"/w/{globex}/partners",
        f"/w/{globex}/partners/treasuredata",
        f"/w/{globex}/partners/treasuredata/keys/{theirs}/invalidate",
    ):
        answer = client.get(path)
        assert answer.status_code == 404, path
        assert "globex" not in answer.text
    for path in (
        f"/w/{globex}/partners/{SEGMENT}/enable",
        f"/w/{globex}/partners/treasuredata/keys",
        f"/w/{globex}/partners/treasuredata/keys/{theirs}/invalidate",
    ):
        assert client.post(path, data={"csrf_token": token}).status_code == 404, path
    # globex's key fingerprint under acme's own path: unknown here.
    under_acme = f"/w/{acme}/partners/treasuredata/keys/{theirs}/invalidate"
    assert client.get(under_acme).status_code == 404
    assert client.post(under_acme, data={"csrf_token": token}).status_code == 404
    assert [k["active"] for k in keys_of(site, globex)] == [True]
    assert not admin.workspace_partner(site.store, SEGMENT, workspace=globex)["enabled"]
    assert define_cohort(site.globex, "still-works").status_code in (200, 201)


def test_posts_without_the_csrf_token_change_nothing(client: httpx.Client, site: Site) -> None:
    add_partner_not_enabled(site)
    acme = site.acme.workspace
    partner = f"/w/{acme}/partners/treasuredata"
    fingerprint = key_fingerprint(site.acme.data_import_key)
    for path in (
        f"/w/{acme}/partners/{SEGMENT}/enable",
        f"{partner}/keys",
        f"{partner}/keys/{fingerprint}/invalidate",
    ):
        for data in ({}, {"csrf_token": "forged"}):
            refused = client.post(path, data=data)
            assert refused.status_code == 403, path
            assert "key-value" not in refused.text
    assert not admin.workspace_partner(site.store, SEGMENT, workspace=acme)["enabled"]
    assert [(k["fingerprint"], k["active"]) for k in keys_of(site, acme)] == [(fingerprint, True)]


def test_the_keys_screen_shows_each_keys_allowed_sources(dashboard_page: Any, site: Site) -> None:
    page = dashboard_page
    restricted = admin.generate_key(
        site.store, workspace=site.acme.workspace, allow=["10.0.0.0/8", "2001:db8::/32"]
    )["data_import_key"]
    page.goto(site.acme_page("/partners/treasuredata"))
    header = page.locator("table.keys thead").inner_text()
    assert "ALLOWED SOURCES" in header.upper()
    rows = {
        row.locator("td").first.inner_text(): row
        for row in page.locator("table.keys tbody tr").all()
    }
    sources = rows[key_fingerprint(restricted)].locator("td.sources")
    assert sources.locator("code").all_inner_texts() == ["10.0.0.0/8", "2001:db8::/32"]
    assert rows[key_fingerprint(site.acme.data_import_key)].locator("td.sources").inner_text() == (
        "Any"
    )
    assert restricted not in page.content()
    screenshot(page, "dashboard-partner-key-sources")
