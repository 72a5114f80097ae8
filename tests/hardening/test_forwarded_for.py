"""A client cannot choose its own address with ``X-Forwarded-For``.

uvicorn, by default, believes ``X-Forwarded-For`` from any client on
127.0.0.1, so any local process could claim another source: a key's
source allowlist and the login throttle, which count by address, would read
the forged one, and so would the access log. Both servers take the TCP peer
only. Checked on the real ``cohortsync braze serve`` and ``cohortsync
console`` processes.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import httpx
import orjson

from support import cli_environment, cohortsync_command, run_cli, served_url_on_stderr, wait_for

FORGED = "203.0.113.9"


def test_serve_takes_the_tcp_peer_not_the_forwarded_header(home: Path, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'braze.db'}"

    def braze(*args: str) -> dict[str, str]:
        return run_cli("braze", *args, "--db", db).json()

    braze("workspace", "create", "demo")
    braze("partner", "create", "treasuredata", "--api-key", "pk-forwarded")
    braze("partner", "enable", "treasuredata", "-w", "demo")
    # A key that only the forged address may send.
    key = braze("key", "generate", "-w", "demo", "--allow", f"{FORGED}/32")["data_import_key"]
    log = tmp_path / "serve.log"
    with log.open("w") as stdout:
        process = subprocess.Popen(
            cohortsync_command("braze", "serve", "--port", "0", "--db", db, "--access-log"),
            env=cli_environment(),
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            url, _ = served_url_on_stderr(process)
            body = {
                "partner_api_key": "pk-forwarded",
                "client_secret": key,
                "cohort_id": "vip",
                "cohort_changes": [],
            }
            answer = httpx.post(
                f"{url}/partners/treasuredata/cohorts/users",
                json=body,
                headers={"X-Forwarded-For": FORGED},
            )
            assert answer.status_code == 401
            assert answer.json() == {"message": "Invalid client secret"}
            wait_for(lambda: "POST /partners" in log.read_text(), what="the access line")
        finally:
            process.send_signal(signal.SIGTERM)
            process.communicate(timeout=30)
    [line] = [text for text in log.read_text().splitlines() if "POST /partners" in text]
    assert "127.0.0.1:" in line and FORGED not in line


def test_the_console_throttles_by_the_tcp_peer(home: Path) -> None:
    process = subprocess.Popen(
        cohortsync_command("console", "--port", "0", "--log-format", "json"),
        env=cli_environment(env={"COHORTSYNC_CONSOLE_PASSWORD": "the right one"}),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        url = orjson.loads(process.stderr.readline())["url"]
        statuses = []
        with httpx.Client(base_url=url) as client:
            for attempt in range(7):
                # A fresh address claimed on every attempt, and another user each time
                # for the account count not to matter: only the peer address is counted.
                answer = client.post(
                    "/login",
                    data={"user": f"nobody{attempt}", "password": "wrong password"},
                    headers={"X-Forwarded-For": f"198.51.100.{attempt + 1}"},
                )
                statuses.append(answer.status_code)
        assert statuses[:5] == [401] * 5
        assert 429 in statuses[5:]  # the sixth failure from one peer waits
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
