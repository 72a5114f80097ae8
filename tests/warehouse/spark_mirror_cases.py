"""A mirror whose source is Spark (``spark+local://``) diffs inside Spark.

Collected through ``test_spark_engine.py``, which imports these tests, so that
they run on the worker of the other Spark tests and share its one Spark
session (the ``spark_session`` fixture): a JVM per module would cost seconds
each. The exports run in this process (``run_cli_in_process``) against a real
partner API server on 127.0.0.1, on real Parquet tables.

The properties are those of the PostgreSQL mirror
(``tests/warehouse_mirror/test_warehouse_mirror_durability.py``) on fewer
examples (four, of up to three runs: a Spark run costs seconds): random
result sequences with stops, resumes and abandoned runs converge, and no
foreign member is removed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cohortsync.export.snapshots import CohortKey, SnapshotStore
from cohortsync.export.spec import MirrorOptions, Source
from cohortsync.export.warehouse_mirror import WarehouseMirror
from cohortsync.warehouse import open_engine
from export.conftest import partner
from export.partner_server import PartnerServer
from runs.runs_helpers import export_args, membership, received
from support.cli import run_cli_in_process
from support.mirror_model import KINDS, Step, identifiers, steps
from warehouse_mirror.sequence import play_in_warehouse

__all__ = ["partner"]

URL = "spark+local://"
QUERY = "SELECT user_ids FROM t"
OURS = identifiers("v", 6)
FOREIGN = identifiers("foreign", 3)


def users(start: int, stop: int) -> set[tuple[str, str]]:
    return {("user_ids", f"u{i:05}") for i in range(start, stop)}


@pytest.fixture
def spark_home(spark_session: object, home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The home reads its warehouse from Spark and mirrors inside it."""
    monkeypatch.setenv("COHORTSYNC_WAREHOUSE", URL)
    return home


def load(home: Path, table: str, columns: dict[str, list[str | None]]) -> None:
    """Table ``table`` of the home's Spark warehouse holds exactly ``columns``."""
    path = home / f"{table}.parquet"
    pq.write_table(
        pa.table({name: pa.array(values, pa.string()) for name, values in columns.items()}), path
    )
    with open_engine(URL) as engine:
        engine.load(table, path, allow_empty=True)


def load_users(home: Path, start: int, stop: int) -> None:
    load(home, "t", {"user_ids": [f"u{i:05}" for i in range(start, stop)]})


def mirror(partner: PartnerServer, *args: str, query: str = QUERY) -> Any:
    """``cohortsync export --operation mirror --json --query QUERY``, in this process."""
    command = export_args(partner, "--json", *args)
    at = command.index("--table")
    command[at : at + 2] = ["--query", query]
    return run_cli_in_process(*command, expect=None)


def snapshot_dir(home: Path) -> Path:
    return home / "spark" / "warehouse" / "cohortsync.db"


def snapshot_tables(home: Path) -> list[str]:
    directory = snapshot_dir(home)
    return sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []


def members_of(home: Path, table: str) -> set[tuple[str, str]]:
    """The rows of a snapshot table, read from its live version's Parquet files."""
    table_dir = snapshot_dir(home) / table
    version = table_dir / (table_dir / "CURRENT").read_text().strip()
    rows = pq.read_table(version).to_pylist()
    return {(row["kind"], row["value"]) for row in rows}


def snapshot_members(home: Path) -> set[tuple[str, str]]:
    [table] = [name for name in snapshot_tables(home) if name.startswith("m_")]
    return members_of(home, table)


def test_spark_second_run_transfers_and_sends_only_the_changes(
    spark_home: Path, partner: PartnerServer
) -> None:
    load_users(spark_home, 0, 2_000)
    first = mirror(partner)
    assert first.returncode == 0, first.stderr
    report = orjson.loads(first.stdout)["mirror"]
    assert report["first_run"] is True
    assert report["diff"] == {
        "where": "warehouse",
        "engine": "spark",
        "schema": "cohortsync",
        "rows_transferred": 2_000,
    }
    assert membership(partner) == users(0, 2_000)
    old_tables = snapshot_tables(spark_home)
    assert len(old_tables) == 2
    assert snapshot_members(spark_home) == users(0, 2_000)

    load_users(spark_home, 20, 2_020)  # 1% churn
    before = received(partner)
    second = mirror(partner)
    assert second.returncode == 0, second.stderr
    report = orjson.loads(second.stdout)
    assert (report["mirror"]["entries"], report["mirror"]["exits"]) == (20, 20)
    assert report["mirror"]["diff"]["rows_transferred"] == 40
    assert report["rows_read"] == 2_000
    assert sum((received(partner) - before).values()) == 40
    assert membership(partner) == users(20, 2_020)
    assert snapshot_members(spark_home) == users(20, 2_020)
    tables = snapshot_tables(spark_home)
    assert len(tables) == 2 and not set(tables) & set(old_tables)  # the old pair dropped


def test_spark_mirror_of_a_table_by_name(spark_home: Path, partner: PartnerServer) -> None:
    """``--table t`` reads the table in Spark's quoting (backticks), as a query would."""
    load_users(spark_home, 0, 300)
    done = run_cli_in_process(*export_args(partner, "--json"), expect=None)
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout)["rows_read"] == 300
    assert membership(partner) == users(0, 300)


def test_spark_guard_refuses_and_nothing_is_sent_or_written(
    spark_home: Path, partner: PartnerServer
) -> None:
    load_users(spark_home, 0, 1_000)
    assert mirror(partner).returncode == 0
    tables = snapshot_tables(spark_home)
    requests = len(partner.requests)
    load_users(spark_home, 600, 1_000)
    refused = mirror(partner)
    assert refused.returncode == 1, refused.stderr
    assert "would remove 600 of its 1,000 tracked members (60.0%)" in refused.stderr
    assert len(partner.requests) == requests
    assert snapshot_tables(spark_home) == tables
    assert snapshot_members(spark_home) == users(0, 1_000)


