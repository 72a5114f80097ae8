"""The cohort lock across real processes: bounded waits, and release on SIGKILL."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cohortsync.errors import CohortsyncError
from cohortsync.export.locks import CohortLock
from cohortsync.export.snapshots import CohortKey

Holder = Callable[[float], "subprocess.Popen[str]"]
KEY = CohortKey.for_destination("http://127.0.0.1:1", "key", "treasuredata", "vip")

HOLDER = """
import sys, time
from pathlib import Path
from cohortsync.export.locks import CohortLock
from cohortsync.export.snapshots import CohortKey
key = CohortKey.for_destination("http://127.0.0.1:1", "key", "treasuredata", "vip")
lock = CohortLock(Path(sys.argv[1]), key)
lock.acquire(timeout=0, run_id="run-holder")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
lock.release()
print("released", flush=True)
time.sleep(30)
"""


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[Holder]:
    """Start a process that holds the lock for the seconds given, then releases it."""
    processes: list[subprocess.Popen[str]] = []

    def start(seconds: float) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(tmp_path), str(seconds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        processes.append(process)
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "locked"
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait()


def test_a_second_run_waits_its_timeout_then_names_the_holder(
    tmp_path: Path, holder: Holder
) -> None:
    process = holder(60)
    lock = CohortLock(tmp_path, KEY)
    started = time.monotonic()
    with pytest.raises(
        CohortsyncError,
        match=r"^another run of cohort 'vip' .* is in progress \(run run-holder, pid \d+",
    ) as caught:
        lock.acquire(timeout=1.0, run_id="run-2")
    waited = time.monotonic() - started
    assert 1.0 <= waited < 5
    message = str(caught.value)
    assert "another run of cohort 'vip'" in message
    assert f"run run-holder, pid {process.pid}" in message
    assert "waited 1 s" in message
    assert "--lock-timeout" in message
    assert not lock.acquired


def test_a_waiting_run_proceeds_when_the_holder_finishes(tmp_path: Path, holder: Holder) -> None:
    holder(1.0)
    lock = CohortLock(tmp_path, KEY)
    started = time.monotonic()
    lock.acquire(timeout=20, run_id="run-2")
    assert 0.5 < time.monotonic() - started < 15
    current = lock.holder()
    assert current is not None
    assert current.run_id == "run-2"
    lock.release()
    assert not lock.is_held()


def test_sigkill_releases_the_lock(tmp_path: Path, holder: Holder) -> None:
    process = holder(60)
    lock = CohortLock(tmp_path, KEY)
    assert lock.is_held()
    current = lock.holder()
    assert current is not None
    assert current.pid == process.pid
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not lock.is_held()
    lock.acquire(timeout=0)
    assert lock.acquired
    lock.release()


def test_two_locks_in_one_process_exclude_each_other(tmp_path: Path) -> None:
    first = CohortLock(tmp_path, KEY)
    second = CohortLock(tmp_path, KEY)
    other = CohortLock(
        tmp_path, CohortKey.for_destination("http://127.0.0.1:1", "key", "treasuredata", "other")
    )
    with first:
        with pytest.raises(
            CohortsyncError,
            match=r"^another run of cohort 'vip' .* is in progress .*; waited 0\.2 s for it",
        ):
            second.acquire(timeout=0.2)
        with other:  # another cohort is independent
            assert other.acquired
    second.acquire(timeout=0)
    second.release()
