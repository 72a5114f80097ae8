"""Cohorts: the list with its match counts, lock and unlock, a cohort's members and history.

Cohorts get into the store as they do in production: the partner API,
called over HTTP with the workspace's data import key, after the users
were loaded. Chromium drives what a person does (open the list, a cohort,
lock it); member search, paging and the isolation matrix go over HTTP.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from cohortsync.braze import admin, cohort_views
from cohortsync.braze.keys import key_fingerprint
from support.browser import screenshot

from .cohort_import import change_cohort, send_cohort
from .conftest import Site, form_token

EMAIL = "email"


def load_people(site: Site, count: int = 7) -> None:
    """acme's users ``p1..pN`` (each with an email alias) and one anonymous device."""
    site.acme.load_users(
        [
            {
                "external_id": f"p{n}",
                "aliases": [{"alias_label": EMAIL, "alias_name": f"p{n}@x.io"}],
            }
            for n in range(1, count + 1)
        ]
        + [{"device_ids": ["dev-anon"]}]
    )


def test_the_list_shows_match_counts_and_a_cohort_its_members(
    dashboard_page: Any, site: Site
) -> None:
    page = dashboard_page
    page.goto(site.acme_page("/cohorts"))
    empty = page.locator(".cohorts-empty")
    assert "Cohorts arrive from a partner's exporter" in empty.inner_text()
    assert "data import key" in empty.inner_text()
    screenshot(page, "dashboard-cohorts-empty")
    empty.get_by_role("link", name="Technology Partners").click()
    page.wait_for_url(site.acme_page("/partners"))

    load_people(site)
    send_cohort(
        site.acme,
        "vip",
        "VIP buyers",
        user_ids=["p1", "p2", "p3", "nobody"],
        aliases=[{"alias_label": EMAIL, "alias_name": "p4@x.io"}],
        device_ids=["dev-anon", "dev-unknown"],
    )
    send_cohort(site.acme, "lapsed", "Lapsed 90 days", user_ids=["p5"])
    page.goto(site.acme_page("/cohorts"))
    rows = page.locator("table.cohorts tbody tr")
    assert rows.count() == 2
    vip = rows.filter(has_text="VIP buyers")
    cells = [vip.locator("td").nth(n).inner_text() for n in range(9)]
    assert cells[1] == "Treasure Data"
    assert cells[2] == "5"  # p1, p2, p3, p4 by alias, the anonymous device
    assert cells[4] == "71.4%"  # 5 of 7 identifiers matched
    assert cells[5].startswith("3 of 4") and "1 dropped" in cells[5]
    assert cells[6] == "1 of 1"
    assert cells[7].startswith("1 of 2") and "1 dropped" in cells[7]
    assert cells[8] == "Open"
    screenshot(page, "dashboard-cohorts-list")

    page.get_by_role("button", name="Lock VIP buyers").click()
    page.wait_for_url(site.acme_page("/cohorts"))
    assert rows.filter(has_text="VIP buyers").locator(".badge").inner_text() == "Locked"
    locked = change_cohort(site.acme, "vip", {"user_ids": ["p6"]})
    assert locked.status_code == 423, locked.text
    assert change_cohort(site.acme, "lapsed", {"user_ids": ["p6"]}).status_code == 200

    page.get_by_role("link", name="VIP buyers").click()
    page.wait_for_url(site.acme_page("/cohorts/vip"))
    assert page.get_by_role("heading", name="VIP buyers").is_visible()
    assert "423 Resource locked" in page.inner_text("main")
    members = page.locator("table.members tbody tr")
    assert members.count() == 5
    assert "p4@x.io" in members.nth(3).inner_text()
    assert "anonymous" in members.nth(4).inner_text()
    history = page.locator("table.history tbody tr")
    assert history.count() == 1
    assert key_fingerprint(site.acme.data_import_key) in history.inner_text()
    screenshot(page, "dashboard-cohort-page")

    page.get_by_role("button", name="Unlock VIP buyers").click()
    page.wait_for_url(site.acme_page("/cohorts/vip"))
    assert page.get_by_role("button", name="Lock VIP buyers").is_visible()
    assert change_cohort(site.acme, "vip", {"user_ids": ["p6"]}).status_code == 200

    page.get_by_label("Find by identifier").fill("p")
    page.get_by_label("Match").select_option("prefix")
    page.get_by_role("button", name="Find").click()
    page.wait_for_url(re.compile(r".*/cohorts/vip\?q=p&match=prefix#members$"))
    assert members.count() == 5  # p1, p2, p3, p4, p6 (the device holds no "p...")
    page.get_by_label("Find by identifier").fill("p4@x.io")
    page.get_by_label("Match").select_option("exact")
    page.get_by_role("button", name="Find").click()
    assert members.count() == 1 and "p4" in members.inner_text()
    screenshot(page, "dashboard-cohort-member-search")


def member_ids_on(text: str) -> list[str]:
    return re.findall(r'<td class="mono">(p\d+)</td>', text)


def next_link(text: str, label: str) -> str | None:
    found = re.search(rf'<a class="button" href="([^"]+)">{label}</a>', text)
    return None if found is None else found.group(1).replace("&amp;", "&")


