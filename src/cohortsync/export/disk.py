"""The files a run and a mirror snapshot write in the home, and what a failed write says.

A run keeps its plan, its ack log (and on the REST path its match log) under
``runs/<run id>/``; a mirror keeps its snapshots under ``snapshots/``. Each of
these is written so that a crash leaves the previous state or the new one
(:mod:`cohortsync.export.formats`, :mod:`cohortsync.export.snapshots`). A disk
that fills up, a quota or a file system turned read-only is not a crash: the
process lives on and sees ``OSError``. Such a write is turned into one
:class:`~cohortsync.errors.DiskWriteFailed` naming the file, what it is and
the reason, so the run ends ``failed`` with nothing committed half way, and
the same export goes on once there is space again:

* an append that did not fit (a short ``write(2)``) is cut back to the last
  whole record, so the log never holds a torn record followed by more;
* an atomic replacement that fails removes its temporary file and leaves the
  file it would have replaced as it was;
* a DuckDB statement that ran out of space (staging, the plan, a snapshot's
  Parquet files) is recognised by its message (:func:`disk_full_in`).

Logs are appended by one thread (the send loop), so an append is one
``write(2)`` of a whole record: a killed process leaves at most a torn last
record, which readers leave out.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cohortsync.errors import DiskWriteFailed

# What to do once a write failed: every writer here leaves a state the same export resumes from.
HINT = (
    "free space on that file system (df -h shows it), then run the same export again: "
    "it goes on where this run stopped"
)

_REASONS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}

# DuckDB says "Could not write file "PATH": No space left on device" (or names a temporary file).
_DUCKDB_FULL = re.compile(r"(No space left on device|Disk quota exceeded)")
_DUCKDB_FILE = re.compile(r"""(?:file|directory)\s+\\?["'](?P<path>[^"'\\]+)\\?["']""")


def write_failed(path: Path, what: str, error: OSError | None = None) -> DiskWriteFailed:
    """The error of a failed write of ``what`` (e.g. "the run's ack log") at ``path``."""
    reason = "no space left on the device"
    if error is not None:
        reason = _REASONS.get(error.errno or 0) or (error.strerror or str(error)).lower()
    return DiskWriteFailed(f"cannot write {what} {path}: {reason}", hint=HINT)


@contextmanager
def writing(path: Path, what: str) -> Iterator[None]:
    """Turn an ``OSError`` raised inside the block into :func:`write_failed` of ``path``."""
    try:
        yield
    except OSError as error:
        raise write_failed(path, what, error) from None


def disk_full_in(message: str, *, what: str, fallback: Path) -> DiskWriteFailed | None:
    """The :class:`DiskWriteFailed` an engine's error ``message`` describes, if it is one.

    The file is the one the message names, else ``fallback`` (the directory
    the statement wrote in).
    """
    full = _DUCKDB_FULL.search(message)
    if full is None:
        return None
    named = _DUCKDB_FILE.search(message)
    path = Path(named.group("path")) if named else fallback
    code = errno.ENOSPC if full.group(1).startswith("No space") else errno.EDQUOT
    return write_failed(path, what, OSError(code, os.strerror(code)))


class AppendLog:
    """A log of records appended one ``write(2)`` each, created with ``header`` if new.

    ``what`` names the log in errors ("the run's ack log"). A write that
    fails, or fits only in part, raises :class:`DiskWriteFailed`; a part
    written is cut off first, so the log ends with whole records.
    """

    def __init__(self, path: Path, header: bytes, what: str) -> None:
        self.path = path
        self.what = what
        with writing(path, what):
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            if os.fstat(self._fd).st_size == 0:
                self.append(header)
        except BaseException:
            os.close(self._fd)
            raise

    def append(self, record: bytes) -> None:
        with writing(self.path, self.what):
            written = os.write(self._fd, record)
            if written != len(record):
                os.ftruncate(self._fd, os.fstat(self._fd).st_size - written)
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def close(self) -> None:
        os.close(self._fd)


def start_log(path: Path, header: bytes, what: str) -> None:
    """Create the log at ``path`` with its ``header``, unless it already holds something."""
    AppendLog(path, header, what).close()


def replace_atomically(path: Path, data: bytes, what: str) -> None:
    """Replace ``path`` with ``data``: a temporary file, fsynced, renamed over it.

    A failure leaves ``path`` as it was and removes the temporary file.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with writing(path, what):
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def fsync(path: Path, what: str) -> None:
    """Flush a file, or a directory's entries, to the disk."""
    with writing(path, what):
        flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0)
        fd = os.open(path, flags)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
