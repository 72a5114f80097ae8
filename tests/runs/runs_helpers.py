"""Helpers of the run tests: command lines, and the cohort as the server saw it.

Imported by the tests of this directory (pytest puts it on ``sys.path``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson

from export.partner_server import CLIENT_SECRET, PartnerServer

Identifier = tuple[str, str]


def cohortsync_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "cohortsync", *args]


def export_args(server: PartnerServer, *args: str, cohort: str = "vip") -> list[str]:
    """``cohortsync export`` of table ``t`` to ``cohort`` on ``server``, mirror by default."""
    return cohortsync_command(
        "export",
        "--endpoint",
        server.url,
        "--data-import-key",
        CLIENT_SECRET,
        "--cohort-id",
        cohort,
        "--table",
        "t",
        *(args if "--operation" in args else ("--operation", "mirror", *args)),
    )


def runs_json(*args: str) -> Any:
    """``cohortsync runs ... --json``, parsed."""
    done = subprocess.run(
        cohortsync_command("runs", *args, "--json"),
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
        check=True,
    )
    return orjson.loads(done.stdout)


def membership(server: PartnerServer) -> set[Identifier]:
    """The cohort as the server applied it: acknowledged requests in the order they finished."""
    members: set[Identifier] = set()
    answered = sorted(server.users_requests(), key=lambda request: request.finished)
    for request in answered:
        for change in request.body["cohort_changes"]:
            remove = change.get("should_remove", False)
            for kind in ("user_ids", "device_ids"):
                for value in change.get(kind, []):
                    (members.discard if remove else members.add)((kind, value))
    return members


def received(server: PartnerServer) -> Counter[tuple[str, str, bool]]:
    """How many times each change reached the server and was acknowledged."""
    return Counter(server.identifiers())


def wait_for(condition: Callable[[], bool], timeout: float = 30, what: str = "it") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def interrupt(process: subprocess.Popen[str], signum: int = signal.SIGTERM) -> None:
    process.send_signal(signum)
