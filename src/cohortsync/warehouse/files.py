"""Files to load: whether a file can be read, and which format it is.

Reading and checking its rows is :mod:`cohortsync.warehouse.loading`'s work.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

from cohortsync.errors import ConfigError
from cohortsync.warehouse.base import FileFormat

FORMAT_BY_EXTENSION: dict[str, FileFormat] = {
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".json": "ndjson",
}
FORMATS: tuple[FileFormat, ...] = ("csv", "parquet", "ndjson")
COMPRESSION_EXTENSIONS = (".gz", ".zst")


def check_readable(path: Path) -> Path:
    """``path`` if it is a readable file, else a :class:`ConfigError` naming it."""
    if not path.exists():
        raise ConfigError(f"cannot load {path}: no such file", hint="check the path")
    if not path.is_file():
        raise ConfigError(f"cannot load {path}: not a file", hint="give the path of one file")
    try:
        with path.open("rb"):
            pass
    except OSError as error:
        raise ConfigError(
            f"cannot load {path}: {error.strerror}", hint="check the file's permissions"
        ) from error
    return path


def detect_format(path: Path, explicit: str | None = None) -> FileFormat:
    """The format of ``path``: ``explicit`` when given, else from its extension.

    A trailing ``.gz`` or ``.zst`` is looked through (``users.csv.gz`` is CSV).
    """
    if explicit is not None:
        if explicit not in FORMATS:
            raise ConfigError(
                f"unsupported format {explicit!r} for {path}",
                hint=f"use one of: {', '.join(FORMATS)}",
            )
        return cast(FileFormat, explicit)
    suffixes = [suffix.lower() for suffix in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSION_EXTENSIONS:
        suffixes.pop()
    extension = suffixes[-1] if suffixes else ""
    try:
        return FORMAT_BY_EXTENSION[extension]
    except KeyError:
        raise ConfigError(
            f"cannot tell the format of {path} from its extension {extension or '(none)'!r}",
            hint="name it .csv, .parquet, .ndjson or .jsonl, or pass --format csv|parquet|ndjson",
        ) from None
