"""Decide what one run sends, and write it down in a stable order.

The plan is a Parquet file of ``(kind, value, should_remove)`` rows ordered by
``(should_remove, kind, value)``. Batch number ``n`` is rows
``[n * 1000, (n + 1) * 1000)`` of that file, so batch numbers mean the same
thing on every read and a resumed run sends exactly the batches that were
never acknowledged.

:func:`changes_sql` is the seam between "what the source holds" and "what to
send": ``add`` and ``remove`` send the staged identifiers as they are; an
operation that diffs against an earlier snapshot (``mirror``) plugs in there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from cohortsync.errors import ConfigError
from cohortsync.export.identifiers import KINDS
from cohortsync.export.spec import MAX_IDENTIFIERS_PER_REQUEST, ExportSpec
from cohortsync.export.staging import IDENTIFIERS_VIEW, Staging

CHANGES_FILE = "changes.parquet"
PLAN_ROW_GROUP = 100_000


@dataclass(frozen=True)
class Plan:
    """The changes of one run, as written to ``path``.

    ``counts`` maps ``(kind, should_remove)`` to the number of identifiers.
    """

    path: Path
    total: int
    counts: dict[tuple[str, bool], int] = field(default_factory=dict)
    batch_size: int = MAX_IDENTIFIERS_PER_REQUEST

    @property
    def batches(self) -> int:
        """How many ``cohorts/users`` requests the plan needs."""
        return math.ceil(self.total / self.batch_size)

    def by_kind(self) -> dict[str, int]:
        """Identifiers to send per kind, adds and removes together."""
        totals: dict[str, int] = {}
        for (kind, _), count in self.counts.items():
            totals[kind] = totals.get(kind, 0) + count
        return totals


def changes_sql(staging: Staging, spec: ExportSpec) -> str:
    """SQL of the run's changes: ``(kind UTINYINT, value VARCHAR, should_remove BOOLEAN)``.

    Raises:
        ConfigError: the operation is not one this planner knows.
    """
    if spec.operation == "add":
        return f"SELECT kind, value, false AS should_remove FROM {IDENTIFIERS_VIEW}"
    if spec.operation == "remove":
        return f"SELECT kind, value, true AS should_remove FROM {IDENTIFIERS_VIEW}"
    raise ConfigError(
        f"operation {spec.operation!r} is not supported by this export",
        hint="use --operation add or --operation remove",
    )


def write_plan(staging: Staging, spec: ExportSpec, run_dir: Path) -> Plan:
    """Write the run's ordered changes to ``run_dir/changes.parquet``."""
    path = run_dir / CHANGES_FILE
    kind_names = " ".join(f"WHEN {code} THEN '{name}'" for code, name in enumerate(KINDS))
    staging.connection.execute(
        f"""
        COPY (
            SELECT CASE kind {kind_names} END AS kind, value, should_remove
            FROM ({changes_sql(staging, spec)})
            ORDER BY should_remove, kind, value
        ) TO '{_literal(path)}' (FORMAT parquet, ROW_GROUP_SIZE {PLAN_ROW_GROUP})
        """
    )
    return read_plan(path)


def read_plan(path: Path) -> Plan:
    """Summarise a plan file written by :func:`write_plan` (also after a restart)."""
    connection = duckdb.connect(config={"memory_limit": "64MB", "threads": 1})
    try:
        rows = connection.execute(
            "SELECT kind, should_remove, count(*) FROM read_parquet(?) GROUP BY ALL",
            [str(path)],
        ).fetchall()
    finally:
        connection.close()
    counts = {(str(kind), bool(remove)): int(count) for kind, remove, count in rows}
    return Plan(path=path, total=sum(counts.values()), counts=counts)


def _literal(path: Path) -> str:
    return str(path).replace("'", "''")
