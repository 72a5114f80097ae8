"""A small file system of its own for one test: a size-limited tmpfs mounted on a directory.

The full-disk tests need writes that really fail with ``ENOSPC``, from
Python, DuckDB and Arrow alike, so they mount a tmpfs (which needs root, or
``CAP_SYS_ADMIN``, as in CI) on a directory of the test's home and fill it
with a ballast file when the test says so. Where nothing can be mounted the
test is skipped on a laptop and fails where every suite must run.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from services import missing_service

BALLAST = ".ballast"


class SmallDisk:
    """A tmpfs of ``size`` (e.g. ``"256k"``) mounted on ``path``, unmounted by :meth:`close`."""

    def __init__(self, path: Path, size: str) -> None:
        path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            missing_service(f"cannot mount a small tmpfs on {path}: {done.stderr.strip()}")
        self.path = path

    def fill(self) -> None:
        """Take every byte still free, with a ballast file that :meth:`free` removes."""
        with open(self.path / BALLAST, "ab", buffering=0) as ballast:
            for chunk in (1 << 16, 1):
                try:
                    while True:
                        ballast.write(b"\0" * chunk)
                except OSError:
                    continue

    def free(self) -> None:
        """Give back the space the ballast took."""
        (self.path / BALLAST).unlink(missing_ok=True)

    def grow(self, size: str) -> None:
        """Make the file system ``size`` big, keeping what it holds."""
        subprocess.run(
            ["mount", "-o", f"remount,size={size}", str(self.path)], check=True, capture_output=True
        )

    def files(self) -> list[Path]:
        """Every file on the file system but the ballast, relative to its root."""
        return sorted(
            p.relative_to(self.path)
            for p in self.path.rglob("*")
            if p.is_file() and p.name != BALLAST
        )

    def close(self) -> None:
        subprocess.run(["umount", "--lazy", str(self.path)], capture_output=True)
