"""Helpers of the run tests: command lines, and the cohort as the server saw it.

Imported by the tests of this directory (pytest puts it on ``sys.path``).
"""

from __future__ import annotations

import signal
import subprocess
from collections import Counter
from collections.abc import Callable
from typing import Any

from export.partner_server import CLIENT_SECRET, PartnerServer
from support import run_cli

Identifier = tuple[str, str]


def export_args(server: PartnerServer, *args: str, cohort: str = "vip") -> list[str]:
    """The arguments of ``cohortsync export`` of table ``t`` to ``cohort`` on ``server``.

    A mirror unless ``args`` name another ``--operation``.
    """
    return [
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
    ]


def runs_json(*args: str) -> Any:
    """``cohortsync runs ... --json``, parsed."""
    return run_cli("runs", *args, "--json", timeout=60).json()


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


def partway(
    process: subprocess.Popen[str], server: PartnerServer, requests: int
) -> Callable[[], bool]:
    """True once the server has seen ``requests`` requests, or the process has ended."""
    return lambda: process.poll() is not None or len(server.requests) >= requests


def interrupt(process: subprocess.Popen[str], signum: int = signal.SIGTERM) -> None:
    process.send_signal(signum)
