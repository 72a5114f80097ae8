"""Every page a member can reach by following links: it opens, and it shows no secret.

The crawl starts at the dashboard's home and follows each link of the
dashboard (GET only, never a form), the way a curious person clicks
through every screen. The workspace is filled first, so the pages show
something: users, a cohort sent with the data import key, a segment on it,
a campaign launched to it, and a key generated on the partner page.

What it checks on each page:
- it answers 200 (no broken link, no error page reached by a link);
- no data import key, REST API key or partner API key appears in it: the
  only page that ever shows a key is the answer to *Generate new key*;
- it links to nothing of another workspace.
"""

from __future__ import annotations

import re
from collections import deque
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import httpx

from braze.support import PartnerClient, email
from cohortsync.braze import admin
from cohortsync.braze.campaigns import create_campaign, launch_campaign
from cohortsync.braze.dashboard.app import MOUNT_PATH

from .conftest import Site, form_token

MAX_PAGES = 400


class _Links(HTMLParser):
    """The ``href`` of every ``<a>`` of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.hrefs.append(href)


def links_of(page_url: str, html: str) -> list[str]:
    parser = _Links()
    parser.feed(html)
    return [urljoin(page_url, href).split("#")[0] for href in parser.hrefs]


def crawl(client: httpx.Client, site: Site) -> dict[str, httpx.Response]:
    """Every dashboard page reachable by links from the home, by path and query."""
    origin = urlsplit(site.url)
    queue: deque[str] = deque([site.page("/")])
    seen: dict[str, httpx.Response] = {}
    while queue and len(seen) < MAX_PAGES:
        address = queue.popleft()
        if address in seen:
            continue
        parts = urlsplit(address)
        if parts.netloc != origin.netloc or not parts.path.startswith(MOUNT_PATH):
            continue
        if parts.path.startswith(f"{MOUNT_PATH}/static") or parts.path.endswith("/logout"):
            continue
        answer = client.get(address, follow_redirects=True)
        seen[address] = answer
        if answer.headers.get("content-type", "").startswith("text/html"):
            queue.extend(
                link for link in links_of(str(answer.url), answer.text) if link not in seen
            )
    assert len(seen) < MAX_PAGES, "the crawl did not end: a page links to endless pages"
    return seen


def fill_acme(site: Site) -> None:
    """Users, a cohort sent through the partner API, a segment on it, a launched campaign."""
    acme = site.acme
    acme.load_users(
        [
            {"external_id": f"user-{n}", "aliases": [email(f"u{n}@acme.io")]}
            for n in range(1, 6)
        ]
        + [{"device_ids": ["d-ev1ce"]}]
    )  # fmt: skip
    partner = PartnerClient(acme)
    assert partner.define("vip", "VIP customers").status_code == 200
    partner.add("vip", user_ids=["user-1", "user-2", "user-3", "nobody"], device_ids=["d-ev1ce"])
    partner.remove("vip", user_ids=["user-3"])
    admin.create_segment(site.store, "VIP", workspace=acme.workspace, includes_cohorts=["vip"])
    create_campaign(
        site.store, "Welcome VIPs", workspace=acme.workspace, channel="email",
        message="Hello {{${user_id}}}", segments=["VIP"],
    )  # fmt: skip
    launch_campaign(site.store, "Welcome VIPs", workspace=acme.workspace)


def secrets_of(site: Site) -> dict[str, str]:
    return {
        "acme data import key": site.acme.data_import_key,
        "acme REST API key": site.acme.rest_api_key,
        "partner API key": site.acme.partner_api_key,
        "globex data import key": site.globex.data_import_key,
        "globex REST API key": site.globex.rest_api_key,
    }


def generate_key_on_the_partner_page(site: Site, client: httpx.Client) -> str:
    """*Generate new key* on the Treasure Data page; the key its answer shows once."""
    partner_page = f"/w/{site.acme.workspace}/partners/treasuredata"
    answer = client.post(
        f"{partner_page}/keys", data={"csrf_token": form_token(client, partner_page)}
    )
    assert answer.status_code == 200, answer.text[:300]
    shown = re.search(r'id="new-key">([0-9a-f-]{36})<', answer.text)
    assert shown, "the answer to Generate new key shows no key"
    return shown.group(1)


def test_every_linked_page_opens_and_shows_no_key(site: Site, client: httpx.Client) -> None:
    fill_acme(site)
    new_key = generate_key_on_the_partner_page(site, client)
    pages = crawl(client, site)
    paths = {urlsplit(address).path.removeprefix(MOUNT_PATH) for address in pages}
    acme = f"/w/{site.acme.workspace}"
    # The crawl reached every area of the sidebar, and the pages of the things in them.
    for area in ("", "/partners", "/cohorts", "/segments", "/campaigns", "/canvases", "/users"):
        assert acme + area in paths, f"no link led to {acme + area}"
    for thing in ("/partners/", "/cohorts/", "/segments/", "/campaigns/", "/users/"):
        assert any(path.startswith(acme + thing) and path != acme + thing for path in paths), (
            f"no link led to a page under {acme + thing}"
        )
    broken = {
        address: answer.status_code
        for address, answer in pages.items()
        if answer.status_code != 200
    }
    assert not broken, f"links that do not open: {broken}"
    for address, answer in pages.items():
        for what, secret in {**secrets_of(site), "generated key": new_key}.items():
            assert secret not in answer.text, f"{address} shows the {what}"
        foreign = re.findall(rf'href="[^"]*/w/{site.globex.workspace}(?:/|")', answer.text)
        assert not foreign, f"{address} links to globex's workspace"