def test_spark_dry_run_writes_nothing(spark_home: Path, partner: PartnerServer) -> None:
    load_users(spark_home, 0, 500)
    dry = mirror(partner, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    plan = orjson.loads(dry.stdout)["plan"]
    assert plan["adds"] == 500
    assert plan["mirror"]["diff"]["rows_transferred"] == 500
    assert not snapshot_dir(spark_home).exists()  # not even the database
    assert not list(spark_home.glob("snapshots/*/*"))
    assert partner.requests == []


def test_spark_refuses_a_query_that_is_not_one_read_only_statement(
    spark_home: Path, partner: PartnerServer
) -> None:
    load_users(spark_home, 0, 10)
    for query in ("DROP TABLE t", "SELECT user_ids FROM t; SELECT 1", "CACHE TABLE t"):
        refused = mirror(partner, query=query)
        assert refused.returncode == 3, (query, refused.stderr)
        assert "Traceback" not in refused.stderr
    assert partner.requests == []
    assert not snapshot_dir(spark_home).exists()
    with open_engine(URL) as engine:
        assert engine.count("SELECT * FROM t") == 10


def test_spark_parquet_snapshot_moves_into_the_warehouse(
    spark_home: Path, partner: PartnerServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_users(spark_home, 0, 1_000)
    monkeypatch.setenv("COHORTSYNC_MIRROR_DIFF", "local")
    local = mirror(partner)
    assert local.returncode == 0, local.stderr
    assert "diff" not in orjson.loads(local.stdout)["mirror"]
    [generation] = spark_home.glob("snapshots/*/gen-*")
    assert (generation / "members.parquet").exists()

    monkeypatch.setenv("COHORTSYNC_MIRROR_DIFF", "auto")
    load_users(spark_home, 100, 1_100)
    moved = mirror(partner)
    assert moved.returncode == 0, moved.stderr
    report = orjson.loads(moved.stdout)["mirror"]
    assert report["diff"]["where"] == "warehouse"
    assert (report["previous_members"], report["entries"], report["exits"]) == (1_000, 100, 100)
    assert membership(partner) == users(100, 1_100)
    assert snapshot_members(spark_home) == users(100, 1_100)
    [generation] = spark_home.glob("snapshots/*/gen-*")
    meta = orjson.loads((generation / "meta.json").read_bytes())
    assert meta["format_version"] == 2
    assert meta["warehouse"]["engine"] == "spark"
    assert not (generation / "members.parquet").exists()


def test_spark_resumed_commit_keeps_the_tables_it_finds_complete(spark_home: Path) -> None:
    """A commit that died after writing both tables, before naming them: the next keeps them.

    The crash is a failure of the snapshot store's commit, raised by the test
    (the one fault injected: nothing else is replaced).
    """
    load_users(spark_home, 0, 50)
    store = SnapshotStore(
        spark_home, CohortKey.for_destination("http://127.0.0.1:1", "k", "treasuredata", "resume")
    )
    run_id = "20261203T000000-0001"

    def planner() -> WarehouseMirror:
        return WarehouseMirror(
            store,
            run_id,
            MirrorOptions(),
            plan_path=spark_home / "runs" / run_id / "changes.parquet",
            alias_label=None,
            warehouse_url=URL,
            schema="cohortsync",
        )

    first = planner()
    first.prepare(Source(sql=QUERY), skip_invalid=False)
    real_commit = store.commit

    def crash(_run_id: str) -> None:
        raise KeyboardInterrupt  # the process dies here

    store.commit = crash  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        first.commit()
    store.commit = real_commit  # type: ignore[method-assign]
    assert store.current() is None  # not named yet
    members_dir = snapshot_dir(spark_home) / first.members_table
    exits_dir = snapshot_dir(spark_home) / first.exits_table
    pointer = (members_dir / "CURRENT").read_text()
    (exits_dir / "CURRENT").unlink()  # as if it died while Spark wrote the exits table
    [half_written] = exits_dir.glob("v-*")

    planner().commit()
    current = store.current()
    assert current is not None and current.run_id == run_id
    assert (members_dir / "CURRENT").read_text() == pointer  # kept, not rebuilt
    [rewritten] = exits_dir.glob("v-*")
    assert rewritten != half_written
    assert (exits_dir / "CURRENT").read_text().strip() == rewritten.name
    assert members_of(spark_home, first.members_table) == users(0, 50)
    assert members_of(spark_home, first.exits_table) == set()


def load_result(home: Path, result: frozenset[tuple[str, str]]) -> None:
    """Table ``result``: one row per identifier, in the column of its kind."""
    ordered = sorted(result)
    columns = {"user_ids": "user_ids", "device_ids": "device_ids", "alias": "email"}
    load(
        home,
        "result",
        {
            columns[kind]: [value if own == kind else None for own, value in ordered]
            for kind in KINDS
        },
    )


@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    foreign=st.frozensets(st.sampled_from(FOREIGN)),
    runs=st.lists(steps(OURS, batches=8), min_size=1, max_size=3),
)
def test_spark_mirror_converges_and_spares_foreign_members(
    spark_home: Path, foreign: frozenset[tuple[str, str]], runs: list[Step]
) -> None:
    play_in_warehouse(
        runs,
        foreign,
        warehouse_url=URL,
        schema="cohortsync",
        source=Source(sql="SELECT user_ids, device_ids, email FROM result"),
        load_result=lambda result: load_result(spark_home, result),
        members_of=lambda table: members_of(spark_home, table),
    )
