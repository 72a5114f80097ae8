"""The mirror diff on real Parquet files and DuckDB: entries, exits, guards, full resync."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from mirror_helpers import read_identifiers, write_identifiers

from cohortsync.errors import CohortsyncError, ConfigError
from cohortsync.export.mirror import DuckDBResult, MirrorPlan, ParquetResult, plan_mirror
from cohortsync.export.snapshots import CohortKey, Snapshot, SnapshotStore
from cohortsync.export.spec import MirrorOptions
from support.mirror_model import read_changes

KEY = CohortKey.for_destination("http://127.0.0.1:1", "secret-key", "treasuredata", "vip")


def users(*values: str) -> set[tuple[str, str]]:
    return {("user_ids", value) for value in values}


class Cohort:
    """Runs mirror plans for one cohort key and commits them like a finished run would."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.store = SnapshotStore(root / "home", KEY)
        self.runs = 0

    def plan(
        self,
        result: set[tuple[str, str]],
        options: MirrorOptions | None = None,
        *,
        dry_run: bool = False,
        alias_label: str | None = None,
        abandoned: tuple[Path, ...] = (),
    ) -> MirrorPlan:
        self.runs += 1
        run_id = f"r{self.runs}"
        source = write_identifiers(self.root / f"result-{run_id}.parquet", sorted(result))
        return plan_mirror(
            ParquetResult.of(source),
            self.store.current(),
            work_dir=self.root / "work" / run_id,
            options=options or MirrorOptions(),
            changes_path=None if dry_run else self.root / f"changes-{run_id}.parquet",
            snapshot_dir=None if dry_run else self.store.pending_dir(run_id),
            alias_label=alias_label,
            cohort="cohort 'vip'",
            abandoned=abandoned,
        )

    def commit(self, plan: MirrorPlan, alias_label: str | None = None) -> Snapshot:
        run_id = f"r{self.runs}"
        self.store.write_pending_meta(
            run_id,
            members=plan.result_members,
            exits=plan.new_known_exits,
            alias_label=alias_label,
        )
        return self.store.commit(run_id)

    def sync(self, result: set[tuple[str, str]], **kwargs: object) -> MirrorPlan:
        plan = self.plan(result, **kwargs)  # type: ignore[arg-type]
        self.commit(plan, alias_label=kwargs.get("alias_label"))  # type: ignore[arg-type]
        return plan


@pytest.fixture
def cohort(tmp_path: Path) -> Cohort:
    return Cohort(tmp_path)


def test_first_run_adds_everyone_in_batch_order(cohort: Cohort) -> None:
    result = users("u3", "u1", "u2") | {("device_ids", "d1"), ("alias", "a@x.io")}
    plan = cohort.plan(result)
    assert plan.first_run
    assert (plan.entries, plan.exits, plan.adds, plan.removes) == (5, 0, 5, 0)
    assert plan.changes_path is not None
    assert read_changes(plan.changes_path) == [
        ("alias", "a@x.io", False),
        ("device_ids", "d1", False),
        ("user_ids", "u1", False),
        ("user_ids", "u2", False),
        ("user_ids", "u3", False),
    ]
    assert plan.snapshot_dir is not None
    assert read_identifiers(plan.snapshot_dir / "members.parquet") == result


def test_later_runs_send_only_entries_and_exits_per_kind(cohort: Cohort) -> None:
    cohort.sync(users("u1", "u2", "u3") | {("device_ids", "d1"), ("device_ids", "d2")})
    plan = cohort.plan(users("u1", "u2", "u4") | {("device_ids", "d1"), ("alias", "a@x.io")})
    assert not plan.first_run
    assert (plan.entries, plan.exits, plan.unchanged) == (2, 2, 3)
    assert plan.changes_path is not None
    assert read_changes(plan.changes_path) == [
        ("alias", "a@x.io", False),
        ("user_ids", "u4", False),
        ("device_ids", "d2", True),
        ("user_ids", "u3", True),
    ]
    assert plan.by_kind["user_ids"].entries == 1
    assert plan.by_kind["user_ids"].exits == 1
    assert plan.by_kind["device_ids"].previous == 2
    assert plan.by_kind["alias"].result == 1


def test_a_run_with_no_change_sends_nothing(cohort: Cohort) -> None:
    result = users(*(f"u{i}" for i in range(50)))
    cohort.sync(result)
    plan = cohort.plan(result)
    assert (plan.adds, plan.removes) == (0, 0)
    assert plan.changes_path is not None
    assert read_changes(plan.changes_path) == []


