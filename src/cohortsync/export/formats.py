"""The versions of the files a run and a mirror snapshot leave on disk.

A run's directory and a cohort's snapshots outlive the process, and the
release, that wrote them: a run interrupted under one release is resumed
under the next, and a snapshot committed a year ago is what today's mirror
run diffs against. Each file therefore says which format it is in, so that
code reading it can upgrade an older one, and refuse one written by a newer
release instead of misreading it (a misread ack log would skip batches that
were never sent; a misread plan would renumber them).

A format's version changes only when a reader of the previous version would
misread the new one. Files written before versions were marked carry none;
each format says below which version such a file is.

=========  ====================================  ==========================  =======
format     file                                  where the version is        current
=========  ====================================  ==========================  =======
plan       ``runs/<run id>/changes.parquet``     Parquet key-value metadata  2
ack log    ``runs/<run id>/acks.log``            a 16-byte header record     2
snapshot   ``snapshots/<cohort>/*/meta.json``    the ``format_version`` key  2
match log  ``runs/<run id>/match.log``           its first line              1
=========  ====================================  ==========================  =======

- **plan 1**: columns ``(kind, value, should_remove)``, no mark (the first
  export pipeline). Upgraded in place to 2 when its run is resumed: the
  ``item`` column is computed from ``kind``, ``value`` and the run's alias
  label, rows kept in their order so batch numbers keep their meaning.
  **plan 2** adds ``item``, each identifier pre-encoded as JSON; written
  unmarked before versions were marked (recognised by its ``item`` column),
  marked since.
- **ack log 1**: 16-byte records ``(batch number, identifier count)``, two
  little-endian int64, no header (before versions were marked). **ack log 2**: the
  same records after one header record (:data:`ACK_LOG_MAGIC`, version).
  Both are read; a log is only ever appended by the release that created it
  (a resumed run folds the old log into the catalog and starts a new one).
- **match log 1**: a ``rest-attribute`` run's answers, one JSON line per
  acknowledged batch (``batch``, ``objects``, and when the answer had
  non-fatal errors ``errors``, ``reasons``, ``first``), after a header line
  (``format``, ``format_version``, and ``carried``: the match report the
  run's history held when the log was started, for a run an earlier
  release began, which wrote no match log). Runs of earlier releases have
  none; their recorded report's match is carried into the log when they
  are resumed. A torn last line (the process died inside the write) is
  left out.
- **snapshot 1**: ``members.parquet`` and ``exits.parquet`` of ``(kind,
  value)`` and ``meta.json``; the version key is added to ``meta.json``
  when a generation is written or committed. It covers its directory.
  **snapshot 2**: the members and known exits live in two tables of the
  warehouse (a mirror diffed inside PostgreSQL), named by the ``warehouse``
  key of ``meta.json``; the directory holds ``meta.json`` alone. Only such
  generations are marked 2, so a release that reads version 1 alone keeps
  reading the Parquet ones and refuses these instead of taking them for an
  empty snapshot.

A newer version than the ones above is refused by :func:`too_new`, always
with the same message: which file, both versions, and to upgrade cohortsync.
Nothing is changed in the refused file or the run history.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow.parquet as pq

from cohortsync import __version__
from cohortsync.errors import CohortsyncError, FileFormatTooNew
from cohortsync.export import disk
from cohortsync.export.identifiers import ALIAS

PLAN = "plan"
ACK_LOG = "ack log"
SNAPSHOT = "snapshot"
MATCH_LOG = "match log"

# The files of a run's directory (:mod:`cohortsync.export.run`).
PLAN_FILE = "changes.parquet"
ACK_LOG_FILE = "acks.log"
MATCH_LOG_FILE = "match.log"

# What each file is called in the error of a write that failed (:mod:`cohortsync.export.disk`).
PLAN_WHAT = f"the run's {PLAN}"
ACK_LOG_WHAT = f"the run's {ACK_LOG}"
MATCH_LOG_WHAT = f"the run's {MATCH_LOG}"
SNAPSHOT_WHAT = "the cohort's new snapshot"

PLAN_VERSION = 2
ACK_LOG_VERSION = 2
SNAPSHOT_VERSION = 2
MATCH_LOG_VERSION = 1

# Parquet key-value metadata of a plan file.
FORMAT_KEY = "cohortsync.format"
VERSION_KEY = "cohortsync.format_version"
# The key of a snapshot's meta.json.
SNAPSHOT_VERSION_KEY = "format_version"

# The ack log's header: one record, so the records after it stay aligned. As a
# version 1 record its batch number would be about 5.5e18: never a real batch.
ACK_RECORD = struct.Struct("<qq")  # batch number, identifier count
ACK_LOG_MAGIC = b"CSACKLOG"
ACK_HEADER = ACK_LOG_MAGIC + struct.pack("<q", ACK_LOG_VERSION)

_PLAN_V1_COLUMNS = ("kind", "value", "should_remove")


def too_new(name: str, path: Path, found: int, current: int) -> FileFormatTooNew:
    """The one refusal: a file written in a newer format than this release reads."""
    return FileFormatTooNew(
        f"{path} is in {name} format version {found}, but this cohortsync ({__version__}) "
        f"reads {name} format versions up to {current}",
        hint="it was written by a newer cohortsync: upgrade cohortsync, then run the command "
        "again; the file and the run history were left unchanged",
    )


def _damaged(name: str, path: Path, detail: str) -> CohortsyncError:
    return CohortsyncError(
        f"{path} is not a readable {name} file: {detail}",
        hint="it is damaged; run the export again (a mirror export with --full-resync after "
        "removing the file's directory)",
    )


def _checked(name: str, path: Path, raw: object, current: int) -> int:
    try:
        version = int(str(raw))
    except ValueError:
        raise _damaged(name, path, f"format version {raw!r} is not a number") from None
    if version < 1:
        raise _damaged(name, path, f"format version {version} does not exist")
    if version > current:
        raise too_new(name, path, version, current)
    return version


# -- plan ------------------------------------------------------------------------


def plan_metadata_sql() -> str:
    """The ``KV_METADATA`` option of the ``COPY`` that writes a plan file."""
    return f"KV_METADATA {{'{FORMAT_KEY}': '{PLAN}', '{VERSION_KEY}': '{PLAN_VERSION}'}}"


def item_json_sql(is_alias: str, alias_label: str | None) -> str:
    """SQL of the ``item`` column: one identifier as JSON with its trailing comma.

    Args:
        is_alias: an SQL condition true for alias rows (the kind is a code in
            the staging database and a name in a plan file).
        alias_label: the export's alias column, the label of every alias.
    """
    label = "'" + (alias_label or "").replace("'", "''") + "'"
    alias = (
        f"""'{{"alias_name":' || to_json(value) || ',"alias_label":' || to_json({label}) || '}}'"""
    )
    return f"(CASE WHEN {is_alias} THEN {alias} ELSE to_json(value) END) || ','"


def plan_version(path: Path) -> int:
    """The format version of a plan file; raises when it is newer than this release's.

    Raises:
        FileFormatTooNew: a newer release wrote it.
    """
    metadata = pq.read_metadata(path)
    marks = metadata.metadata or {}
    raw = marks.get(VERSION_KEY.encode())
    if raw is not None:
        return _checked(PLAN, path, raw.decode(errors="replace"), PLAN_VERSION)
    names = set(metadata.schema.names)
    if "item" in names:
        return 2
    if set(_PLAN_V1_COLUMNS) <= names:
        return 1
    raise _damaged(PLAN, path, f"unexpected columns {sorted(names)}")


def upgrade_plan(path: Path, *, alias_label: str | None) -> int:
    """Bring a plan file to :data:`PLAN_VERSION` in place; return the version it had.

    The new file is written beside it, in the same row order (one thread,
    insertion order kept), fsynced and renamed over it, so a crash leaves the
    old plan or the new one and batch numbers mean the same identifiers.

    Raises:
        FileFormatTooNew: a newer release wrote it.
    """
    found = plan_version(path)
    if found == PLAN_VERSION:
        return found
    # found == 1: add the pre-encoded item column.
    tmp = path.with_name(f".{path.name}.upgrade")
    quoted = "'" + str(path).replace("'", "''") + "'"
    target = "'" + str(tmp).replace("'", "''") + "'"
    item = item_json_sql(f"kind = '{ALIAS}'", alias_label)
    connection = duckdb.connect(
        config={"threads": 1, "preserve_insertion_order": True, "memory_limit": "128MB"}
    )
    try:
        connection.execute(
            f"COPY (SELECT kind, value, should_remove, {item}::VARCHAR AS item "
            f"FROM read_parquet({quoted})) TO {target} "
            f"(FORMAT parquet, COMPRESSION lz4_raw, {plan_metadata_sql()})"
        )
    finally:
        connection.close()
    disk.fsync(tmp, PLAN_WHAT)
    with disk.writing(path, PLAN_WHAT):
        os.replace(tmp, path)
    disk.fsync(path.parent, PLAN_WHAT)
    return found


# -- ack log ---------------------------------------------------------------------


def start_ack_log(path: Path) -> None:
    """Create a run's ack log with its header, unless it already has records."""
    disk.start_log(path, ACK_HEADER, ACK_LOG_WHAT)


