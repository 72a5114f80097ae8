"""Snapshots of what a mirror export has put into a cohort, kept under the home.

A mirror run sends only the difference between the query result and the
snapshot of the last successful sync, so the snapshot must describe exactly
what this system added to the cohort through one authentication: it is keyed
by (endpoint, workspace key fingerprint, partner, cohort id). The data import
key itself is never written anywhere: only a SHA-256 fingerprint of it.

The key is :class:`cohortsync.identity.CohortKey`, shared with the cohort lock
and the run history. On disk, one directory per cohort key::

    snapshots/<cohort-slug>/
      CURRENT                  name of the committed generation, e.g. "gen-<run id>"
      gen-<run id>/            one committed generation
        members.parquet        (kind, value): tracked members, what we added
        exits.parquet          (kind, value): identifiers we added then removed
        meta.json              counts, alias label, run id, commit time
      pending-<run id>/        written by a run, committed once every batch is acked

A generation is written in full, fsynced, renamed into place and only then
named by ``CURRENT`` (itself replaced by an atomic rename), so a crash at any
moment leaves either the previous snapshot or the new one, never a mix.
Committing is idempotent: a resumed run that died half-way through its commit
finishes it. ``meta.json`` names the generation's format version
(:mod:`cohortsync.export.formats`): one written by the previous release has
none and is read as version 1; a newer one is refused.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cohortsync.errors import CohortsyncError
from cohortsync.export import disk, formats
from cohortsync.identity import CohortKey, key_fingerprint, normalize_endpoint

MEMBERS_FILE = "members.parquet"
EXITS_FILE = "exits.parquet"
META_FILE = "meta.json"
CURRENT_FILE = "CURRENT"
_GENERATION_PREFIX = "gen-"
_PENDING_PREFIX = "pending-"

__all__ = ["CohortKey", "Snapshot", "SnapshotStore", "key_fingerprint", "normalize_endpoint"]


@dataclass(frozen=True)
class Snapshot:
    """One committed generation: the tracked members and known exits of a cohort."""

    directory: Path
    run_id: str
    members: int
    exits: int
    alias_label: str | None
    committed_at: str
    warehouse: Mapping[str, str] | None = None
    """Where the members and exits live when the diff runs in the warehouse
    (``engine``, ``url``, ``schema``, ``members_table``, ``exits_table``);
    ``None``: in this generation's Parquet files."""

    @property
    def members_path(self) -> Path:
        return self.directory / MEMBERS_FILE

    @property
    def exits_path(self) -> Path:
        return self.directory / EXITS_FILE


