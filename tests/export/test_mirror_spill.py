"""A mirror export diffs under its memory limit whatever the size of the result.

The mirror diffed the staged result against its snapshot in one statement, a
full outer join over ``(kind, value)`` of every identifier: at ten million
rows of three identifier kinds it ran out of its 128 MB limit on the second
run. It now diffs kind by kind, in ``hash(value)`` passes when a kind is
large, and sorts the changes one ``(should_remove, kind)`` group at a time.
These tests run the same code with a deliberately tiny memory limit and pass
size, so the multi-pass path is exercised on a small table.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from cohortsync.export import mirror, staging
from cohortsync.export.mirror import MirrorStep
from cohortsync.export.plan import Plan
from cohortsync.export.run import prepare
from cohortsync.export.snapshots import CohortKey, SnapshotStore
from cohortsync.export.spec import Destination, ExportSpec, Source
from cohortsync.settings import Settings

ROWS = 600_000
CHURN = 3_000  # the second result drops the first CHURN rows and adds as many new ones
TINY_MEMORY = "48MB"
PASS_VALUES = 200_000
KEY = CohortKey.for_destination("http://127.0.0.1:9", "dik", "treasuredata", "c")


def table(name: str, start: int, stop: int) -> str:
    return f"""
        CREATE TABLE {name} AS
        SELECT 'user-' || lpad(i::VARCHAR, 12, '0') AS user_ids,
               md5(i::VARCHAR) AS device_ids,
               'person' || i::VARCHAR || '@example.com' AS email
        FROM range({start}, {stop}) t(i) ORDER BY hash(i)
    """


def values(kind: str, start: int, stop: int) -> set[str]:
    if kind == "user_ids":
        return {f"user-{i:012d}" for i in range(start, stop)}
    if kind == "device_ids":
        with duckdb.connect() as connection:
            rows = connection.execute(
                f"SELECT md5(i::VARCHAR) FROM range({start}, {stop}) t(i)"
            ).fetchall()
        return {value for (value,) in rows}
    return {f"person{i}@example.com" for i in range(start, stop)}


@pytest.fixture
def tiny_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Staging and mirror databases far too small for one join over every identifier."""
    monkeypatch.setattr(staging, "STAGING_MEMORY_LIMIT", TINY_MEMORY)
    monkeypatch.setattr(staging, "PASS_VALUES", PASS_VALUES)
    monkeypatch.setattr(staging, "PASS_BYTES", 4 * 1024 * 1024)
    monkeypatch.setattr(mirror, "DEFAULT_MEMORY_LIMIT", TINY_MEMORY)
    monkeypatch.setattr(mirror, "PASS_VALUES", PASS_VALUES)
    monkeypatch.setattr(mirror, "PASS_BYTES", 4 * 1024 * 1024)


def run_mirror(home: Path, tmp_path: Path, source: str, run_id: str) -> tuple[Plan, MirrorStep]:
    """Stage and plan one mirror run, as ``cohortsync export`` does, and commit its snapshot."""
    destination = Destination(
        endpoint="http://127.0.0.1:9", data_import_key="dik", partner_api_key="pk"
    )
    spec = ExportSpec(
        source=Source(table=source),
        destination=destination,
        cohort_id="c",
        alias_column="email",
        operation="mirror",
    )
    step = MirrorStep(SnapshotStore(home, KEY), run_id, spec.mirror, alias_label="email")
    plan = prepare(spec, Settings(), tmp_path / run_id, planner=step).planned.plan
    step.commit()
    return plan, step


def test_one_join_over_every_kind_does_not_fit_the_tiny_limit(tmp_path: Path) -> None:
    """The failure this guards against: the former single-statement diff."""
    with duckdb.connect(
        str(tmp_path / "m.duckdb"), config={"threads": 2, "temp_directory": str(tmp_path)}
    ) as connection:
        # The snapshot's members and the staged result, as the mirror reads them.
        for name, start in (("before", 0), ("after", CHURN)):
            connection.execute(table(name, start, start + ROWS))
            connection.execute(
                "COPY (SELECT kind, value FROM ("
                "SELECT unnest(['user_ids', 'device_ids', 'alias']) AS kind, "
                f"unnest([user_ids, device_ids, email]) AS value FROM {name}) ORDER BY kind) "
                f"TO '{tmp_path / name}.parquet' (FORMAT parquet, COMPRESSION zstd)"
            )
        connection.execute(f"SET memory_limit = '{TINY_MEMORY}'")
        connection.execute("SET preserve_insertion_order = false")
        with pytest.raises(duckdb.OutOfMemoryException, match="Out of Memory Error"):
            connection.execute(
                f"SELECT count(*) FROM read_parquet('{tmp_path / 'after'}.parquet') r "
                f"FULL OUTER JOIN read_parquet('{tmp_path / 'before'}.parquet') p "
                "ON r.kind = p.kind AND r.value = p.value "
                "WHERE r.kind IS NULL OR p.kind IS NULL"
            ).fetchall()


@pytest.mark.usefixtures("tiny_limits")
def test_mirror_diffs_in_passes_under_a_tiny_memory_limit(home: Path, tmp_path: Path) -> None:
    with duckdb.connect(str(home / "warehouse.duckdb")) as connection:
        connection.execute(table("before", 0, ROWS))
        connection.execute(table("after", CHURN, ROWS + CHURN))
    first, first_step = run_mirror(home, tmp_path, "before", "r1")
    assert first_step.plan is not None and first_step.plan.first_run
    assert first.total == 3 * ROWS
    assert first.by_kind() == {"alias": ROWS, "device_ids": ROWS, "user_ids": ROWS}

    plan, step = run_mirror(home, tmp_path, "after", "r2")
    diff = step.plan
    assert diff is not None and not diff.first_run
    assert (diff.result_members, diff.previous_members) == (3 * ROWS, 3 * ROWS)
    assert (diff.entries, diff.exits, diff.new_known_exits) == (3 * CHURN, 3 * CHURN, 3 * CHURN)
    for counts in diff.by_kind.values():
        assert (counts.result, counts.previous, counts.entries, counts.exits) == (
            ROWS,
            ROWS,
            CHURN,
            CHURN,
        )
    assert plan.total == 6 * CHURN
    changes = pq.read_table(plan.path, columns=["kind", "value", "should_remove"]).to_pylist()
    keys = [(row["should_remove"], row["kind"], row["value"]) for row in changes]
    assert keys == sorted(keys)  # the batch order: (should_remove, kind, value)
    for kind in ("alias", "device_ids", "user_ids"):
        adds = {row["value"] for row in changes if row["kind"] == kind and not row["should_remove"]}
        removes = {row["value"] for row in changes if row["kind"] == kind and row["should_remove"]}
        assert adds == values(kind, ROWS, ROWS + CHURN)
        assert removes == values(kind, 0, CHURN)
    snapshot = SnapshotStore(home, KEY).current()
    assert snapshot is not None
    members = pq.read_table(snapshot.members_path)
    assert members.num_rows == 3 * ROWS
    assert pq.read_table(snapshot.exits_path).num_rows == 3 * CHURN
    assert not (tmp_path / "r2" / "staging.duckdb").exists()
