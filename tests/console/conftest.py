"""Fixtures of the console suite: the real console in a thread, a logged-in browser page.

The console is served by uvicorn on 127.0.0.1 over the test's own home, with
the password from ``COHORTSYNC_CONSOLE_PASSWORD``; pages are driven by the
shared Chromium (``browser_page`` in the top conftest).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cohortsync.console.serving import serve_in_background
from cohortsync.settings import Settings
from cohortsync.web.guard import OneTimeLinks
from cohortsync.web.throttle import LoginThrottle

PASSWORD = "correct horse battery"


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


@pytest.fixture
def console_page(browser_page: Any, console: RunningConsole) -> Any:
    """A browser page logged in to ``console``."""
    log_in(browser_page, console)
    return browser_page
