"""Private modes for what cohortsync keeps: the home, its files, a receiving store.

The home holds the console's session secret, the encrypted keys next to the
key that decrypts them, the identifiers of snapshots and runs, and often the
receiving service's store, whose keys are in clear. None of it is for other
local users, whatever the umask of the shell or the supervisor that started
the command:

- :func:`open_private_home` creates the home (and any parent it has to
  create) with mode 0700, and adds ``077`` to the process's umask, so every
  file and directory written from then on (SQLite and DuckDB databases and
  their ``-wal``/``-shm`` files, Parquet snapshots, run staging files, logs,
  the Spark warehouse's files, in this process and its children) is 0600 or
  0700. It is the one place the exporting side opens its home, so nothing
  else sets a mode. The umask only gains bits: a stricter one is kept. It is
  the process's, so it also covers a program that imports cohortsync and
  opens a home; cohortsync itself writes no file outside its home and store.
- :func:`prepare_sqlite_file` does the same for a receiving service's SQLite
  store wherever ``--db`` puts it: a new file is created 0600 before SQLite
  opens it (SQLite gives the ``-wal`` and ``-shm`` files the database file's
  mode), and a directory it has to create, 0700.

A home or a store left by an earlier release (0755, 0644 under the usual
umask) is made private when it is opened: group and other bits are removed
from the home, from what cohortsync keeps directly in it, and from a store
file, and one line says what changed. Only what belongs to the user running
the command is changed; anything else is left as it is, and nothing fails
because a mode could not be changed (a read-only or immutable file system).
Files deeper in the home are not visited: they are out of other users' reach
once the home is 0700.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

logger = logging.getLogger(__name__)

PRIVATE_UMASK = 0o077
PRIVATE_DIRECTORY = 0o700
PRIVATE_FILE = 0o600

# What cohortsync keeps directly in the home, made private when an older home
# is opened. ``secret.key`` is left out on purpose: one readable by others is
# refused (cohortsync.secrets), since it may already have been read.
HOME_ENTRIES = (
    "catalog.db",
    "warehouse.duckdb",
    "warehouse.duckdb.wal",
    "braze.db",
    "snapshots",
    "runs",
    "locks",
    "spark",
)
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def private_umask() -> None:
    """Add ``077`` to the process's umask (idempotent; a stricter umask stays)."""
    current = os.umask(PRIVATE_UMASK)
    os.umask(current | PRIVATE_UMASK)


def make_private_directories(path: Path) -> None:
    """Create ``path`` and its missing parents, each one mode 0700 (``mkdir -p -m 700``).

    Raises:
        OSError: as :meth:`Path.mkdir` does (a file in the way, no permission).
    """
    missing: list[Path] = []
    current = path
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=PRIVATE_DIRECTORY)
        except FileExistsError:
            if not directory.is_dir():
                raise
    if not path.is_dir():
        raise NotADirectoryError(f"not a directory: {path}")


def open_private_home(path: Path) -> None:
    """Make ``path`` the process's private home: created 0700, files written 0600.

    An existing home is made private (see the module's notes), with one
    warning line naming what changed.

    Raises:
        OSError: the home cannot be created (as :meth:`Path.mkdir` does).
    """
    private_umask()
    make_private_directories(path)
    entries = [path / name for name in HOME_ENTRIES] + _sqlite_sides(path)
    # The home itself through a symbolic link (~/.cohortsync -> /data/...), its entries not.
    home = ("the directory", path.resolve())
    changed = tighten([home, *((entry.name, entry) for entry in entries)])
    if changed:
        logger.warning("made the home %s private: %s", path, ", ".join(changed))


def _sqlite_sides(home: Path) -> list[Path]:
    return [
        home / f"{name}{suffix}"
        for name in ("catalog.db", "braze.db")
        for suffix in SQLITE_SIDE_FILES
    ]


def tighten(entries: list[tuple[str, Path]]) -> list[str]:
    """Remove group and other bits from each existing path the current user owns.

    ``entries`` are (label, path). Symbolic links are not followed. Returns
    what changed, as ``"LABEL 0755 -> 0700"``; a path whose mode cannot be
    changed is skipped.
    """
    changed: list[str] = []
    uid = os.geteuid()
    for label, path in entries:
        try:
            status = path.lstat()
        except OSError:
            continue
        mode = stat.S_IMODE(status.st_mode)
        if status.st_uid != uid or stat.S_ISLNK(status.st_mode) or not mode & PRIVATE_UMASK:
            continue
        tightened = mode & ~PRIVATE_UMASK
        try:
            path.chmod(tightened)
        except OSError:
            continue
        changed.append(f"{label} {mode:04o} -> {tightened:04o}")
    return changed


def prepare_sqlite_file(path: Path) -> None:
    """A SQLite database file for secrets: created 0600 (its folder 0700), or made private.

    A new file is created empty with mode 0600, so SQLite makes its
    ``-wal`` and ``-shm`` files 0600 too; a folder that does not exist is
    created 0700. An existing file the current user owns loses its group and
    other bits, with one warning line.

    Raises:
        OSError: the folder cannot be created.
    """
    make_private_directories(path.parent)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        sides = [path.with_name(path.name + suffix) for suffix in SQLITE_SIDE_FILES]
        changed = tighten([(each.name, each) for each in (path, *sides)])
        if changed:
            logger.warning("made the store %s private: %s", path, ", ".join(changed))
        return
    except OSError:
        return  # a folder that cannot be written: SQLite says so, in its own words
    os.close(descriptor)
