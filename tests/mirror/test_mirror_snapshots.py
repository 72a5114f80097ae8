"""The snapshot store: keys, atomic commits, crash recovery, no secrets on disk."""

from __future__ import annotations

from pathlib import Path

import pytest
from mirror_helpers import read_identifiers, write_identifiers

from cohortsync.errors import CohortsyncError
from cohortsync.export.snapshots import (
    CohortKey,
    SnapshotStore,
    key_fingerprint,
    normalize_endpoint,
)

SECRET = "0f8c5b6e-data-import-key-7d1a"


def key(**overrides: str) -> CohortKey:
    fields = {
        "endpoint": "https://rest.iad-01.braze.com",
        "data_import_key": SECRET,
        "partner": "treasuredata",
        "cohort_id": "vip",
    }
    fields.update(overrides)
    return CohortKey.for_destination(**fields)


def stage(store: SnapshotStore, run_id: str, members: set[tuple[str, str]]) -> None:
    pending = store.pending_dir(run_id)
    write_identifiers(pending / "members.parquet", sorted(members))
    write_identifiers(pending / "exits.parquet", [])
    store.write_pending_meta(run_id, members=len(members), exits=0, alias_label=None)


def test_each_part_of_the_key_makes_another_snapshot() -> None:
    slugs = {
        key().slug,
        key(endpoint="https://rest.fra-01.braze.eu").slug,
        key(data_import_key="another-key").slug,
        key(partner="other").slug,
        key(cohort_id="vip2").slug,
    }
    assert len(slugs) == 5
    assert key(endpoint="HTTPS://REST.iad-01.braze.com/").slug == key().slug
    assert normalize_endpoint("https://Rest.X.com/") == "https://rest.x.com"


def test_slug_is_safe_for_any_cohort_id() -> None:
    slug = key(cohort_id="../../etc/passwd vip/ü").slug
    assert "/" not in slug
    assert not slug.startswith(".")


def test_the_data_import_key_is_never_written(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, key())
    stage(store, "r1", {("user_ids", "u1")})
    store.commit("r1")
    assert SECRET not in store.directory.name
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert key_fingerprint(SECRET) in (store.current().directory / "meta.json").read_text()


def test_nothing_is_current_until_a_commit(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, key())
    assert store.current() is None
    stage(store, "r1", {("user_ids", "u1")})
    assert store.current() is None
    snapshot = store.commit("r1")
    assert snapshot.run_id == "r1"
    assert snapshot.members == 1
    assert read_identifiers(snapshot.members_path) == {("user_ids", "u1")}


def test_a_new_commit_replaces_the_previous_generation(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, key())
    stage(store, "r1", {("user_ids", "u1")})
    first = store.commit("r1")
    stage(store, "r2", {("user_ids", "u2")})
    stage(store, "r3", {("user_ids", "u3")})  # another run's pending snapshot stays
    second = store.commit("r2")
    assert store.current() == second
    assert not first.directory.exists()
    assert (store.directory / "pending-r3" / "members.parquet").exists()


def test_commit_finishes_after_a_crash_between_rename_and_pointer(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, key())
    stage(store, "r1", {("user_ids", "u1")})
    store.commit("r1")
    stage(store, "r2", {("user_ids", "u2")})
    store._promote("r2")  # a crash here: the generation is in place, CURRENT still r1
    assert store.current().run_id == "r1"
    assert store.has_pending("r2")
    snapshot = store.commit("r2")
    assert snapshot.run_id == "r2"
    assert store.commit("r2") == snapshot  # idempotent


def test_commit_without_a_complete_pending_snapshot_fails(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, key())
    store.pending_dir("r1")  # written half-way: no meta.json
    assert not store.has_pending("r1")
    with pytest.raises(CohortsyncError, match="no new snapshot"):
        store.commit("r1")


def test_a_damaged_snapshot_is_reported(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, key())
    stage(store, "r1", {("user_ids", "u1")})
    store.commit("r1")
    (store.directory / "gen-r1" / "meta.json").write_text("{")
    with pytest.raises(CohortsyncError, match="damaged"):
        store.current()


def test_discard_pending(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, key())
    stage(store, "r1", {("user_ids", "u1")})
    store.discard_pending("r1")
    assert not store.has_pending("r1")
