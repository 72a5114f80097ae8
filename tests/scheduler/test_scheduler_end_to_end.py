"""End to end: 100,000 customers, a segment, a scheduled mirror activation, two ticks.

Everything is real: the DuckDB warehouse, the catalog set up by ``apply``,
the scheduler (on a controlled clock), the export over HTTP and the
receiving service. After each tick the cohort in the service must equal the
segment as the warehouse computes it.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from scheduler_helpers import Clock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "queries"))

from workbench_helpers import Workbench, make_workbench

from cohortsync.apply import apply_file
from cohortsync.scheduler import Scheduler
from cohortsync.settings import Settings

CUSTOMERS = 100_000
SEGMENT_SQL = "SELECT external_id FROM customers WHERE tier = 'gold' AND score >= 20"

DEFINITIONS = """\
parents:
  - name: customers
    table: customers
    key: external_id
segments:
  - name: loyal_gold
    parent: customers
    rules:
      and:
        - {column: tier, op: "=", value: gold}
        - {column: score, op: ">=", value: 20}
activations:
  - name: loyal_gold_hourly
    segment: loyal_gold
    auth: sandbox
    cohort_id: loyal-gold
    cohort_name: Loyal gold customers
    operation: mirror
    mapping: [external_id=user_ids]
    threads: 4
    mirror: {max_remove_pct: 90}
    schedule: "0 * * * *"
"""


def segment_now(bench: Workbench) -> list[str]:
    with duckdb.connect(str(bench.warehouse_path), read_only=True) as connection:
        return sorted(row[0] for row in connection.execute(SEGMENT_SQL).fetchall())


@pytest.mark.slow
def test_scheduled_mirror_activation_keeps_the_cohort_equal_to_the_segment(
    home: Path, braze_sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COHORTSYNC_PARTNER_API_KEY", braze_sandbox.partner_api_key)
    bench = make_workbench(home, braze_sandbox)
    bench.sql(
        "CREATE TABLE customers AS SELECT 'c' || i AS external_id, "
        "CASE WHEN i % 4 = 0 THEN 'gold' ELSE 'silver' END AS tier, "
        f"(i * 7919) % 100 AS score FROM range(1, {CUSTOMERS + 1}) t(i)"
    )
    braze_sandbox.load_users({"external_id": f"c{i}"} for i in range(1, CUSTOMERS + 1))

    definitions = tmp_path / "cohortsync.yaml"
    definitions.write_text(DEFINITIONS)
    assert apply_file(definitions).changed  # scheduled now, on the real clock
    clock = Clock(datetime.now(UTC).replace(tzinfo=None).isoformat())
    first_slot = clock.now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)

    with Scheduler(Settings(), clock=clock) as scheduler:
        assert scheduler.run_once() == []  # nothing due before the next full hour

        clock.now = first_slot + timedelta(seconds=5)
        [first] = scheduler.run_once()
        assert first.result.status == "succeeded", first.result.error
        expected = segment_now(bench)
        assert len(expected) > 15_000
        assert bench.members("loyal-gold") == expected

        # The warehouse moves on: some leave the segment, others enter it.
        bench.sql(
            "UPDATE customers SET tier = 'silver' WHERE external_id IN "
            "(SELECT external_id FROM customers WHERE tier = 'gold' LIMIT 3000)"
        )
        bench.sql(
            "UPDATE customers SET tier = 'gold', score = 50 WHERE external_id IN "
            "(SELECT external_id FROM customers WHERE tier = 'silver' LIMIT 2000)"
        )
        clock.now = first_slot + timedelta(minutes=59)
        assert scheduler.run_once() == []  # not due before the following hour

        clock.now = first_slot + timedelta(hours=1, seconds=1)
        [second] = scheduler.run_once()
        assert second.result.status == "succeeded", second.result.error
        assert second.result.report is not None
        assert second.result.report["sent_total"] < 6_000  # only who entered or left
        expected_after = segment_now(bench)
        assert expected_after != expected
        assert bench.members("loyal-gold") == expected_after
