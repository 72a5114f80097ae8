"""``make demo`` ends with the command that opens the console, and that command works.

The demo runs as the Makefile runs it (``.venv/bin/python -m cohortsync.demo``
from the checkout); the command it prints last is then run as printed, the
one-time link it prints is followed, a password chosen, and the console shows
what the demo made: its authentication, its saved query and its runs.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from support import stderr_lines

REPO = Path(__file__).resolve().parents[2]


def test_the_demos_last_command_opens_the_console_on_what_the_demo_made(
    home: Path, tmp_path: Path
) -> None:
    demo_home = tmp_path / "demo-home"
    demo = subprocess.run(
        [sys.executable, "-m", "cohortsync.demo", str(demo_home)],
        cwd=REPO,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert demo.returncode == 0, demo.stderr
    last = demo.stdout.rstrip().splitlines()[-3:]
    assert last[0] == "Open the console on this demo's home:"
    assignment, executable, command = shlex.split(last[1])
    assert assignment == f"COHORTSYNC_HOME={demo_home}" and command == "console"
    assert executable == str(Path(sys.executable).with_name("cohortsync").relative_to(REPO))
    assert "login link" in last[2]

    process = subprocess.Popen(
        [executable, command, "--port", "0"],
        cwd=REPO,
        env={**os.environ, "COHORTSYNC_HOME": str(demo_home)},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = stderr_lines(process, 3)
        link = lines[2].strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/login/link\?token=[\w-]{40,}", link)
        base = link.split("/login")[0]
        with httpx.Client(base_url=base) as client:
            assert client.get(link).headers["location"] == "/account/password"
            form = client.get("/account/password").text
            token = re.search(r'name="csrf_token" value="([^"]+)"', form)
            assert token is not None
            chosen = client.post(
                "/account/password",
                data={
                    "csrf_token": token.group(1),
                    "password": "a demo password",
                    "confirm": "a demo password",
                },
            )
            assert chosen.status_code == 200
            assert "braze-demo" in client.get("/hub/braze").text
            assert "td_external_ids_daily" in client.get("/queries").text
            history = client.get("/runs").text
            assert all(cohort in history for cohort in ("td_external_ids", "td_emails"))
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