class SnapshotStore:
    """The snapshots of one cohort key under ``<home>/snapshots``.

    Args:
        home: the cohortsync home directory.
        key: the cohort the snapshots describe.
    """

    def __init__(self, home: Path, key: CohortKey) -> None:
        self.key = key
        self.directory = home / "snapshots" / key.slug
        self._adopt_legacy_directory()

    def _adopt_legacy_directory(self) -> None:
        """Move the directory an earlier release kept under another slug to this key's slug.

        Releases before one cohort identity kept an endpoint's default port
        (``https://host:443``) in the key; such a cohort's snapshots are moved
        (one atomic rename) the first time it is opened, so its history is kept.
        """
        if self.directory.exists():
            return
        for slug in self.key.legacy_slugs:
            legacy = self.directory.parent / slug
            if not legacy.is_dir():
                continue
            try:
                os.rename(legacy, self.directory)
            except FileNotFoundError:
                pass  # another process moved it first
            except OSError:
                if not self.directory.exists():
                    raise
            return

    def current(self) -> Snapshot | None:
        """The last committed snapshot, or ``None`` before the first successful mirror run."""
        pointer = self.directory / CURRENT_FILE
        try:
            name = pointer.read_text().strip()
        except FileNotFoundError:
            return None
        generation = self.directory / name
        try:
            meta = json.loads((generation / META_FILE).read_text())
        except (FileNotFoundError, json.JSONDecodeError) as error:
            raise CohortsyncError(
                f"the snapshot of {self.key.describe()} is damaged: {generation} is unreadable",
                hint="run the export again with --full-resync after removing that directory",
            ) from error
        formats.snapshot_version(generation, meta)
        return Snapshot(
            directory=generation,
            run_id=str(meta["run_id"]),
            members=int(meta["members"]),
            exits=int(meta["exits"]),
            alias_label=meta.get("alias_label"),
            committed_at=str(meta["committed_at"]),
            warehouse=meta.get("warehouse"),
        )

    def pending_dir(self, run_id: str) -> Path:
        """Where run ``run_id`` writes its new snapshot before the commit (created empty)."""
        path = self.directory / f"{_PENDING_PREFIX}{run_id}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def check_current(self) -> None:
        """Refuse the committed snapshot if a newer release wrote it (damage: :meth:`current`)."""
        try:
            generation = self.directory / (self.directory / CURRENT_FILE).read_text().strip()
            meta = json.loads((generation / META_FILE).read_text())
        except (OSError, json.JSONDecodeError):
            return
        formats.snapshot_version(generation, meta)

    def check_pending(self, run_id: str) -> None:
        """Refuse the pending snapshot of ``run_id`` if a newer release wrote it."""
        pending = self.directory / f"{_PENDING_PREFIX}{run_id}"
        try:
            meta = json.loads((pending / META_FILE).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return  # not written yet: the run is not resumable and is left out
        formats.snapshot_version(pending, meta)

    def has_pending(self, run_id: str) -> bool:
        """Whether run ``run_id`` has a complete pending snapshot or has already committed it."""
        pending = self.directory / f"{_PENDING_PREFIX}{run_id}"
        if (pending / META_FILE).exists():
            return True
        return (self.directory / f"{_GENERATION_PREFIX}{run_id}" / META_FILE).exists()

    def write_pending_meta(
        self,
        run_id: str,
        *,
        members: int,
        exits: int,
        alias_label: str | None,
        warehouse: Mapping[str, str] | None = None,
    ) -> None:
        """Mark the pending snapshot of ``run_id`` complete.

        The Parquet files must be written, unless the snapshot lives in the
        warehouse (``warehouse``: where its tables will be once committed).
        """
        pending = self.directory / f"{_PENDING_PREFIX}{run_id}"
        if warehouse is None:
            for name in (MEMBERS_FILE, EXITS_FILE):
                disk.fsync(pending / name, formats.SNAPSHOT_WHAT)
        else:
            pending.mkdir(parents=True, exist_ok=True)
        meta: dict[str, Any] = formats.stamp_snapshot(
            {
                "run_id": run_id,
                "members": members,
                "exits": exits,
                "alias_label": alias_label,
                "cohort": self.key.to_dict(),
                **({"warehouse": dict(warehouse)} if warehouse is not None else {}),
            }
        )
        _write_meta(pending / META_FILE, meta)

    def commit(self, run_id: str) -> Snapshot:
        """Make the pending snapshot of ``run_id`` the current one.

        Call only once every batch of the run is acknowledged. Safe to call
        again after a crash at any point of a previous call.
        """
        generation = self._promote(run_id)
        current = self.directory / CURRENT_FILE
        disk.replace_atomically(current, f"{generation.name}\n".encode(), formats.SNAPSHOT_WHAT)
        disk.fsync(self.directory, formats.SNAPSHOT_WHAT)
        self._remove_stale(keep=generation.name)
        snapshot = self.current()
        assert snapshot is not None  # just committed
        return snapshot

    def _promote(self, run_id: str) -> Path:
        """First half of a commit: the pending snapshot becomes a generation (not yet current)."""
        pending = self.directory / f"{_PENDING_PREFIX}{run_id}"
        generation = self.directory / f"{_GENERATION_PREFIX}{run_id}"
        if generation.exists():
            return generation
        if not (pending / META_FILE).exists():
            raise CohortsyncError(
                f"run {run_id} has no new snapshot to commit for {self.key.describe()}",
                hint="run the export again; its snapshot files were removed",
            )
        meta = json.loads((pending / META_FILE).read_text())
        formats.snapshot_version(pending, meta)
        # A pending snapshot of the previous release is the same format, now marked.
        meta = formats.stamp_snapshot(meta)
        meta["committed_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        _write_meta(pending / META_FILE, meta)
        with disk.writing(generation, formats.SNAPSHOT_WHAT):
            os.rename(pending, generation)
        disk.fsync(self.directory, formats.SNAPSHOT_WHAT)
        return generation

    def pending_meta(self, run_id: str) -> dict[str, Any] | None:
        """The meta of the pending snapshot of ``run_id`` (or of its generation once committed)."""
        for name in (f"{_PENDING_PREFIX}{run_id}", f"{_GENERATION_PREFIX}{run_id}"):
            try:
                meta: dict[str, Any] = json.loads((self.directory / name / META_FILE).read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                continue
            return meta
        return None

    def discard_pending(self, run_id: str) -> None:
        """Drop the pending snapshot of a run that will never commit (failed, superseded)."""
        shutil.rmtree(self.directory / f"{_PENDING_PREFIX}{run_id}", ignore_errors=True)

    def _remove_stale(self, *, keep: str) -> None:
        """Remove older generations; pending ones of other runs stay until those runs end."""
        for path in self.directory.iterdir():
            if path.name.startswith(_GENERATION_PREFIX) and path.name != keep:
                shutil.rmtree(path, ignore_errors=True)


def _write_meta(path: Path, meta: Mapping[str, Any]) -> None:
    """Replace a generation's ``meta.json`` atomically (:func:`disk.replace_atomically`)."""
    text = json.dumps(meta, indent=2, sort_keys=True)
    disk.replace_atomically(path, text.encode(), formats.SNAPSHOT_WHAT)
