"""Staging stays under its memory limit whatever the size of the result.

DuckDB's aggregation spills to disk, but the groups of one partition must fit
under the memory limit when it is finalised: deduplicating every kind in one
``GROUP BY (kind, value)`` ran out of memory at 100 MB on ten million rows of
three identifier kinds. Staging now deduplicates kind by kind, in
hash-partitioned passes when a kind is large, and writes the plan without a
sort. These tests run the same code with a deliberately tiny memory limit
and pass size, so the multi-pass path is exercised on a small table.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from cohortsync.export import staging
from cohortsync.export.identifiers import KINDS
from cohortsync.export.report import ExportReport
from cohortsync.export.run import prepare
from cohortsync.export.spec import Destination, ExportSpec, Source
from cohortsync.settings import Settings

ROWS = 1_100_000
DISTINCT = 1_000_000  # every kind repeats 100,000 of its values
TINY_MEMORY = "32MB"
TABLE = f"""
    CREATE TABLE ids AS
    SELECT CASE WHEN i >= {DISTINCT} AND i % 1000 = 1 THEN NULL
                ELSE 'user-' || lpad((i % {DISTINCT})::VARCHAR, 12, '0') END AS user_ids,
           CASE WHEN i >= {DISTINCT} AND i % 1000 = 2 THEN ''
                ELSE md5((i % {DISTINCT})::VARCHAR) END AS device_ids,
           'person' || (i % {DISTINCT})::VARCHAR || '@example.com' AS email
    FROM range({ROWS}) t(i) ORDER BY hash(i)
"""
# Repeated rows 1 and 2 mod 1000 lose a value; the first row of that value still has it.
NULLS = (ROWS - DISTINCT) // 1000
EXPECTED = {"user_ids": DISTINCT, "device_ids": DISTINCT, "alias": DISTINCT}


@pytest.fixture
def tiny_staging(monkeypatch: pytest.MonkeyPatch) -> None:
    """A staging database far too small for one GROUP BY over every identifier."""
    monkeypatch.setattr(staging, "STAGING_MEMORY_LIMIT", TINY_MEMORY)
    monkeypatch.setattr(staging, "PASS_VALUES", 300_000)
    monkeypatch.setattr(staging, "PASS_BYTES", 4 * 1024 * 1024)


def spec_for(source: Source) -> ExportSpec:
    destination = Destination(
        endpoint="http://127.0.0.1:9", data_import_key="dik", partner_api_key="pk"
    )
    return ExportSpec(source=source, destination=destination, cohort_id="c", alias_column="email")


def check_plan(plan_path: Path, report: ExportReport) -> None:
    table = pq.read_table(plan_path, columns=["kind", "value", "should_remove"])
    kinds = table.column("kind").to_pylist()
    values = table.column("value").to_pylist()
    # Grouped by kind, in KINDS order, with no sort over all rows.
    runs = [kind for index, kind in enumerate(kinds) if index == 0 or kinds[index - 1] != kind]
    assert runs == [kind for kind in KINDS if kind in EXPECTED]
    for kind, count in EXPECTED.items():
        sent = [value for k, value in zip(kinds, values, strict=True) if k == kind]
        assert len(sent) == count
        assert len(set(sent)) == count
    assert set(table.column("should_remove").to_pylist()) == {False}
    assert "" not in values and None not in values
    data = report.to_dict()
    assert data["rows_read"] == ROWS
    assert data["skipped_by_kind"]["user_ids"]["null"] == NULLS
    assert data["skipped_by_kind"]["device_ids"]["empty"] == NULLS
    assert data["skipped"]["duplicate"] == 3 * ROWS - 2 * NULLS - 3 * DISTINCT


def test_one_group_by_over_every_kind_does_not_fit_the_tiny_limit(tmp_path: Path) -> None:
    """The failure this guards against: the former single-statement deduplication."""
    with duckdb.connect(
        str(tmp_path / "s.duckdb"), config={"threads": 2, "temp_directory": str(tmp_path)}
    ) as connection:
        connection.execute(TABLE)
        connection.execute(f"SET memory_limit = '{TINY_MEMORY}'")
        with pytest.raises(duckdb.OutOfMemoryException, match="Out of Memory Error"):
            connection.execute(
                "SELECT count(*) FROM (SELECT kind, value FROM ("
                "SELECT unnest([0, 1, 2]) AS kind, unnest([user_ids, device_ids, email]) AS value "
                "FROM ids) WHERE value IS NOT NULL AND value <> '' GROUP BY kind, value)"
            ).fetchall()


@pytest.mark.usefixtures("tiny_staging")
@pytest.mark.parametrize("path", ["pushdown", "stream"])
def test_staging_deduplicates_in_passes_under_a_tiny_memory_limit(
    home: Path, path: str, tmp_path: Path
) -> None:
    with duckdb.connect(str(home / "warehouse.duckdb")) as connection:
        connection.execute(TABLE)
    # A parameterised query streams Arrow batches; a plain one runs in the staging database.
    source = (
        Source(table="ids")
        if path == "pushdown"
        else Source(sql="SELECT * FROM ids WHERE ? = 1", params=(1,))
    )
    spec = spec_for(source)
    run_dir = tmp_path / "run"
    staged, planned = prepare(spec, Settings(), run_dir, dry_run=True)
    plan = planned.plan
    report = ExportReport.from_stages(
        spec, run_id=None, status="dry-run", dry_run=True, staged=staged, planned=planned
    )
    assert plan.total == 3 * DISTINCT
    assert plan.by_kind() == EXPECTED
    check_plan(plan.path, report)
    assert not (run_dir / "staging.duckdb").exists()  # staging cleans up after itself
