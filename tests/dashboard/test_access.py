"""Who gets into the dashboard, and what each user reaches.

Driven through real Chromium against the real service where a person acts
(logging in, a one-time link, switching workspace), and over plain HTTP
where a browser cannot do what is tested (a POST without its CSRF token,
another workspace's address typed by hand).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from cohortsync.braze.dashboard.accounts import create_user
from support import run_cli, wait_for
from support.browser import screenshot

from .conftest import ANA, BO, Site, form_token, log_in, log_in_client


def test_login_lands_in_the_users_only_workspace(browser_page: Any, site: Site) -> None:
    browser_page.goto(site.page("/"))
    assert "/dashboard/login" in browser_page.url
    screenshot(browser_page, "dashboard-login")
    browser_page.get_by_label("Email").fill(ANA)
    browser_page.get_by_label("Password").fill("not the password")
    browser_page.get_by_role("button", name="Log in").click()
    assert browser_page.get_by_role("alert").inner_text() == "Wrong email or password."
    log_in(browser_page, site)
    assert browser_page.url == site.acme_page()
    assert browser_page.get_by_role("heading", name="acme", exact=True).is_visible()
    assert browser_page.get_by_role("link", name="Technology Partners").first.is_visible()
    assert "1 enabled · 1 active data import keys" in browser_page.inner_text("main")
    screenshot(browser_page, "dashboard-home")


def test_a_user_of_two_workspaces_chooses_and_switches(browser_page: Any, site: Site) -> None:
    create_user(site.store, "cy@acme.io", workspaces=["acme", "globex"], password=site.password)
    log_in_page = site.page("/login")
    browser_page.goto(log_in_page)
    browser_page.get_by_label("Email").fill("cy@acme.io")
    browser_page.get_by_label("Password").fill(site.password)
    browser_page.get_by_role("button", name="Log in").click()
    browser_page.wait_for_url(site.page("/"))
    assert browser_page.get_by_role("heading", name="Choose a workspace").is_visible()
    screenshot(browser_page, "dashboard-choose-workspace")
    browser_page.get_by_role("link", name="globex").click()
    browser_page.wait_for_url(site.globex_page())
    browser_page.get_by_label("Switch workspace").click()
    screenshot(browser_page, "dashboard-workspace-switcher")
    browser_page.get_by_role("link", name="acme", exact=True).click()
    browser_page.wait_for_url(site.acme_page())
    assert browser_page.get_by_role("heading", name="acme", exact=True).is_visible()


def test_the_printed_one_time_link_sets_the_password(
    browser_page: Any, site: Site, tmp_path: Path
) -> None:
    created = run_cli(
        "braze", "user", "create", "--email", "Dee@Acme.io", "--workspace", "acme",
        "--url", site.url, "--db", site.acme.db_url, home=tmp_path,
    )  # fmt: skip
    link = re.search(r"(http://\S+/dashboard/login/link\?token=\S+)", created.stdout)
    assert link, created.stdout
    assert "dee@acme.io: workspaces acme" in created.stdout
    browser_page.goto(link.group(1))
    browser_page.wait_for_url(site.page("/account/password"))
    screenshot(browser_page, "dashboard-choose-password")
    browser_page.get_by_label("New password", exact=True).fill("a fresh passphrase")
    browser_page.get_by_label("New password again").fill("a fresh passphrase")
    browser_page.get_by_role("button", name="Save password").click()
    assert browser_page.get_by_role("status").is_visible()
    # The link worked once.
    browser_page.goto(link.group(1))
    assert browser_page.get_by_role("heading", name="This login link no longer works").is_visible()
    with httpx.Client(base_url=site.page(""), follow_redirects=True) as http:
        answer = http.post(
            "/login", data={"user": "dee@acme.io", "password": "a fresh passphrase", "next": "/"}
        )
        assert str(answer.url) == site.acme_page()
    listed = run_cli("braze", "user", "list", "--json", "--db", site.acme.db_url, home=tmp_path)
    assert {"email": "dee@acme.io", "workspaces": ["acme"], "has_password": True} in (
        json.loads(listed.stdout)
    )


def test_password_stdin_sets_it_and_mistakes_are_one_line(site: Site, tmp_path: Path) -> None:
    db = ("--db", site.acme.db_url)
    made = run_cli(
        "braze", "user", "create", "--email", "eve@acme.io", "-w", "acme", "--password-stdin",
        "--json", *db, home=tmp_path, stdin="long enough secret\n",
    )  # fmt: skip
    assert '"has_password": true' in made.stdout and "login_link" not in made.stdout
    with log_in_client(site, "eve@acme.io", "long enough secret") as http:
        assert http.get(f"/w/{site.acme.workspace}").status_code == 200
    cases = {
        ("--email", "not-an-email", "-w", "acme"): "'not-an-email' is not an email address",
        ("--email", "f@acme.io", "-w", "nowhere"): "no workspace 'nowhere' in this store",
    }
    for args, message in cases.items():
        failed = run_cli("braze", "user", "create", *args, *db, home=tmp_path, expect=2)
        assert failed.stderr.strip().startswith(f"error: {message}")
        assert "Traceback" not in failed.stderr
    short = run_cli(
        "braze", "user", "create", "--email", "g@acme.io", "-w", "acme", "--password-stdin",
        *db, home=tmp_path, stdin="short\n", expect=2,
    )  # fmt: skip
    assert "this password cannot be used" in short.stderr
    listed = run_cli("braze", "user", "list", *db, home=tmp_path).stdout
    assert "g@acme.io" not in listed and "f@acme.io" not in listed  # nothing half-made


def test_end_sessions_logs_every_user_out_of_a_running_service(site: Site, tmp_path: Path) -> None:
    """A running service drops the sessions within seconds; logging in again works."""
    page = f"/w/{site.acme.workspace}"
    with log_in_client(site) as ana, log_in_client(site, BO) as bo:
        assert ana.get(page).status_code == 200
        ended = run_cli(
            "braze", "user", "end-sessions", "--db", site.acme.db_url, "--json", home=tmp_path
        )
        assert json.loads(ended.stdout)["sessions_ended"] is True

        def logged_out(client: httpx.Client, path: str) -> bool:
            return "/login" in str(client.get(path).url)

        wait_for(lambda: logged_out(ana, page), 10, what="ana's session to end")
        assert logged_out(bo, f"/w/{site.globex.workspace}")
    with log_in_client(site) as again:
        assert again.get(page).status_code == 200


def test_another_workspace_is_refused_like_one_that_does_not_exist(
    client: httpx.Client, site: Site
) -> None:
    mine = client.get(f"/w/{site.acme.workspace}")
    assert mine.status_code == 200
    for workspace_id in (site.globex.workspace, 9999):
        refused = client.get(f"/w/{workspace_id}")
        assert refused.status_code == 404
        assert f"unknown workspace {workspace_id}" in refused.text
        assert "globex" not in refused.text
    with log_in_client(site, BO) as bo:
        assert bo.get(f"/w/{site.globex.workspace}").status_code == 200
        assert bo.get(f"/w/{site.acme.workspace}").status_code == 404


def test_every_workspace_page_refuses_a_user_of_another_workspace(site: Site) -> None:
    """Each GET route under /w/{id} answers 404 to a non-member (the routes of every area)."""
    from cohortsync.braze.dashboard.routes import ROUTERS

    paths = sorted(
        {
            route.path
            for router in ROUTERS
            for route in router.routes
            if route.path.startswith("/w/{workspace_id}") and "GET" in route.methods
        }
    )
    assert "/w/{workspace_id}" in paths
    with log_in_client(site, BO) as bo:
        for path in paths:
            filled = re.sub(r"\{[a-z_]+\}", "1", path).replace("/w/1", f"/w/{site.acme.workspace}")
            answer = bo.get(filled)
            assert answer.status_code == 404, (path, answer.status_code)


def test_a_form_without_its_csrf_token_is_refused(client: httpx.Client, site: Site) -> None:
    home = f"/w/{site.acme.workspace}"
    refused = client.post("/logout")
    assert refused.status_code == 403
    assert "This form was refused" in refused.text
    assert client.get(home).status_code == 200  # still logged in
    wrong = client.post("/logout", data={"csrf_token": "forged"})
    assert wrong.status_code == 403
    token = form_token(client, home)
    out = client.post("/logout", data={"csrf_token": token})
    assert out.status_code == 200 and "/login" in str(out.url)
    assert "/login" in str(client.get(home).url)


def test_wrong_passwords_are_throttled(site: Site) -> None:
    with httpx.Client(base_url=site.page("")) as http:
        statuses = [
            http.post("/login", data={"user": ANA, "password": "guess", "next": "/"}).status_code
            for _ in range(4)
        ]
        assert statuses == [401, 401, 401, 429]
        # Even the right password waits now.
        held = http.post("/login", data={"user": ANA, "password": site.password, "next": "/"})
        assert held.status_code == 429 and int(held.headers["Retry-After"]) >= 59


@pytest.mark.parametrize("path", ["/", "/w/1", "/account/password"])
def test_pages_need_a_login(site: Site, path: str) -> None:
    with httpx.Client(base_url=site.page("")) as http:
        answer = http.get(path)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/dashboard/login")