def ack_log_records(path: Path, data: bytes) -> bytes:
    """The whole records of an ack log's bytes, after its header if it has one.

    A torn last record or header (the process died inside the write) is left out.

    Raises:
        FileFormatTooNew: a newer release wrote it.
    """
    if data[: len(ACK_LOG_MAGIC)] == ACK_LOG_MAGIC:
        if len(data) < ACK_RECORD.size:
            return b""  # a torn header: no record was written after it
        (version,) = struct.unpack_from("<q", data, len(ACK_LOG_MAGIC))
        _checked(ACK_LOG, path, version, ACK_LOG_VERSION)
        data = data[ACK_RECORD.size :]
    elif len(data) < len(ACK_LOG_MAGIC) and ACK_LOG_MAGIC.startswith(data):
        return b""
    return data[: len(data) - len(data) % ACK_RECORD.size]


def check_ack_log(path: Path) -> None:
    """Refuse an ack log a newer release wrote (reads its first record only)."""
    try:
        with open(path, "rb") as handle:
            ack_log_records(path, handle.read(ACK_RECORD.size))
    except FileNotFoundError:
        return


# -- match log -------------------------------------------------------------------


def match_log_header(carried: Mapping[str, Any] | None) -> bytes:
    """The first line of a match log: its format, version, and the match carried in."""
    header = {"format": MATCH_LOG, "format_version": MATCH_LOG_VERSION, "carried": carried}
    return orjson.dumps(header) + b"\n"


