"""Ports for tests that run beside others: a server picks its own, a refused one stays refused.

The suite runs on several worker processes at once (``make test``). A port
found free by binding port 0 and closing the socket is free only for that
instant: another worker's server can take it before the test uses it, and
then the test talks to the wrong server, or its own server cannot listen.
So a server under test is started on port 0 and says where it listens
(:func:`served_url`), and an address that must refuse connections keeps its
port held for the whole test (:func:`unused_port`).
"""

from __future__ import annotations

import re
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from support.waiting import wait_for

# What ``cohortsync braze serve`` prints once its socket is bound (its port is known then).
SERVING_ON = re.compile(r"^serving on (http://\S+)", re.MULTILINE)


@contextmanager
def unused_port(host: str = "127.0.0.1") -> Iterator[int]:
    """A port on ``host`` where every connection is refused while the block runs.

    The port is bound but never listened on: a connection to it is refused
    at once, and no other process can listen there meanwhile (the socket
    does not set ``SO_REUSEADDR``, so even a server that sets it cannot
    share the port).
    """
    with socket.socket() as held:
        held.bind((host, 0))
        yield int(held.getsockname()[1])


def served_url(process: subprocess.Popen[Any], log: Path, timeout: float = 60) -> str:
    """The base URL a starting ``cohortsync braze serve --port 0`` says it serves on.

    For a command whose stderr goes to the file ``log``. Fails naming the log
    once ``timeout`` seconds have passed, or as soon as the command has ended.
    """
    __tracebackhide__ = True
    return wait_for(
        lambda: _url_in(log.read_text()),
        timeout,
        what=f"the service to say where it serves (in {log})",
        interval=0.05,
        process=process,
    )


def served_url_on_stderr(process: subprocess.Popen[Any]) -> tuple[str, str]:
    """The base URL a starting ``cohortsync braze serve --port 0`` says it serves on.

    For a command started with ``stderr=subprocess.PIPE, text=True``: reads
    its stderr up to that line, and returns the URL and all it read (what it
    printed before; ``communicate`` gives the rest). Each read waits for its
    line, as :func:`support.stderr_lines` does; a command that ends first fails
    the test with what it printed.
    """
    __tracebackhide__ = True
    assert process.stderr is not None, "start the command with stderr=subprocess.PIPE"
    printed = ""
    while line := process.stderr.readline():
        printed += line
        url = _url_in(line)
        if url:
            return url, printed
    process.wait(timeout=30)
    raise AssertionError(
        f"the command ended (exit {process.returncode}) before it said where it serves"
        f"\n--- stderr\n{printed}"
    )


def _url_in(text: str) -> str | None:
    found = SERVING_ON.search(text)
    return found.group(1) if found else None
