"""Three real processes logging JSON through a whole flow, and no secret in any line.

``cohortsync braze serve`` (a PostgreSQL store whose URL carries a password,
the access log on), ``cohortsync console`` (a password from the
environment) and ``cohortsync scheduler`` (a scheduled activation exported to
the served sandbox with its data import key, a scheduled query delivered
as a custom attribute with its REST API key, and a query whose workspace
never enabled the partner, which fails with a 401 that echoes its key, then
posts to a webhook whose path is its token and whose port refuses) all run
with ``--log-format json``. The console creates an authentication (its key
checked against the service) and refuses one with a wrong key; someone logs
in to the console and to the sandbox's dashboard (by a one-time link).

Then every line each process printed, on stdout and stderr, must parse as a
JSON object, and none may hold any secret of the flow: both data import
keys, the REST API key, the partner key, the webhook's token, the console's
and the dashboard's passwords, their session cookies, the console's CSRF
token, the dashboard's one-time link token, and the store's database
password.
"""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import httpx
import orjson
import pytest

from services import fresh_postgres_database
from support import cli_environment, cohortsync_command, run_cli, unused_port, wait_for

PARTNER_KEY = "pk-" + uuid.uuid4().hex
CONSOLE_PASSWORD = "console-" + uuid.uuid4().hex
DASHBOARD_PASSWORD = "dashboard-" + uuid.uuid4().hex
WEBHOOK_TOKEN = "hook" + uuid.uuid4().hex
DB_PASSWORD = "dbpw" + uuid.uuid4().hex  # PostgreSQL on trust auth: sent, never checked

DEFINITIONS = """\
parents:
  - name: customers
    table: customers
    key: external_id
segments:
  - name: gold
    parent: customers
    rules: {column: tier, op: "=", value: gold}
activations:
  - name: gold_yearly
    segment: gold
    auth: sandbox
    cohort_id: gold
    operation: mirror
    mapping: [external_id=user_ids]
    schedule: "0 0 1 1 *"
authentications:
  - name: not-enabled        # a workspace that never enabled the partner: its runs fail (401)
    endpoint: ${SANDBOX_URL}
    data_import_key: ${OTHER_KEY}
queries:
  - name: refused
    sql: SELECT external_id AS user_ids FROM customers
    export: {auth: not-enabled, cohort_id: refused}
    schedule: "0 0 1 1 *"
  - name: gold_attribute
    sql: SELECT external_id AS user_ids FROM customers WHERE tier = 'gold'
    export: {auth: sandbox-rest, cohort_id: gold-attr}
    schedule: "0 0 1 1 *"
"""