def test_the_same_value_under_two_kinds_is_two_identifiers(cohort: Cohort) -> None:
    cohort.sync({("user_ids", "x"), ("device_ids", "x")})
    plan = cohort.plan({("user_ids", "x"), ("alias", "x")})
    assert plan.changes_path is not None
    assert read_changes(plan.changes_path) == [("alias", "x", False), ("device_ids", "x", True)]


def test_empty_result_fails_with_the_numbers(cohort: Cohort) -> None:
    cohort.sync(users("u1", "u2", "u3"))
    with pytest.raises(
        CohortsyncError,
        match="the query returned no identifiers, so the sync would remove all 3 tracked members",
    ) as caught:
        cohort.plan(set())
    message = str(caught.value)
    assert "no identifiers" in message
    assert "all 3 tracked members" in message
    assert "--allow-empty" in message


def test_empty_first_result_fails_too(cohort: Cohort) -> None:
    with pytest.raises(CohortsyncError, match="--allow-empty"):
        cohort.plan(set())


def test_allow_empty_empties_the_cohort(cohort: Cohort) -> None:
    cohort.sync(users("u1", "u2", "u3"))
    plan = cohort.plan(set(), MirrorOptions(allow_empty=True))
    assert (plan.adds, plan.removes) == (0, 3)
    assert plan.changes_path is not None
    assert {value for _, value, remove in read_changes(plan.changes_path) if remove} == {
        "u1",
        "u2",
        "u3",
    }


def test_removing_more_than_the_share_fails_with_the_numbers(cohort: Cohort) -> None:
    cohort.sync(users(*(f"u{i:02}" for i in range(10))))
    with pytest.raises(
        CohortsyncError, match=r"would remove 6 of its 10 tracked members \(60\.0%\)"
    ) as caught:
        cohort.plan(users("u00", "u01", "u02", "u03"))
    message = str(caught.value)
    assert "remove 6 of its 10 tracked members (60.0%)" in message
    assert "--max-remove-pct 50" in message
    assert "--max-remove-pct 60 or higher" in message
    assert not (cohort.root / "changes-r2.parquet").exists()


def test_removal_share_at_the_limit_passes_and_a_raised_limit_lets_more_through(
    cohort: Cohort,
) -> None:
    cohort.sync(users(*(f"u{i:02}" for i in range(10))))
    at_limit = cohort.plan(users(*(f"u{i:02}" for i in range(5))))
    assert at_limit.exits == 5
    raised = cohort.plan(users("u00"), MirrorOptions(max_remove_pct=90))
    assert raised.exits == 9


def test_full_resync_resends_every_member_and_every_known_exit(cohort: Cohort) -> None:
    cohort.sync(users("u1", "u2", "u3", "u4"))
    cohort.sync(users("u1", "u2", "u3"))  # u4 leaves: a known exit
    cohort.sync(users("u1", "u2", "u5"))  # u3 leaves, u5 enters
    plan = cohort.plan(users("u1", "u2", "u5", "u6"), MirrorOptions(full_resync=True))
    assert plan.full_resync
    assert (plan.entries, plan.exits) == (1, 0)
    assert (plan.adds, plan.removes) == (4, 2)
    assert plan.changes_path is not None
    assert read_changes(plan.changes_path) == [
        ("user_ids", "u1", False),
        ("user_ids", "u2", False),
        ("user_ids", "u5", False),
        ("user_ids", "u6", False),
        ("user_ids", "u3", True),
        ("user_ids", "u4", True),
    ]


def test_an_exit_that_comes_back_is_no_longer_a_known_exit(cohort: Cohort) -> None:
    cohort.sync(users("u1", "u2"))
    cohort.sync(users("u1"))
    cohort.sync(users("u1", "u2"))
    plan = cohort.plan(users("u1", "u2"), MirrorOptions(full_resync=True))
    assert (plan.adds, plan.removes) == (2, 0)


