"""Reading the text files users hand us: SQL, YAML definitions, JSON rules.

One place turns every way such a file can be wrong (missing, a directory,
unreadable, not UTF-8) into a one-line :class:`ConfigError` that names the
file and what to do, instead of an ``OSError`` or ``UnicodeDecodeError``
traceback. The files are small (a query, a definitions file), so they are
read whole.
"""

from __future__ import annotations

from pathlib import Path

from cohortsync.errors import ConfigError


def read_text(path: Path, what: str) -> str:
    """The UTF-8 text of ``path``; a leading byte-order mark is dropped.

    Args:
        path: the file.
        what: how messages name it, e.g. ``"the query file q.sql"``.

    Raises:
        ConfigError: the file is missing, a directory, unreadable, or not UTF-8.
    """
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise ConfigError(f"cannot read {what}: it is a directory", hint="give a file") from None
    except OSError as error:
        raise ConfigError(
            f"cannot read {what}: {error.strerror}", hint="check the path and its permissions"
        ) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ConfigError(
            f"cannot read {what}: it is not UTF-8 text (byte 0x{data[error.start]:02x} "
            f"on line {line})",
            hint="save it as UTF-8, e.g. iconv -f latin1 -t utf-8 FILE > FILE.utf8",
        ) from None
