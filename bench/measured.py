"""Run a benchmark's child process and measure it: wall time and its own peak memory.

The peak is the child's ``VmHWM``, polled every 10 ms until it exits: the
kernel's high-water mark of that process's memory since it started, which does
not include the parent. (``wait4``'s ``ru_maxrss`` would: on Linux a child's
``ru_maxrss`` starts from its parent's resident size at fork.) The processes
the child starts in turn (Spark's JVM) are measured apart: the largest sum of
their ``VmHWM`` seen while polling.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Measured:
    seconds: float
    peak_mb: float
    returncode: int
    stdout: bytes = b""  # with capture=True
    stderr: str = ""
    children_peak_mb: float = 0.0  # the processes the child started (a JVM), apart


def high_water_mb(pid: int | str) -> float:
    """``VmHWM`` of a live process, in MB: its own peak resident memory since exec."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def children_of(pid: int) -> list[int]:
    """The live child processes of ``pid``, and theirs, from ``/proc``."""
    found: list[int] = []
    pending = [pid]
    while pending:
        parent = pending.pop()
        try:
            with open(f"/proc/{parent}/task/{parent}/children") as listed:
                children = [int(text) for text in listed.read().split()]
        except OSError:
            continue
        found += children
        pending += children
    return found


def run_measured(command: list[str], env: dict[str, str], *, capture: bool = False) -> Measured:
    """Run ``command``; its wall time, peak MB and exit code (and its output, with ``capture``).

    Without ``capture`` its stdout is discarded and its stderr goes to ours.
    """
    peak = [0.0, 0.0]
    started = time.perf_counter()
    with tempfile.TemporaryFile() as output, tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(
            command,
            env=env,
            stdout=output if capture else subprocess.DEVNULL,
            stderr=errors if capture else None,
        )
        finished = threading.Event()

        def poll() -> None:
            while not finished.is_set():
                try:
                    peak[0] = max(peak[0], high_water_mb(process.pid))
                except (OSError, ValueError):  # exited, or a zombie without memory
                    return
                children = 0.0
                for child in children_of(process.pid):
                    with contextlib.suppress(OSError, ValueError):  # it exited meanwhile
                        children += high_water_mb(child)
                peak[1] = max(peak[1], children)
                finished.wait(0.01)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        _, status, _ = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        finished.set()
        poller.join()
        output.seek(0)
        errors.seek(0)
        return Measured(
            seconds,
            peak[0],
            os.waitstatus_to_exitcode(status),
            output.read(),
            errors.read().decode(errors="replace").strip(),
            peak[1],
        )