def test_dry_run_writes_nothing_and_shows_the_first_identifiers(cohort: Cohort) -> None:
    cohort.sync(users(*(f"u{i:02}" for i in range(20))))
    plan = cohort.plan(users(*(f"u{i:02}" for i in range(8, 30))), dry_run=True)
    assert (plan.entries, plan.exits) == (10, 8)
    assert plan.sample_adds == tuple(("user_ids", f"u{i}") for i in range(20, 25))
    assert plan.sample_removes == tuple(("user_ids", f"u{i:02}") for i in range(5))
    assert plan.changes_path is None
    assert not any(cohort.store.directory.glob("pending-r2/*.parquet"))
    assert plan.to_dict()["sample_adds"][0] == ["user_ids", "u20"]


def test_a_changed_alias_label_is_refused(cohort: Cohort) -> None:
    cohort.sync({("alias", "a@x.io")}, alias_label="email")
    with pytest.raises(ConfigError, match="'email'"):
        cohort.plan({("alias", "+33600")}, alias_label="phone")


def test_abandoned_run_changes_are_sent_again_when_uncertain(cohort: Cohort) -> None:
    cohort.sync(users("u1", "u2", "u3"))
    stopped = cohort.plan(users("u1", "u2", "u4"))  # +u4 -u3, maybe applied, never committed
    assert stopped.changes_path is not None
    plan = cohort.plan(users("u1", "u3"), abandoned=(stopped.changes_path,))
    # u3 may have been removed: add it again; u4 may have been added: remove it.
    assert plan.changes_path is not None
    assert read_changes(plan.changes_path) == [
        ("user_ids", "u3", False),
        ("user_ids", "u2", True),
        ("user_ids", "u4", True),
    ]


def test_reads_the_staged_result_from_a_duckdb_file(tmp_path: Path) -> None:
    staged = tmp_path / "staged.duckdb"
    with duckdb.connect(str(staged)) as con:
        con.execute(
            "CREATE TABLE identifiers AS SELECT * FROM (VALUES "
            "('user_ids', 'u1'), ('device_ids', 'd1')) t(kind, value)"
        )
    plan = plan_mirror(
        DuckDBResult(staged, "identifiers"),
        None,
        work_dir=tmp_path / "work",
        changes_path=tmp_path / "changes.parquet",
        snapshot_dir=tmp_path / "snapshot",
    )
    assert read_changes(tmp_path / "changes.parquet") == [
        ("device_ids", "d1", False),
        ("user_ids", "u1", False),
    ]
    assert plan.result_members == 2
    assert not (tmp_path / "work" / "mirror-scratch.duckdb").exists()


def test_diff_spills_to_disk_beyond_its_memory_limit(tmp_path: Path) -> None:
    """Half a million long identifiers (about 30 MB of strings) under a 32 MB memory limit."""
    with duckdb.connect() as con:
        padded = "'user-' || repeat('x', 40) || i::VARCHAR"
        con.execute(
            f"COPY (SELECT 'user_ids' AS kind, {padded} AS value FROM range(500000) t(i)) "
            f"TO '{tmp_path / 'base.parquet'}'"
        )
        con.execute(
            f"COPY (SELECT 'user_ids' AS kind, {padded} AS value FROM range(1000, 501000) t(i)) "
            f"TO '{tmp_path / 'result.parquet'}'"
        )
    store = SnapshotStore(tmp_path / "home", KEY)
    first = plan_mirror(
        ParquetResult.of(tmp_path / "base.parquet"),
        None,
        work_dir=tmp_path / "work",
        changes_path=tmp_path / "c1.parquet",
        snapshot_dir=store.pending_dir("r1"),
    )
    store.write_pending_meta("r1", members=first.result_members, exits=0, alias_label=None)
    store.commit("r1")
    plan = plan_mirror(
        ParquetResult.of(tmp_path / "result.parquet"),
        store.current(),
        work_dir=tmp_path / "work",
        changes_path=tmp_path / "c2.parquet",
        snapshot_dir=store.pending_dir("r2"),
        memory_limit="32MB",
        threads=1,
    )
    assert (plan.entries, plan.exits) == (1000, 1000)
    changes = read_changes(tmp_path / "c2.parquet")
    assert changes == sorted(changes, key=lambda change: (change[2], change[0], change[1]))


def test_duplicate_rows_are_one_identifier_when_asked_to_deduplicate(tmp_path: Path) -> None:
    source = write_identifiers(tmp_path / "r.parquet", [("user_ids", "u1")] * 3)
    plan = plan_mirror(ParquetResult.of(source), None, work_dir=tmp_path / "w", distinct=True)
    assert plan.adds == 1
