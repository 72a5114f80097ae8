"""Who gets in: login, sessions, CSRF, throttling, one-time links, logout.

Driven through real Chromium against the real console, except where a
browser cannot do what is tested (a POST without its CSRF token, a cookie
forged by hand): those use plain HTTP against the same server.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from tests.console.conftest import RunningConsole, log_in

from cohortsync.console.app import create_app
from support.browser import screenshot

pytestmark = pytest.mark.usefixtures("console")


def get_pages(routes: list[Any], prefix: str = "") -> list[str]:
    """The paths of every GET route, through the routers included in one another."""
    paths = []
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            paths += get_pages(included.routes, prefix + route.include_context.prefix)
        elif "GET" in (getattr(route, "methods", None) or ()):
            paths.append(prefix + route.path)
    return paths


def test_login_page_and_a_wrong_password(browser_page: Any, console: RunningConsole) -> None:
    browser_page.goto(console.url)
    assert browser_page.url.startswith(f"{console.url}/login")
    screenshot(browser_page, "console-login")
    browser_page.get_by_label("User name").fill("admin")
    browser_page.get_by_label("Password").fill("not the password")
    browser_page.get_by_role("button", name="Log in").click()
    assert browser_page.get_by_role("alert").inner_text() == "Wrong user name or password."
    screenshot(browser_page, "console-login-wrong-password")


def test_login_goes_back_to_the_page_asked_for(browser_page: Any, console: RunningConsole) -> None:
    browser_page.goto(f"{console.url}/hub/braze")
    assert "next=/hub/braze" in browser_page.url
    browser_page.get_by_label("User name").fill(console.user)
    browser_page.get_by_label("Password").fill(console.password)
    browser_page.get_by_role("button", name="Log in").click()
    browser_page.wait_for_url(f"{console.url}/hub/braze")
    assert browser_page.get_by_role("heading", name="Braze Cohorts").is_visible()


def test_wrong_passwords_are_throttled(browser_page: Any, console: RunningConsole) -> None:
    for _ in range(4):
        browser_page.goto(f"{console.url}/login")
        browser_page.get_by_label("User name").fill("admin")
        browser_page.get_by_label("Password").fill("guess")
        browser_page.get_by_role("button", name="Log in").click()
    alert = browser_page.get_by_role("alert").inner_text()
    assert alert.startswith("Too many failed logins. Try again in")
    screenshot(browser_page, "console-login-throttled")
    # Even the right password waits now.
    browser_page.get_by_label("User name").fill("admin")
    browser_page.get_by_label("Password").fill(console.password)
    browser_page.get_by_role("button", name="Log in").click()
    assert browser_page.get_by_role("alert").inner_text().startswith("Too many failed logins")
    answer = httpx.post(
        f"{console.url}/login", data={"user": "admin", "password": console.password}
    )
    assert answer.status_code == 429
    assert int(answer.headers["Retry-After"]) > 0


def test_logout_ends_the_session(browser_page: Any, console: RunningConsole) -> None:
    log_in(browser_page, console)
    browser_page.get_by_role("button", name="Log out").click()
    browser_page.wait_for_url(f"{console.url}/login")
    browser_page.goto(f"{console.url}/hub")
    assert browser_page.url.startswith(f"{console.url}/login")


def test_a_form_without_its_csrf_token_is_refused(
    browser_page: Any, console: RunningConsole
) -> None:
    log_in(browser_page, console)
    cookies = {c["name"]: c["value"] for c in browser_page.context.cookies()}
    with httpx.Client(base_url=console.url, cookies=cookies) as client:
        form = {"name": "x", "endpoint": "http://127.0.0.1:9", "data_import_key": "k"}
        refused = client.post("/hub/braze/new", data=form)
        assert refused.status_code == 403
        assert "This form was refused" in refused.text
        forged = client.post("/hub/braze/new", data={**form, "csrf_token": "forged"})
        assert forged.status_code == 403
    assert "Nothing was saved" in refused.text


def test_a_forged_cookie_is_no_session(console: RunningConsole) -> None:
    answer = httpx.get(
        f"{console.url}/hub", cookies={"cohortsync_console": "eyJ1IjoiYWRtaW4ifQ.forged.sig"}
    )
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/login")


def test_the_session_cookie_is_httponly_and_lax(browser_page: Any, console: RunningConsole) -> None:
    log_in(browser_page, console)
    (cookie,) = [c for c in browser_page.context.cookies() if c["name"] == "cohortsync_console"]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"


def test_every_page_sends_a_visitor_without_session_to_login(console: RunningConsole) -> None:
    app = create_app(console.settings)
    pages = [path for path in get_pages(app.routes) if not path.startswith("/login")]
    assert "/hub" in pages and "/account/password" in pages
    with httpx.Client(base_url=console.url) as client:
        for path in pages:
            concrete = path.replace("{name}", "sample").replace("{run_id}", "20261201T0-abcd")
            answer = client.get(concrete)
            assert answer.status_code == 303, concrete
            assert answer.headers["location"].startswith("/login"), concrete
            htmx = client.get(concrete, headers={"HX-Request": "true"})
            assert htmx.headers["HX-Redirect"].startswith("/login"), concrete


def test_a_one_time_link_logs_in_once_then_asks_for_a_password(
    browser_page: Any, console: RunningConsole
) -> None:
    token = console.links.issue("admin")
    browser_page.goto(f"{console.url}/login/link?token={token}")
    browser_page.wait_for_url(f"{console.url}/hub")  # a password is set: straight in
    browser_page.context.clear_cookies()
    browser_page.goto(f"{console.url}/login/link?token={token}")
    assert browser_page.get_by_role("heading", name="This login link no longer works").is_visible()
    screenshot(browser_page, "console-login-link-used")


def test_changing_the_password(browser_page: Any, console: RunningConsole) -> None:
    log_in(browser_page, console)
    browser_page.get_by_role("link", name="Password").click()
    browser_page.get_by_label("Current password").fill(console.password)
    browser_page.get_by_label("New password", exact=True).fill("short")
    browser_page.get_by_label("New password again").fill("short")
    browser_page.get_by_role("button", name="Save password").click()
    assert "at least 8 characters" in browser_page.locator("#e-password").inner_text()
    screenshot(browser_page, "console-password-refused")
    browser_page.get_by_label("Current password").fill(console.password)
    browser_page.get_by_label("New password", exact=True).fill("a much longer secret")
    browser_page.get_by_label("New password again").fill("a much longer secret")
    browser_page.get_by_role("button", name="Save password").click()
    assert browser_page.get_by_role("status").is_visible()
    browser_page.goto(f"{console.url}/hub")  # this session goes on
    assert browser_page.url == f"{console.url}/hub"
