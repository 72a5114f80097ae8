"""Fixtures of the dashboard suite: the real service with its dashboard, users, a browser.

``site`` serves a fresh SQLite store through the real uvicorn server (the
API and the dashboard at ``/dashboard``), with two workspaces:

- ``acme``: the ``treasuredata`` partner ("Treasure Data") enabled, one data
  import key, and the dashboard user ``ana@acme.io``;
- ``globex``: another company's workspace, with its own user
  ``bo@globex.io``; ana must never reach anything of it.

``client`` is an HTTP client logged in as ana (``form_token`` reads the CSRF
token a page carries); ``dashboard_page`` is a browser page logged in as ana.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from cohortsync.braze.dashboard.accounts import create_user
from cohortsync.braze.sandbox import Sandbox, provision
from cohortsync.braze.server import serve_in_background
from cohortsync.braze.store import Store, open_store
from cohortsync.web.throttle import LoginThrottle
from support.browser import fresh_page, running_chromium

PASSWORD = "correct horse battery"
ANA = "ana@acme.io"
BO = "bo@globex.io"


@dataclass
class Site:
    """The running service and what the tests know about its store."""

    url: str
    """The service's base URL, e.g. ``http://127.0.0.1:PORT`` (the partner API's endpoint)."""
    store: Store
    acme: Sandbox
    globex: Sandbox
    password: str = PASSWORD

    def page(self, path: str) -> str:
        """The address of a dashboard page: ``/w/1/cohorts`` → ``URL/dashboard/w/1/cohorts``."""
        return f"{self.url}/dashboard{path}"

    def acme_page(self, rest: str = "") -> str:
        return self.page(f"/w/{self.acme.workspace}{rest}")

    def globex_page(self, rest: str = "") -> str:
        return self.page(f"/w/{self.globex.workspace}{rest}")


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """A fresh store with acme and globex, served with its dashboard.

    Three failed logins are free, then each attempt waits 60 s or more.
    """
    db_url = f"sqlite:///{tmp_path / 'braze.db'}"
    store = open_store(db_url)
    try:
        acme = provision(store, workspace_name="acme")
        globex = provision(store, workspace_name="globex")
        create_user(store, ANA, workspaces=["acme"], password=PASSWORD)
        create_user(store, BO, workspaces=["globex"], password=PASSWORD)
        throttle = LoginThrottle(free_failures=3, base_delay=60)
        with serve_in_background(db_url, login_throttle=throttle) as url:
            acme.base_url = globex.base_url = url
            yield Site(url=url, store=store, acme=acme, globex=globex)
    finally:
        store.close()


@contextmanager
def log_in_client(
    site: Site, email: str = ANA, password: str | None = None
) -> Iterator[httpx.Client]:
    """An HTTP client with a dashboard session of ``email`` (password: the site's)."""
    with httpx.Client(
        base_url=f"{site.url}/dashboard", follow_redirects=True, timeout=30
    ) as client:
        secret = site.password if password is None else password
        answer = client.post("/login", data={"user": email, "password": secret, "next": "/"})
        assert answer.status_code == 200 and "/login" not in str(answer.url), answer.text[:300]
        yield client


@pytest.fixture
def client(site: Site) -> Iterator[httpx.Client]:
    """An HTTP client logged in as ana (acme only)."""
    with log_in_client(site) as logged_in:
        yield logged_in


CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def form_token(client: httpx.Client, path: str) -> str:
    """The CSRF token the page at ``path`` carries in its forms (or its htmx header)."""
    page = client.get(path)
    assert page.status_code == 200, page.text[:300]
    found = CSRF_FIELD.search(page.text) or re.search(r'"X-CSRF-Token": "([^"]+)"', page.text)
    assert found, f"no CSRF token in {path}"
    return found.group(1)


@pytest.fixture(scope="package")
def chromium() -> Iterator[Any]:
    """Chromium for the whole dashboard suite (see :mod:`support.browser`)."""
    with running_chromium() as browser:
        yield browser


@pytest.fixture
def browser_page(chromium: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser context and page: no cookie of another test."""
    with fresh_page(chromium, request.node) as page:
        yield page


def log_in(page: Any, site: Site, email: str = ANA) -> None:
    """Log in through the login form, as a person does; lands in acme's home."""
    page.goto(site.page("/login"))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(site.password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r".*/dashboard/w/\d+$"))


@pytest.fixture
def dashboard_page(browser_page: Any, site: Site) -> Any:
    """A browser page logged in as ana, on acme's home."""
    log_in(browser_page, site)
    return browser_page