def match_log_lines(path: Path, data: bytes) -> tuple[Mapping[str, Any] | None, list[Any]]:
    """The match carried in and the entries of a match log's bytes.

    A torn last line is left out; so is the whole log when its header is torn
    (no entry was written after it).

    Raises:
        FileFormatTooNew: a newer release wrote it.
        CohortsyncError: the header or an entry is not what this format writes.
    """
    lines = data.split(b"\n")[:-1]  # the part after the last newline is torn or empty
    if not lines:
        return None, []
    try:
        header = orjson.loads(lines[0])
        entries = [orjson.loads(line) for line in lines[1:]]
    except orjson.JSONDecodeError as error:
        raise _damaged(MATCH_LOG, path, f"a line is not JSON ({error})") from None
    if not isinstance(header, dict) or header.get("format") != MATCH_LOG:
        raise _damaged(MATCH_LOG, path, "its first line is not a match log header")
    _checked(MATCH_LOG, path, header.get("format_version"), MATCH_LOG_VERSION)
    carried = header.get("carried")
    return (carried if isinstance(carried, dict) else None), entries


def check_match_log(path: Path) -> None:
    """Refuse a match log a newer release wrote (reads its header line only)."""
    try:
        with open(path, "rb") as handle:
            first = handle.readline()
    except FileNotFoundError:
        return
    if first.endswith(b"\n"):
        match_log_lines(path, first)


# -- snapshot --------------------------------------------------------------------


def stamp_snapshot(meta: dict[str, Any]) -> dict[str, Any]:
    """``meta`` with its snapshot version (written with every meta.json).

    A generation in Parquet files is version 1; one whose tables live in the
    warehouse (a ``warehouse`` key) is version 2.
    """
    return {**meta, SNAPSHOT_VERSION_KEY: 2 if meta.get("warehouse") else 1}


def snapshot_version(path: Path, meta: Mapping[str, Any]) -> int:
    """The format version of a snapshot generation, from its ``meta.json``.

    Raises:
        FileFormatTooNew: a newer release wrote it.
    """
    return _checked(SNAPSHOT, path, meta.get(SNAPSHOT_VERSION_KEY, 1), SNAPSHOT_VERSION)


# -- a run's directory -----------------------------------------------------------


def check_run_files(run_dir: Path) -> None:
    """Refuse a run directory holding a plan, ack log or match log of a newer format.

    Called before a run is resumed or its plan folded into another run's
    diff, so that nothing is recorded or changed for such a run.
    """
    plan = run_dir / PLAN_FILE
    if plan.exists():
        try:
            plan_version(plan)
        except FileFormatTooNew:
            raise
        except (OSError, ValueError, CohortsyncError):
            pass  # incomplete (killed while writing) or damaged: as before, not resumable
    check_ack_log(run_dir / ACK_LOG_FILE)
    try:
        check_match_log(run_dir / MATCH_LOG_FILE)
    except FileFormatTooNew:
        raise
    except CohortsyncError:
        pass  # damaged: refused, naming the file, when the run is resumed
