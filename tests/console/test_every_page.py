"""Every page of a console in use: each link opens, and no page shows a data import key.

A home with an authentication, a saved query and an activation that both ran
(real exports to the receiving service), then every page reachable from the
Integrations Hub is fetched the way the browser would: the links (``href``)
and the fragments the pages load (``hx-get``), with the session's cookie.
"""

from __future__ import annotations

import re
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
from tests.console.conftest import (
    SANDBOX_AUTH,
    RunningConsole,
    load_seed_table,
    save_sandbox_auth,
)

from cohortsync import queries
from cohortsync.audience import activations, parents, segments
from cohortsync.definitions import Activation, QueryExport

LINK = re.compile(r"""(?:href|hx-get)="([^"]+)\"""")
MAX_PAGES = 400


def make_a_home_in_use(console: RunningConsole, braze_sandbox: Any, tmp_path: Path) -> None:
    settings = console.settings
    load_seed_table(console, tmp_path)
    save_sandbox_auth(console, braze_sandbox)
    export = QueryExport(auth=SANDBOX_AUTH, cohort_id="everyone", operation="mirror")
    queries.save_query(
        "everyone",
        "SELECT external_id AS user_ids FROM example_cohort_table",
        export=export,
        schedule="0 6 * * *",
        settings=settings,
    )
    queries.run_query("everyone", settings=settings)
    parents.create_parent("seed", "example_cohort_table", "external_id", settings=settings)
    segments.create_segment(
        "gmail", "seed", {"column": "email", "op": "like", "value": "%@gmail.com"},
        settings=settings,
    )  # fmt: skip
    activation = Activation(
        name="gmail_users",
        segment="gmail",
        mapping=[{"attribute": "external_id", "output": "user_ids"}],
        auth=SANDBOX_AUTH,
        cohort_id="gmail",
    )
    activations.create_activation(activation, settings=settings)
    activations.run_activation("gmail_users", settings=settings)


def test_every_page_opens_and_none_shows_the_key(
    console: RunningConsole, braze_sandbox: Any, tmp_path: Path
) -> None:
    # In a thread of its own: exports run an event loop, and once a browser test has run,
    # the browser's driver runs one in this thread.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(make_a_home_in_use, console, braze_sandbox, tmp_path).result()
    key = braze_sandbox.data_import_key
    seen: dict[str, int] = {}
    with httpx.Client(base_url=console.url) as client:
        login = client.post("/login", data={"user": console.user, "password": console.password})
        assert login.status_code == 303
        queue = deque(["/hub"])
        while queue and len(seen) < MAX_PAGES:
            path = queue.popleft()
            if path in seen:
                continue
            answer = client.get(path)
            seen[path] = answer.status_code
            assert key not in answer.text, f"{path} shows the data import key"
            for found in LINK.findall(answer.text):
                target = urlsplit(urljoin(path, unescape(found)))
                if target.netloc or not target.path.startswith("/"):
                    continue  # another site
                if target.path.startswith(("/static/", "/logout")):
                    continue
                queue.append(target.path + (f"?{target.query}" if target.query else ""))
    broken = {path: status for path, status in seen.items() if status != 200}
    assert broken == {}
    visited = set(seen)
    for page in ("/hub/braze", "/queries", "/queries/everyone", "/audience", "/runs"):
        assert page in visited, page
    assert any(path.startswith("/runs/2") for path in visited)  # a run's page
    assert any(path.startswith("/runs/charts?job=query:everyone") for path in visited)
    assert len(visited) >= 20, sorted(visited)
