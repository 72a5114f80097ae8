"""One export run per cohort at a time, across processes.

Two runs of one cohort would diff against the same snapshot and send
overlapping changes, and the later commit would silently drop the other's.
Each run therefore holds an exclusive ``flock`` on a lock file per cohort key
(``<home>/locks/<cohort slug>.lock``) from before it plans until after it
commits. ``flock`` belongs to the open file, so the kernel releases it when
the process dies, even by SIGKILL: a crashed run never leaves a stale lock,
and "the lock is free" is a reliable sign that no run of the cohort is alive.

The holder writes who it is (run id, pid, start time) into the lock file so a
waiting run can say whom it waited for.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from cohortsync.errors import CohortBusy
from cohortsync.export.stopping import StopToken
from cohortsync.identity import CohortKey

DEFAULT_LOCK_TIMEOUT = 60.0
_POLL_SECONDS = 0.1


@dataclass(frozen=True)
class LockHolder:
    """Who holds a cohort lock, as the holder wrote it."""

    pid: int
    since: str
    run_id: str | None = None

    def describe(self) -> str:
        run = f"run {self.run_id}, " if self.run_id else ""
        return f"{run}pid {self.pid}"


class CohortLock:
    """The exclusive lock of one cohort key; use as a context manager or acquire/release.

    Args:
        home: the cohortsync home directory.
        key: the cohort to lock.
    """

    def __init__(self, home: Path, key: CohortKey) -> None:
        self.key = key
        self.path = home / "locks" / f"{key.slug}.lock"
        self._fd: int | None = None
        self._since = ""

    @property
    def acquired(self) -> bool:
        return self._fd is not None

    def acquire(
        self,
        *,
        timeout: float = DEFAULT_LOCK_TIMEOUT,
        run_id: str | None = None,
        stop: StopToken | None = None,
    ) -> None:
        """Take the lock, waiting at most ``timeout`` seconds for another run to finish.

        Raises:
            CohortBusy: another run still holds the lock after ``timeout``; the
                message names it.
            RunInterrupted: ``stop`` was requested while waiting.
        """
        if self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise self._busy_error(timeout) from None
                if stop is None:
                    time.sleep(_POLL_SECONDS)
                elif stop.wait(_POLL_SECONDS):
                    os.close(fd)
                    raise stop.interrupted(f"waiting for {self.key.describe()}") from None
        self._fd = fd
        self._since = datetime.now(UTC).isoformat(timespec="seconds")
        self.set_run(run_id)

    def set_run(self, run_id: str | None) -> None:
        """Record which run holds the lock, once its id is known."""
        if self._fd is None:
            raise RuntimeError("set_run() on a lock that is not held")
        record = {"pid": os.getpid(), "since": self._since, "run_id": run_id}
        data = json.dumps(record).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)

    def release(self) -> None:
        """Let the next run of the cohort go; closing the file releases the flock."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)

    def holder(self) -> LockHolder | None:
        """Who holds the lock now, or ``None`` when it is free (or the holder is starting)."""
        if not self.is_held():
            return None
        try:
            record = json.loads(self.path.read_text() or "null")
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        if not isinstance(record, dict):
            return None
        return LockHolder(
            pid=int(record["pid"]), since=str(record["since"]), run_id=record["run_id"]
        )

    def is_held(self) -> bool:
        """Whether some run (this process included) holds the lock now."""
        if self._fd is not None:
            return True
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing drops the probe's lock if it got one
        return False

    def _busy_error(self, timeout: float) -> CohortBusy:
        holder = self.holder()
        who = f" ({holder.describe()}, running since {holder.since})" if holder else ""
        hint = "wait for it to finish, or raise --lock-timeout"
        if holder and holder.run_id:
            hint += f"; 'cohortsync runs show {holder.run_id}' shows its progress"
        return CohortBusy(
            f"another run of {self.key.describe()} is in progress{who}; "
            f"waited {timeout:g} s for it",
            hint=hint,
            cohort=self.key.describe(),
            holder_run_id=holder.run_id if holder else None,
        )

    def __enter__(self) -> CohortLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()