class Process:
    """A long-running command whose stdout and stderr go to files, read when it ends."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], folder: Path) -> None:
        self.name = name
        self.stdout_path = folder / f"{name}.stdout"
        self.stderr_path = folder / f"{name}.stderr"
        self._files: list[IO[str]] = [self.stdout_path.open("w"), self.stderr_path.open("w")]
        self.popen = subprocess.Popen(
            cohortsync_command(*args), env=env, stdout=self._files[0], stderr=self._files[1]
        )

    def json_lines(self, stream: str = "stderr") -> list[dict[str, Any]]:
        """The lines printed so far that parse as JSON objects (the others are skipped)."""
        path = self.stderr_path if stream == "stderr" else self.stdout_path
        parsed = []
        for line in path.read_text().splitlines():
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(entry, dict):
                parsed.append(entry)
        return parsed

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        for file in self._files:
            file.close()

    def lines(self) -> list[tuple[str, str]]:
        """Every line it printed, as (stream, line)."""
        return [
            (stream, line)
            for stream, path in (("stdout", self.stdout_path), ("stderr", self.stderr_path))
            for line in path.read_text().splitlines()
        ]


@pytest.fixture
def store_url() -> Iterator[str]:
    """A fresh PostgreSQL database for the store, its URL carrying a password."""
    with fresh_postgres_database("cohortsync_logs") as url:
        base, name = url.removeprefix("postgresql://").rsplit("/", 1)
        user_host = base.split("@", 1)
        user, host = (
            (user_host[0].split(":")[0], user_host[1]) if len(user_host) == 2 else ("", base)
        )
        yield f"postgresql+psycopg://{user or 'postgres'}:{DB_PASSWORD}@{host}/{name}"


@pytest.fixture
def refusing_port() -> Iterator[int]:
    """A port where every connection is refused, for the whole test."""
    with unused_port() as port:
        yield port


def started_url(process: Process, logger: str) -> str:
    """The ``url`` field of the first JSON line of ``logger`` (where the process serves)."""
    return wait_for(
        lambda: next(
            (e["url"] for e in process.json_lines() if e.get("logger") == logger and "url" in e),
            None,
        ),
        60,
        what=f"{process.name} to log where it serves",
        interval=0.05,
        process=process.popen,
    )


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "the page has no CSRF token"
    return found.group(1)


def test_every_line_is_json_and_no_secret_is_in_any(
    home: Path, tmp_path: Path, store_url: str, refusing_port: int
) -> None:
    def braze(*args: str) -> Any:
        return run_cli("braze", *args, "--db", store_url).json()

    # The sandbox: a workspace (its REST API key), the partner, a data import key, users.
    rest_api_key = braze("workspace", "create", "demo")["rest_api_key"]
    braze("partner", "create", "treasuredata", "--api-key", PARTNER_KEY)
    braze("partner", "enable", "treasuredata", "-w", "demo")
    data_import_key = braze("key", "generate", "-w", "demo")["data_import_key"]
    braze("workspace", "create", "other")
    other_key = braze("key", "generate", "-w", "other")["data_import_key"]
    users = tmp_path / "users.ndjson"
    users.write_text("".join(f'{{"external_id": "c{i}"}}\n' for i in range(1, 21)))
    braze("users", "load", str(users), "-w", "demo")
    link = run_cli(
        "braze", "user", "create", "--email", "ops@example.com", "-w", "demo", "--db", store_url
    ).stdout
    dashboard_token = re.search(r"token=([\w-]+)", link)
    assert dashboard_token, link
    # The warehouse: 20 customers, every other one gold.
    customers = tmp_path / "customers.csv"
    customers.write_text(
        "external_id,tier\n"
        + "".join(f"c{i},{'gold' if i % 2 else 'silver'}\n" for i in range(1, 21))
    )
    run_cli("warehouse", "load", "customers", str(customers))

    logs = tmp_path / "logs"
    logs.mkdir()
    base_env = cli_environment(env={"COHORTSYNC_PARTNER_API_KEY": PARTNER_KEY})
    processes: list[Process] = []
    try:
        serve = Process(
            "serve",
            ["braze", "serve", "--port", "0", "--db", store_url, "--access-log",
             "--log-format", "json"],
            base_env,
            logs,
        )  # fmt: skip
        processes.append(serve)
        sandbox = started_url(serve, "cohortsync")
        console = Process(
            "console",
            ["console", "--port", "0"],
            {
                **base_env,
                "COHORTSYNC_CONSOLE_PASSWORD": CONSOLE_PASSWORD,
                "COHORTSYNC_LOG_FORMAT": "json",  # the variable, not the option
            },
            logs,
        )
        processes.append(console)
        console_url = started_url(console, "cohortsync.console")

        # The console: a wrong password, then the right one; an authentication
        # refused for a wrong key, then one saved with the data import key.
        with httpx.Client(base_url=console_url, timeout=30) as browser:
            refused = browser.post("/login", data={"user": "admin", "password": "wrong-one!"})
            assert refused.status_code == 401
            login = browser.post("/login", data={"user": "admin", "password": CONSOLE_PASSWORD})
            assert login.status_code == 303
            console_cookies = [cookie.value for cookie in browser.cookies.jar]
            assert console_cookies
            csrf = csrf_of(browser.get("/hub/braze/new").text)
            form = {"csrf_token": csrf, "name": "sandbox", "endpoint": sandbox}
            wrong = browser.post("/hub/braze/new", data={**form, "data_import_key": "nope-1234"})
            assert wrong.status_code == 422 and "Invalid client secret" in wrong.text
            saved = browser.post(
                "/hub/braze/new", data={**form, "data_import_key": data_import_key}
            )
            assert saved.status_code == 303, saved.text
            assert browser.get("/runs").status_code == 200

        # The dashboard of the sandbox: its one-time link, a password, a session.
        with httpx.Client(base_url=sandbox, timeout=30) as browser:
            opened = browser.get(f"/dashboard/login/link?token={dashboard_token.group(1)}")
            assert opened.status_code == 303
            page = browser.get(opened.headers["location"]).text
            chosen = browser.post(
                "/dashboard/account/password",
                data={
                    "csrf_token": csrf_of(page),
                    "password": DASHBOARD_PASSWORD,
                    "confirm": DASHBOARD_PASSWORD,
                },
            )
            assert chosen.status_code == 200 and "saved" in chosen.text.lower(), chosen.text
            dashboard_cookies = [cookie.value for cookie in browser.cookies.jar]
            assert dashboard_cookies

        # The REST authentication, the definitions, and their schedules made due now.
        run_cli(
            "auth", "create", "sandbox-rest", "--type", "rest-attribute", "--endpoint", sandbox,
            env={"COHORTSYNC_REST_API_KEY": rest_api_key},
        )  # fmt: skip
        definitions = tmp_path / "cohortsync.yaml"
        definitions.write_text(DEFINITIONS)
        run_cli("apply", str(definitions), env={"SANDBOX_URL": sandbox, "OTHER_KEY": other_key})
        # Once a year, anchored two years back: due now, and not again while the scheduler
        # runs (an every-minute job would run again once the run crosses a minute).
        two_years_ago = (datetime.now(UTC) - timedelta(days=730)).replace(tzinfo=None)
        with sqlite3.connect(home / "catalog.db") as catalog:
            catalog.execute("UPDATE schedules SET anchor = ?", (two_years_ago.isoformat(" "),))

        scheduler = Process(
            "scheduler",
            # A webhook whose path is its credential, on a port that refuses: its failure is logged.
            [
                "scheduler",
                "--poll-interval",
                "0.2",
                "--log-format",
                "json",
                "--webhook",
                f"http://127.0.0.1:{refusing_port}/hooks/{WEBHOOK_TOKEN}",
            ],
            base_env,
            logs,
        )
        processes.append(scheduler)

        def both_finished() -> list[dict[str, Any]] | None:
            finished = scheduler.json_lines("stdout")
            return finished if len(finished) >= 3 else None

        outcomes = wait_for(
            both_finished,
            120,
            what="the scheduler to finish its three jobs",
            interval=0.1,
            process=scheduler.popen,
        )
        assert {(o["job"], o["status"]) for o in outcomes} == {
            ("activation:gold_yearly", "succeeded"),
            ("query:gold_attribute", "succeeded"),
            ("query:refused", "failed"),
        }, outcomes
        refused_job = next(o for o in outcomes if o["job"] == "query:refused")
        assert "Partner not enabled for client with client secret" in refused_job["error"]
        wait_for(
            lambda: any("webhook" in e["message"] for e in scheduler.json_lines()),
            30,
            what="the webhook's failure to be logged",
        )
    finally:
        for process in reversed(processes):
            process.stop()

    members = run_cli("braze", "cohorts", "members", "gold", "-w", "demo", "--db", store_url)
    assert len(orjson.loads(members.stdout)) == 10  # the export reached the sandbox

    secrets = {
        "data import key": data_import_key,
        "data import key of the workspace without the partner": other_key,
        "webhook token": WEBHOOK_TOKEN,
        "REST API key": rest_api_key,
        "partner key": PARTNER_KEY,
        "console password": CONSOLE_PASSWORD,
        "dashboard password": DASHBOARD_PASSWORD,
        "dashboard one-time token": dashboard_token.group(1),
        "database password": DB_PASSWORD,
        "console CSRF token": csrf,
        **{f"console session cookie {i}": v for i, v in enumerate(console_cookies)},
        **{f"dashboard session cookie {i}": v for i, v in enumerate(dashboard_cookies)},
    }
    seen: dict[str, list[dict[str, Any]]] = {}
    for process in processes:
        lines = process.lines()
        assert lines, f"{process.name} printed nothing"
        for stream, line in lines:
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError:
                pytest.fail(f"{process.name} {stream} printed a line that is not JSON: {line!r}")
            assert isinstance(entry, dict), f"{process.name} {stream}: {line!r}"
            if stream == "stderr":
                assert {"time", "level", "logger", "message"} <= entry.keys(), line
                assert entry["time"].endswith("Z"), line
            for what, secret in secrets.items():
                assert secret not in line, f"{process.name} {stream} logged the {what}: {line}"
            seen.setdefault(process.name, []).append(entry)

    # The structured fields are there, not only the words.
    access = [e for e in seen["serve"] if e.get("logger") == "uvicorn.access"]
    assert any(
        e["method"] == "POST" and e["route"] == "/partners/treasuredata/cohorts/users"
        and e["status"] == 200 for e in access
    )  # fmt: skip
    assert any("token=[redacted]" in e["route"] for e in access)
    ends = {e["job"]: e for e in seen["scheduler"] if "duration_s" in e}
    assert set(ends) == {"activation:gold_yearly", "query:gold_attribute", "query:refused"}
    # Each job ran once: one end line each.
    assert len([e for e in seen["scheduler"] if "duration_s" in e]) == len(ends)
    for end in ends.values():
        assert end["run_id"] and end["cohort"]
    assert ends["query:refused"]["status"] == "failed"
    assert ends["query:gold_attribute"]["status"] == "succeeded"
    [webhook] = [e for e in seen["scheduler"] if "webhook" in e.get("message", "")]
    assert (
        webhook["level"] == "WARNING" and f"http://127.0.0.1:{refusing_port} " in webhook["message"]
    )
    assert any(e["status"] == 401 for e in access)  # the console's check of the wrong key
    assert seen["console"][0]["url"] == console_url
    assert "***" in next(e["store"] for e in seen["serve"] if "store" in e)
