"""Wait for something another thread or process brings about, and say what never came."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def wait_for(
    condition: Callable[[], T | None],
    timeout: float = 30,
    *,
    what: str,
    interval: float = 0.02,
    process: subprocess.Popen[Any] | None = None,
) -> T:
    """Poll ``condition`` until it returns something true, and return that.

    Fails naming ``what`` once ``timeout`` seconds have passed, or as soon as
    ``process`` (the program expected to bring it about, if any) has ended
    first: waiting on for a dead process would only hide why.
    """
    __tracebackhide__ = True
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if process is not None and process.poll() is not None:
            raise AssertionError(
                f"the command ended (exit {process.returncode}) before {what}{_rest_of(process)}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def _rest_of(process: subprocess.Popen[Any]) -> str:
    """What an ended process still had on its stderr pipe, if it has one."""
    if process.stderr is None:
        return ""
    _, stderr = process.communicate(timeout=10)
    return f"\n--- stderr\n{stderr}" if stderr else ""


def accepting(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server accepts connections on ``host:port``: it got past start-up."""
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True
