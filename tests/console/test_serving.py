"""``cohortsync console`` as a user starts it: the real executable, its login link, its errors."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import httpx

from support import cli_environment, cohortsync_command, run_cli, stderr_lines


def start_console(home: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        cohortsync_command("console", "--port", "0", *extra),
        env={**cli_environment(home), **(env or {})},
        stderr=subprocess.PIPE,
        text=True,
    )


def test_without_a_password_a_one_time_link_is_printed_and_works_once(home: Path) -> None:
    process = start_console(home)
    try:
        lines = stderr_lines(process, 3)
        assert re.fullmatch(
            r"cohortsync console on http://127\.0\.0\.1:\d+ \(Ctrl-C stops\)", lines[0]
        )
        assert "one-time link" in lines[1]
        link = lines[2].strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/login/link\?token=[\w-]{40,}", link)
        with httpx.Client() as client:
            first = client.get(link)
            assert first.status_code == 303
            assert first.headers["location"] == "/account/password"
            base = link.split("/login")[0]
            choose = client.get(base + "/account/password")
            assert choose.status_code == 200 and "Choose a password" in choose.text
        with httpx.Client() as stranger:
            assert stranger.get(link).status_code == 401  # used up
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    assert process.returncode == 0  # Ctrl-C is how a server stops: no error
    assert process.stderr is not None and process.stderr.read().strip() == "console stopped"


def test_the_password_from_the_environment_logs_in(home: Path) -> None:
    process = start_console(home, env={"COHORTSYNC_CONSOLE_PASSWORD": "from the environment"})
    try:
        lines = stderr_lines(process, 2)
        url = lines[0].split(" on ")[1].split(" ")[0]
        assert "COHORTSYNC_CONSOLE_PASSWORD" in lines[1]
        with httpx.Client(base_url=url) as client:
            wrong = client.post("/login", data={"user": "admin", "password": "nope"})
            assert wrong.status_code == 401
            right = client.post(
                "/login", data={"user": "admin", "password": "from the environment"}
            )
            assert right.status_code == 303
            assert client.get("/hub").status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_an_unusable_password_is_one_line_and_nothing_serves(home: Path) -> None:
    result = run_cli(
        "console", "--port", "0", env={"COHORTSYNC_CONSOLE_PASSWORD": "short"}, expect=2
    )
    assert result.stderr.strip().splitlines() == [
        "error: COHORTSYNC_CONSOLE_PASSWORD cannot be used as the console's password: use at "
        "least 8 characters (set COHORTSYNC_CONSOLE_PASSWORD to another password, or unset it "
        "for a login link)"
    ]


def test_a_busy_port_is_one_line(home: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = run_cli("console", "--port", str(port), expect=2)
    assert result.stderr.strip().startswith(f"error: cannot listen on 127.0.0.1:{port}")
    assert "Traceback" not in result.stderr
    assert os.path.exists(home / "catalog.db")
