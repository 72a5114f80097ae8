"""Decide what one run sends, and write it down once, in a fixed order.

The plan is a Parquet file, ``runs/<run_id>/changes.parquet``, of
``(kind, value, should_remove, item)`` rows grouped by
``(should_remove, kind)``. ``item`` is the identifier already encoded as
JSON with a trailing comma (``"u1",`` or ``{"alias_name":"a@x.io",
"alias_label":"email"},``), so a request body is a slice of bytes, not a
Python list. Batch number ``n`` is rows ``[n * 1000, (n + 1) * 1000)`` of the
file; the file is written once per run and read as is when the run resumes,
so a batch number always means the same identifiers. The file carries its
format version in its Parquet metadata (:mod:`formats`); a plan of an older
format is upgraded in place before its run is resumed (:func:`resume_plan`).

Within a ``(should_remove, kind)`` group the order is the one DuckDB's
aggregation produced: sorting strings would cost more than the whole send.
The staged identifiers already come in kind order (:mod:`staging`), so an
``add`` or ``remove`` plan is written without any sort over all rows; only
an operation mixing ``should_remove`` values would need one.

A :class:`Planner` is the seam between "what the source holds" and "what to
send", one per kind of export, chosen once from the spec
(:func:`cohortsync.export.planners.planner_for`): :class:`AddRemovePlanner`
sends the staged identifiers as they are; the mirror planner
(:class:`cohortsync.export.mirror.MirrorStep`) diffs them against the
cohort's last snapshot and commits the new one once every batch is
acknowledged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import duckdb

from cohortsync.export import formats
from cohortsync.export.identifiers import ALIAS, KINDS
from cohortsync.export.spec import MAX_IDENTIFIERS_PER_REQUEST, ExportSpec
from cohortsync.export.staging import STAGING_THREADS, Staging

CHANGES_FILE = formats.PLAN_FILE
PLAN_ROW_GROUP = 100_000
# LZ4 decodes faster than DuckDB's default Snappy; the plan is read once per send.
PLAN_COMPRESSION = "lz4_raw"


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
        for (kind, _), count in sorted(self.counts.items()):
            totals[kind] = totals.get(kind, 0) + count
        return totals


class Planner(Protocol):
    """What one kind of export decides, between staging and sending."""

    @property
    def scans_staged_in_order(self) -> bool:
        """Whether its changes are a scan of the staged identifiers, in their order.

        Such a plan is written by one thread when the identifiers were staged
        in several passes (see :func:`write_plan`).
        """

    def snapshot_dirs(self, run_dir: Path) -> list[Path]:
        """Directories besides ``run_dir`` that the staging database writes."""

    def changes_sql(self, staging: Staging, identifiers_sql: str, run_dir: Path) -> str:
        """SQL of the run's changes ``(kind UTINYINT, value, should_remove)``, in plan order.

        Args:
            staging: the run's staging database.
            identifiers_sql: distinct ``(kind UTINYINT, value VARCHAR)`` of the
                source, in kind order.
            run_dir: the run's directory, for files of its own.
        """

    def distinct_by_kind(self, plan: Plan) -> dict[str, int]:
        """Distinct identifiers of the result per kind, once planned."""

    def summary(self) -> dict[str, Any] | None:
        """What the report shows of this planning (a mirror's diff counts), if anything."""

    def commit(self) -> None:
        """Every batch was acknowledged: keep what the next run plans against."""

    def discard(self) -> None:
        """The run failed before anything was sent: drop what planning left behind."""


class AddRemovePlanner:
    """``add`` and ``remove``: the staged identifiers as they are, all added or all removed."""

    scans_staged_in_order = True

    def __init__(self, *, remove: bool) -> None:
        self.remove = remove

    def snapshot_dirs(self, run_dir: Path) -> list[Path]:
        return []

    def changes_sql(self, staging: Staging, identifiers_sql: str, run_dir: Path) -> str:
        remove = "true" if self.remove else "false"
        return f"SELECT kind, value, {remove} AS should_remove FROM ({identifiers_sql})"

    def distinct_by_kind(self, plan: Plan) -> dict[str, int]:
        return plan.by_kind()

    def summary(self) -> dict[str, Any] | None:
        return None

    def commit(self) -> None:
        pass  # nothing is kept between add or remove runs

    def discard(self) -> None:
        pass


def item_sql(alias_label: str | None) -> str:
    """SQL of the JSON text of one identifier with its trailing comma (kind as a code)."""
    return formats.item_json_sql(f"kind = {KINDS.index(ALIAS)}", alias_label)


def write_plan(
    staging: Staging,
    spec: ExportSpec,
    run_dir: Path,
    identifiers_sql: str,
    planner: Planner,
    *,
    batch_size: int = MAX_IDENTIFIERS_PER_REQUEST,
) -> Plan:
    """Write the run's changes to ``run_dir/changes.parquet`` and summarise them.

    Args:
        identifiers_sql: the staged identifiers (:meth:`Staging.identifiers_sql`),
            in kind order.
        planner: decides the changes (a mirror's guards raise here, before any
            request); they come in plan order, ``(should_remove, kind)`` groups,
            so no sort over all rows is needed (DuckDB keeps a file's order).
        batch_size: plan rows per request of the destination (its batch numbers).
    """
    path = run_dir / CHANGES_FILE
    sql = planner.changes_sql(staging, identifiers_sql, run_dir)
    kind_names = " ".join(f"WHEN {code} THEN '{name}'" for code, name in enumerate(KINDS))
    statement = _copy_plan_sql(
        f"SELECT CASE kind {kind_names} END AS kind, value, should_remove, "
        f"{item_sql(spec.alias_column)}::VARCHAR AS item FROM ({sql})",
        path,
    )
    # A scan of the staged identifiers table is written by one thread: in order,
    # the Parquet writer holds one row group, where two threads writing in
    # order would buffer each other's row groups past a small memory limit.
    one_thread = staging.passes > 1 and planner.scans_staged_in_order
    try:
        if one_thread:
            staging.connection.execute("SET threads = 1")
        staging.run(statement)
    finally:
        if one_thread:
            staging.connection.execute(f"SET threads = {STAGING_THREADS}")
    return read_plan(path, batch_size=batch_size)


def plan_copy_sql(changes_sql: str, path: Path, alias_label: str | None) -> str:
    """DuckDB's ``COPY`` writing a plan file from ``(kind, value, should_remove)`` rows.

    ``changes_sql`` names kinds (``user_ids``, ``device_ids``, ``alias``) and
    comes in plan order; the rows are written in that order.
    """
    item = formats.item_json_sql(f"kind = '{ALIAS}'", alias_label)
    return _copy_plan_sql(
        f"SELECT kind, value, should_remove, {item}::VARCHAR AS item FROM ({changes_sql})", path
    )


def _copy_plan_sql(rows_sql: str, path: Path) -> str:
    return (
        f"COPY ({rows_sql}) TO {_string_literal(str(path))} (FORMAT parquet, COMPRESSION "
        f"{PLAN_COMPRESSION}, ROW_GROUP_SIZE {PLAN_ROW_GROUP}, {formats.plan_metadata_sql()})"
    )


def resume_plan(
    path: Path, *, alias_label: str | None, batch_size: int = MAX_IDENTIFIERS_PER_REQUEST
) -> Plan:
    """The plan of a run being resumed, upgraded in place first if an older release wrote it.

    Raises:
        FileFormatTooNew: a newer release wrote it.
    """
    formats.upgrade_plan(path, alias_label=alias_label)
    return read_plan(path, batch_size=batch_size)


def read_plan(path: Path, *, batch_size: int = MAX_IDENTIFIERS_PER_REQUEST) -> Plan:
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
    return Plan(path=path, total=sum(counts.values()), counts=counts, batch_size=batch_size)


def _string_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
