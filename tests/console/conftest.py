"""Fixtures of the console suite: the real console in a thread, a logged-in browser page.

The console is served by uvicorn on 127.0.0.1 over the test's own home, with
the password from ``COHORTSYNC_CONSOLE_PASSWORD``; pages are driven by the
suite's Chromium (``browser_page`` below).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cohortsync.catalog.auths import save_auth
from cohortsync.catalog.db import open_catalog
from cohortsync.console.serving import serve_in_background
from cohortsync.definitions import Authentication
from cohortsync.demo import write_seed_table
from cohortsync.export.credentials import create_checked_auth
from cohortsync.settings import Settings
from cohortsync.web.guard import OneTimeLinks
from cohortsync.web.throttle import LoginThrottle
from support import run_cli
from support.browser import fresh_page, running_chromium

PASSWORD = "correct horse battery"
SANDBOX_AUTH = "braze-sandbox"


@dataclass
class RunningConsole:
    url: str
    home: Path
    settings: Settings
    links: OneTimeLinks
    password: str = PASSWORD
    user: str = "admin"


@pytest.fixture
def console(
    home: Path, monkeypatch: pytest.MonkeyPatch, braze_sandbox: Any
) -> Iterator[RunningConsole]:
    """The console over a fresh home, beside a receiving service whose partner key it has.

    Three failed logins are free, then each attempt waits 60 s or more.
    """
    monkeypatch.setenv("COHORTSYNC_CONSOLE_PASSWORD", PASSWORD)
    monkeypatch.setenv("COHORTSYNC_PARTNER_API_KEY", braze_sandbox.partner_api_key)
    settings = Settings()
    links = OneTimeLinks()
    throttle = LoginThrottle(free_failures=3, base_delay=60)
    with serve_in_background(settings, links=links, throttle=throttle) as url:
        yield RunningConsole(url=url, home=home, settings=settings, links=links)


def log_in(page: Any, console: RunningConsole) -> None:
    """Log in through the login form, as a person does."""
    page.goto(f"{console.url}/login")
    page.get_by_label("User name").fill(console.user)
    page.get_by_label("Password").fill(console.password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{console.url}/hub")


@pytest.fixture(scope="package")
def chromium() -> Iterator[Any]:
    """Chromium for the whole console suite (see :mod:`support.browser` for why not longer)."""
    with running_chromium() as browser:
        yield browser


@pytest.fixture
def browser_page(chromium: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser context and page: no cookie of another test."""
    with fresh_page(chromium, request.node) as page:
        yield page


@pytest.fixture
def console_page(browser_page: Any, console: RunningConsole) -> Any:
    """A browser page logged in to ``console``."""
    log_in(browser_page, console)
    return browser_page


def load_seed_table(console: RunningConsole, tmp_path: Path) -> None:
    """The seed's example_cohort_table in the console's warehouse, loaded as a user loads it."""
    csv = tmp_path / "example_cohort_table.csv"
    write_seed_table(csv)
    run_cli("warehouse", "load", "example_cohort_table", str(csv), home=console.home)


def save_sandbox_auth(console: RunningConsole, sandbox: Any, *, checked: bool = True) -> None:
    """The authentication ``braze-sandbox`` for ``sandbox``, saved through the library.

    ``checked`` saves it as the hub's form does, once the endpoint accepted
    the key; in a thread of its own, because the check runs an event loop and
    the browser's driver already runs one in the test's thread. Unchecked, it
    is saved straight into the catalog (a sandbox that refuses on purpose).
    """
    auth = Authentication(
        name=SANDBOX_AUTH, endpoint=sandbox.base_url, data_import_key=sandbox.data_import_key
    )
    if checked:
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(create_checked_auth, auth, console.settings).result()
        return
    catalog = open_catalog(console.settings.catalog_path)
    try:
        save_auth(catalog, console.settings, auth)
    finally:
        catalog.dispose()