def test_members_and_history_page_by_keyset(client: httpx.Client, site: Site) -> None:
    load_people(site)
    send_cohort(site.acme, "vip", "VIP", user_ids=["p1", "p2", "p3"])
    for person in ("p4", "p5", "p6", "p7"):
        assert change_cohort(site.acme, "vip", {"user_ids": [person]}).status_code == 200
    assert (
        change_cohort(site.acme, "vip", {"user_ids": ["p2"], "should_remove": True}).status_code
        == 200
    )
    path = f"/w/{site.acme.workspace}/cohorts/vip"

    first = client.get(f"{path}?limit=4&history_limit=2")
    assert member_ids_on(first.text) == ["p1", "p3", "p4", "p5"]
    changes = re.findall(r'<td class="num">(\d+)</td><td class="num">(\d+)</td>', first.text)
    assert changes[-2:] == [("0", "1"), ("1", "0")]  # the newest two: remove p2, add p7
    more = next_link(first.text, "Next page of members")
    assert more and "limit=4" in more and "after=" in more
    second = client.get(more.removeprefix("/dashboard").split("#")[0])
    assert member_ids_on(second.text) == ["p6", "p7"]
    assert next_link(second.text, "Next page of members") is None
    assert next_link(second.text, "First page")

    older = next_link(first.text, "Older changes")
    assert older and "before=" in older
    pages_seen = 1
    while older:
        answer = client.get(older.removeprefix("/dashboard").split("#")[0])
        pages_seen += 1
        older = next_link(answer.text, "Older changes")
    history = cohort_views.cohort_history(site.store, "vip", workspace=site.acme.workspace)
    assert pages_seen == 3 and len(history["changes"]) == 6

    prefix = client.get(f"{path}?q=p&match=prefix&limit=2")
    assert member_ids_on(prefix.text) == ["p1", "p3"]
    more = next_link(prefix.text, "Next page of members")
    assert more and "q=p" in more and "match=prefix" in more
    exact = client.get(f"{path}?q=p5@x.io")
    assert member_ids_on(exact.text) == ["p5"]
    assert member_ids_on(client.get(f"{path}?q=p").text) == []  # exact: no id is "p"
    assert "No member holds an identifier" in client.get(f"{path}?q=P1").text
    assert "invalidated since" not in first.text
    site.acme.invalidate_key(site.acme.data_import_key)
    assert "invalidated since" in client.get(path).text
    assert client.get(f"{path}?limit=0").status_code == 400
    assert client.get(f"{path}?after=abc").status_code == 400


def test_globex_cohorts_are_out_of_anas_reach(client: httpx.Client, site: Site) -> None:
    site.globex.load_users([{"external_id": "g1"}])
    send_cohort(site.globex, "rivals", "Globex rivals", user_ids=["g1"])
    acme, globex = site.acme.workspace, site.globex.workspace
    token = form_token(client, f"/w/{acme}/cohorts")
    for path in (f"/w/{globex}/cohorts", f"/w/{globex}/cohorts/rivals"):
        answer = client.get(path)
        assert answer.status_code == 404 and "rivals" not in answer.text, path
    for verb in ("lock", "unlock"):
        for workspace in (globex, acme):
            refused = client.post(
                f"/w/{workspace}/cohorts/rivals/{verb}", data={"csrf_token": token}
            )
            assert refused.status_code == 404, (workspace, verb)
    under_acme = client.get(f"/w/{acme}/cohorts/rivals")
    assert under_acme.status_code == 404 and "unknown cohort &#39;rivals&#39;" in under_acme.text
    assert "Globex rivals" not in client.get(f"/w/{acme}/cohorts").text
    [rivals] = admin.list_cohorts(site.store, workspace=globex)
    assert not rivals["locked"]
    assert change_cohort(site.globex, "rivals", {"user_ids": ["g1"]}).status_code == 200


def test_lock_without_the_csrf_token_changes_nothing(client: httpx.Client, site: Site) -> None:
    load_people(site, 1)
    send_cohort(site.acme, "vip", "VIP", user_ids=["p1"])
    acme = site.acme.workspace
    for data in ({}, {"csrf_token": "forged"}):
        assert client.post(f"/w/{acme}/cohorts/vip/lock", data=data).status_code == 403
    assert not admin.list_cohorts(site.store, workspace=acme)[0]["locked"]
    site.acme.lock("vip")
    assert client.post(f"/w/{acme}/cohorts/vip/unlock").status_code == 403
    assert admin.list_cohorts(site.store, workspace=acme)[0]["locked"]


def test_a_cohort_id_with_slashes_and_query_characters_has_its_page(
    client: httpx.Client, site: Site
) -> None:
    load_people(site, 1)
    odd = "q3 promo/eu?x#1%"
    send_cohort(site.acme, odd, "Odd id", user_ids=["p1"])
    listed = client.get(f"/w/{site.acme.workspace}/cohorts")
    link = re.search(r'<a href="/dashboard(/w/\d+/cohorts/[^"]+)"><strong>Odd id', listed.text)
    assert link and link.group(1).endswith("/q3%20promo/eu%3Fx%231%25")
    page = client.get(link.group(1))
    assert page.status_code == 200 and "p1" in member_ids_on(page.text)
    token = form_token(client, link.group(1))
    locked = client.post(f"{link.group(1)}/lock", data={"csrf_token": token, "back": "page"})
    assert locked.status_code == 200 and str(locked.url).endswith(link.group(1))
    assert admin.list_cohorts(site.store, workspace=site.acme.workspace)[0]["locked"]
