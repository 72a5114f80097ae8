"""Mirror diffs inside the warehouse: only the entries and exits leave it.

A local mirror (:mod:`cohortsync.export.mirror`) streams the whole result to
cohortsync on every run and diffs it against a Parquet snapshot. With a
hundred million members and one percent churn, that moves a hundred times
more rows than the sync sends. Here the snapshot of tracked members is a
table of the warehouse, and the diff is a join inside it:

1. **Staging, in the warehouse.** In one consistent reading of the data (on
   PostgreSQL one ``REPEATABLE READ READ ONLY`` transaction, so the user's
   query writes nothing and every statement sees the same data) the result
   is counted once (rows, NULL, empty and invalid values per kind) and its
   distinct identifiers are put into a session relation.
2. **The diff, in the warehouse.** One full outer join of the result with the
   snapshot (or, after runs abandoned half-way, the anti-joins of
   :mod:`mirror`) fills a session relation of changes; the guards and the
   dry run's counts are computed on it there.
3. **Only the changes travel**, ordered, as Arrow batches, into the run's
   plan file (``changes.parquet``), the same plan every export sends,
   checkpoints and resumes.
4. **The commit, after every batch is acknowledged**: the new snapshot's two
   tables are built from the previous ones and the sent changes (the plan
   file, copied back in), then the home's snapshot store names them current
   (:mod:`snapshots`, format 2). The engine writes each table whole or not at
   all, and a resumed commit keeps the tables it finds complete; until the
   pointer moves the previous tables stay current. Older tables are dropped
   after (a crash before that leaves them to the next commit).

The tables are ``<schema>.m_<cohort>_<run>`` (members) and ``x_...`` (known
exits), in the schema ``cohortsync`` by default (``COHORTSYNC_SNAPSHOT_SCHEMA``).
A missing right is named before anything is sent. The pointer to the current
tables stays in the home, with the run history, so one commit protocol serves
every engine.

This module holds the diff, the same for every engine; what differs between
engines (session relations, SQL spellings, streaming, how tables are written)
is behind :class:`~cohortsync.warehouse.warehouse_snapshots.SnapshotWarehouse`:
PostgreSQL in :mod:`cohortsync.warehouse.postgres_snapshots`, Spark in
:mod:`cohortsync.warehouse.spark_snapshots`.

A cohort whose snapshot is still a Parquet generation (an earlier release, or
a local diff) is upgraded on its next run: the Parquet files are copied into
session relations and diffed there, and the commit writes the first warehouse
generation from them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from cohortsync.errors import ConfigError, SourceError
from cohortsync.export.identifiers import (
    MAX_IDENTIFIER_BYTES,
    MAX_IDENTIFIER_CHARS,
    SAMPLE_INVALID,
    IdentifierColumns,
    InvalidIdentifier,
    identifier_columns,
    invalid_reason,
)
from cohortsync.export.mirror import (
    DEFAULT_SAMPLE_SIZE,
    Identifier,
    KindCounts,
    MirrorPlan,
    check_alias_label,
    check_guards,
)
from cohortsync.export.plan import Plan, plan_copy_sql, read_plan
from cohortsync.export.reporting import RunReporter, SilentReporter
from cohortsync.export.snapshots import Snapshot, SnapshotStore
from cohortsync.export.source import query_failed, source_sql
from cohortsync.export.spec import MAX_IDENTIFIERS_PER_REQUEST, MirrorOptions, Source
from cohortsync.export.staging import InvalidIdentifiers, StagedCounts
from cohortsync.export.staging import KindCounts as StagedKindCounts
from cohortsync.export.stopping import StopToken
from cohortsync.warehouse.capabilities import POSTGRESQL, SPARK, capabilities_of
from cohortsync.warehouse.connect import display_url
from cohortsync.warehouse.warehouse_snapshots import (
    CHANGES_SCHEMA,
    MEMBERS_SCHEMA,
    SnapshotWarehouse,
)

__all__ = ["CHANGES_SCHEMA", "MEMBERS_SCHEMA", "WarehouseMirror", "snapshot_tables"]

# Session relations: gone with the session, and they need no right on any schema.
RESULT = "cs_result"
DIFF = "cs_diff"
ABANDONED = "cs_abandoned"
SENT = "cs_sent"
LOCAL_MEMBERS = "cs_previous_members"
LOCAL_EXITS = "cs_previous_exits"


def open_snapshot_warehouse(url: str, schema: str) -> SnapshotWarehouse:
    """A session on the warehouse ``url`` for a mirror's diff, its snapshot tables in ``schema``.

    Raises:
        ConfigError: the engine cannot diff inside the warehouse.
        SourceError: the warehouse cannot be reached.
    """
    engine = capabilities_of(url)
    if engine is POSTGRESQL:
        from cohortsync.warehouse.postgres_snapshots import PostgresSnapshots

        return PostgresSnapshots(url, schema)
    if engine is SPARK:
        # Imported here: pyspark is loaded only when a Spark warehouse is used.
        from cohortsync.warehouse.spark_snapshots import SparkSnapshots

        return SparkSnapshots(url, schema)
    raise ConfigError(
        f"the warehouse {display_url(url)} cannot run a mirror's diff",
        hint="set COHORTSYNC_MIRROR_DIFF=local to diff in cohortsync",
    )


@dataclass(frozen=True)
class WarehousePrepared:
    """What staging and planning inside the warehouse hand to the run."""

    counts: StagedCounts
    ignored: tuple[str, ...]
    unaddressable: dict[str, int]
    plan: Plan


def cohort_prefix(key_slug: str) -> str:
    """The part of a cohort's table names after ``m``/``x``: ``_<hash>_``."""
    return f"_{hashlib.sha256(key_slug.encode()).hexdigest()[:12]}_"


def snapshot_tables(key_slug: str, run_id: str) -> tuple[str, str]:
    """The names of a generation's members and exits tables (lower case, under 63 bytes)."""
    prefix = cohort_prefix(key_slug)
    run = run_id.lower().replace("-", "_")
    return f"m{prefix}{run}", f"x{prefix}{run}"


class WarehouseMirror:
    """The mirror planner of a run whose diff runs in the warehouse (a :class:`Planner`).

    Args:
        store: the cohort's snapshot store in the home (the pointer to the tables).
        run_id: the run; names its tables.
        plan_path: the run's plan file: written when planning, read back to commit.
        options: guards and ``full_resync``.
        alias_label: the export's alias column.
        warehouse_url: the warehouse the source is read from (PostgreSQL, Spark).
        schema: the schema of the snapshot tables.
        abandoned: plans of earlier runs that may have been applied in part.
        dry_run: plan only; write nothing in the warehouse or the store.
        stop: the run's stop token (cancels the statement running).
    """

    scans_staged_in_order = False

    def __init__(
        self,
        store: SnapshotStore,
        run_id: str,
        options: MirrorOptions,
        *,
        plan_path: Path,
        alias_label: str | None,
        warehouse_url: str,
        schema: str,
        abandoned: Sequence[Path] = (),
        dry_run: bool = False,
        stop: StopToken | None = None,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.plan_path = plan_path
        self.options = options
        self.alias_label = alias_label
        self.url = warehouse_url
        self.engine = capabilities_of(warehouse_url)
        self.schema = schema
        self.abandoned = tuple(abandoned)
        self.dry_run = dry_run
        self.stop = stop or StopToken()
        self.plan: MirrorPlan | None = None
        self.rows_transferred = 0
        self.members_table, self.exits_table = snapshot_tables(store.key.slug, run_id)

    # -- the Planner protocol ----------------------------------------------------------

    def snapshot_dirs(self, run_dir: Path) -> list[Path]:
        return []

    def changes_sql(self, staging: Any, identifiers_sql: str, run_dir: Path) -> str:
        raise NotImplementedError("a warehouse mirror plans with prepare(), not from staging")

    def distinct_by_kind(self, plan: Plan) -> dict[str, int]:
        if self.plan is None:
            return {}
        return {kind: counts.result for kind, counts in self.plan.by_kind.items()}

    def summary(self) -> dict[str, Any] | None:
        if self.plan is None:
            return None
        return {
            **self.plan.to_dict(),
            "diff": {
                "where": "warehouse",
                "engine": self.engine.name,
                "schema": self.schema,
                "rows_transferred": self.rows_transferred,
            },
        }

    def discard(self) -> None:
        if not self.dry_run:
            self.store.discard_pending(self.run_id)

    # -- planning ----------------------------------------------------------------------

    def prepare(
        self,
        source: Source,
        *,
        skip_invalid: bool,
        left_out: Callable[[IdentifierColumns], tuple[str, ...]] = lambda _columns: (),
        batch_size: int = MAX_IDENTIFIERS_PER_REQUEST,
        reporter: RunReporter | None = None,
    ) -> WarehousePrepared:
        """Stage, diff and plan inside the warehouse; write the run's plan file.

        Raises:
            SourceError: the query failed, or has no usable identifier column.
            InvalidIdentifiers: the result holds identifiers Braze would refuse.
            MirrorGuardRefused: a guard tripped; nothing was written.
            ConfigError: a right is missing, or the snapshot is elsewhere.
        """
        reporter = reporter or SilentReporter()
        previous = self._previous()
        self.plan_path.parent.mkdir(parents=True, exist_ok=True)
        with self._session() as warehouse:
            checked = self._checked_query(warehouse, source)
            query, params = warehouse.bind(checked, source.params)
            columns = self._columns(warehouse, source, checked)
            unsent = left_out(columns)
            if not self.dry_run:
                warehouse.prepare_schema()
            tables = self._session_relations(warehouse, previous)
            with warehouse.reading():
                counts = self._stage(warehouse, source, query, params, columns, unsent)
                reporter.rows_read(counts.rows_read)
                if counts.invalid and not skip_invalid:
                    counts.add_samples(self._invalid_samples(warehouse, query, params, columns))
                    raise InvalidIdentifiers(counts)
                if previous is not None and previous.alias_label != self.alias_label:
                    check_alias_label(
                        previous,
                        self.alias_label,
                        self.store.key.describe(),
                        tracked_aliases=self._previous_aliases(warehouse, tables),
                    )
                reporter.stage_started("planning")
                diff = _Diff(warehouse, tables, abandoned=bool(self.abandoned))
                self.plan = diff.plan(full_resync=self.options.full_resync)
                check_guards(self.plan, self.options, cohort=self.store.key.describe())
                self.rows_transferred = self._write_plan(warehouse, diff.send_sql())
            for kind, kind_counts in counts.kinds.items():
                if kind in self.plan.by_kind:
                    kind_counts.distinct = self.plan.by_kind[kind].result
        unaddressable = {
            kind: counts.kinds[kind].distinct for kind in unsent if kind in counts.kinds
        }
        if not self.dry_run:
            self.store.write_pending_meta(
                self.run_id,
                members=self.plan.result_members,
                exits=self.plan.new_known_exits,
                alias_label=self.alias_label,
                warehouse=self._location(),
            )
        return WarehousePrepared(
            counts, columns.ignored, unaddressable, read_plan(self.plan_path, batch_size=batch_size)
        )

    def _checked_query(self, warehouse: SnapshotWarehouse, source: Source) -> str:
        """The user's query, checked to be one read-only statement of the warehouse's SQL."""
        try:
            return warehouse.check_query(source_sql(source, self.url))
        except SourceError as error:
            raise query_failed(source, error) from error

    def _columns(
        self, warehouse: SnapshotWarehouse, source: Source, query: str
    ) -> IdentifierColumns:
        """The result's identifier columns, from its schema (no row read)."""
        try:
            schema = warehouse.result_schema(query, source.params)
        except SourceError as error:
            raise query_failed(source, error) from error
        return identifier_columns(schema, self.alias_label)

    def _previous(self) -> Snapshot | None:
        """The committed snapshot, checked to live in this warehouse (or in Parquet files)."""
        previous = self.store.current()
        if previous is None or previous.warehouse is None:
            return previous
        if previous.warehouse.get("url") != display_url(self.url):
            raise ConfigError(
                f"the mirror snapshot of {self.store.key.describe()} lives in the warehouse "
                f"{previous.warehouse.get('url')}, not in {display_url(self.url)}",
                hint="export from that warehouse, or mirror into another cohort id",
            )
        return previous

    @contextmanager
    def _session(self) -> Iterator[SnapshotWarehouse]:
        warehouse = open_snapshot_warehouse(self.url, self.schema)
        try:
            with self.stop.interrupting(warehouse.cancel):
                yield warehouse
        except Exception as error:
            if self.stop.requested:
                raise self.stop.interrupted("the mirror diff in the warehouse") from error
            raise
        finally:
            warehouse.close()

    def _session_relations(
        self, warehouse: SnapshotWarehouse, previous: Snapshot | None
    ) -> _Tables:
        """Declare the session relations; copy a Parquet snapshot and abandoned plans in."""
        warehouse.declare(RESULT, MEMBERS_SCHEMA)
        warehouse.declare(DIFF, CHANGES_SCHEMA)
        warehouse.load(ABANDONED, self.abandoned, CHANGES_SCHEMA, doing="copying abandoned plans")
        return self._previous_tables(warehouse, previous)

    def _previous_tables(self, warehouse: SnapshotWarehouse, previous: Snapshot | None) -> _Tables:
        doing = "copying the snapshot into the warehouse"
        if previous is None:
            # Empty relations: the statements read the same relations either way.
            warehouse.load(LOCAL_MEMBERS, (), MEMBERS_SCHEMA, doing=doing)
            warehouse.load(LOCAL_EXITS, (), MEMBERS_SCHEMA, doing=doing)
            return _Tables(
                members=LOCAL_MEMBERS,
                exits=LOCAL_EXITS,
                first_run=not self.abandoned,
                tracked=False,
            )
        if previous.warehouse is not None:
            names = (previous.warehouse["members_table"], previous.warehouse["exits_table"])
            for name in names:
                if not warehouse.has_table(name):
                    raise ConfigError(
                        f"the mirror snapshot table {warehouse.table(name)} of "
                        f"{self.store.key.describe()} is missing from the warehouse",
                        hint=f"restore it, or remove {previous.directory} to start the cohort "
                        "over (members who left since will then not be removed)",
                    )
            return _Tables(members=warehouse.table(names[0]), exits=warehouse.table(names[1]))
        warehouse.load(LOCAL_MEMBERS, (previous.members_path,), MEMBERS_SCHEMA, doing=doing)
        warehouse.load(LOCAL_EXITS, (previous.exits_path,), MEMBERS_SCHEMA, doing=doing)
        return _Tables(members=LOCAL_MEMBERS, exits=LOCAL_EXITS)

    def _previous_aliases(self, warehouse: SnapshotWarehouse, tables: _Tables) -> int:
        if not tables.tracked:
            return 0
        return int(
            warehouse.scalar(
                f"SELECT count(*) FROM (SELECT 1 FROM {tables.members} "
                "WHERE kind = 'alias' LIMIT 1) a",
                doing="reading the snapshot",
            )
        )

    def _stage(
        self,
        warehouse: SnapshotWarehouse,
        source: Source,
        query: str,
        params: Any,
        columns: IdentifierColumns,
        left_out: tuple[str, ...],
    ) -> StagedCounts:
        """Count the result's values and put its distinct identifiers in the result relation."""
        kinds = columns.kinds
        selects = ["count(*)"]
        for kind in kinds:
            column = f"q.{warehouse.identifier(columns.columns[kind])}"
            invalid = _invalid(warehouse, column)
            valid = f"{column} <> '' AND NOT {invalid}"
            selects += [
                f"count({column})",
                f"count(*) FILTER (WHERE {column} = '')",
                f"count(*) FILTER (WHERE {column} <> '' AND {invalid})",
                f"coalesce(sum(octet_length({column})), 0)",
                f"count(DISTINCT {column}) FILTER (WHERE {valid})" if kind in left_out else "0",
            ]
        try:
            [row] = warehouse.rows(
                f"SELECT {', '.join(selects)} FROM ({query}) AS q",
                params,
                doing="counting the result",
            )
        except Exception as error:
            raise query_failed(source, error) from error
        counts = StagedCounts(rows_read=int(row[0]))
        for index, kind in enumerate(kinds):
            non_null, empty, invalid_count, size, distinct = (
                int(v) for v in row[1 + 5 * index : 6 + 5 * index]
            )
            counts.kinds[kind] = StagedKindCounts(
                values=non_null - empty - invalid_count,
                distinct=distinct,
                null=counts.rows_read - non_null,
                empty=empty,
                invalid=invalid_count,
                value_bytes=size,
            )
        sent = [kind for kind in kinds if kind not in left_out]
        if sent:
            pairs = _pairs(warehouse, columns, sent, "q")
            warehouse.fill(
                RESULT,
                f"SELECT DISTINCT v.kind AS kind, v.value AS value FROM ({query}) AS q "
                f"{warehouse.unpivot(pairs)} "
                f"WHERE v.value <> '' AND NOT {_invalid(warehouse, 'v.value')}",
                params,
                doing="staging the result",
            )
        return counts

    def _invalid_samples(
        self,
        warehouse: SnapshotWarehouse,
        query: str,
        params: Any,
        columns: IdentifierColumns,
    ) -> list[InvalidIdentifier]:
        """The first invalid identifiers, with their row numbers, for the message."""
        pairs = _pairs(warehouse, columns, columns.kinds, "s")
        rows = warehouse.rows(
            "SELECT s.cs_row, v.kind, v.value FROM "
            f"(SELECT {warehouse.row_number()} AS cs_row, q.* FROM ({query}) AS q) AS s "
            f"{warehouse.unpivot(pairs)} "
            f"WHERE v.value <> '' AND {_invalid(warehouse, 'v.value')} ORDER BY s.cs_row "
            f"LIMIT {SAMPLE_INVALID}",
            params,
            doing="finding the invalid identifiers",
        )
        return [
            InvalidIdentifier(str(kind), int(number), str(value), invalid_reason(str(value)) or "")
            for number, kind, value in rows
        ]

    def _write_plan(self, warehouse: SnapshotWarehouse, send_sql: str) -> int:
        """Stream the changes to send into the run's plan file; the rows that crossed."""
        reader = warehouse.stream(
            f"SELECT kind, value, should_remove FROM ({send_sql}) s "
            f"ORDER BY should_remove, {warehouse.ordered('kind', 'value')}",
            CHANGES_SCHEMA,
            doing="reading the changes",
        )
        counted = _Counted(reader)
        con = duckdb.connect(config={"memory_limit": "64MB", "threads": 1})
        try:
            con.register("changes_stream", counted.reader())
            con.execute(
                plan_copy_sql(
                    "SELECT kind, value, should_remove FROM changes_stream",
                    self.plan_path,
                    self.alias_label,
                )
            )
        finally:
            con.close()
        return counted.rows

    def _location(self) -> dict[str, str]:
        return {
            "engine": self.engine.name,
            "url": display_url(self.url),
            "schema": self.schema,
            "members_table": self.members_table,
            "exits_table": self.exits_table,
        }

    # -- committing --------------------------------------------------------------------

    def commit(self) -> None:
        """Build the new snapshot tables from the previous ones and the plan, then name them.

        Every batch has been acknowledged. Safe to call again after a crash
        at any point of an earlier call: tables completed by it are kept.
        """
        if self.dry_run:
            return
        previous = self.store.current()
        if previous is not None and previous.run_id == self.run_id:
            return  # an earlier call committed all of it
        with self._session() as warehouse:
            names = (self.members_table, self.exits_table)
            if not all(warehouse.has_table(name) for name in names):
                doing = "committing the snapshot"
                warehouse.load(SENT, (self.plan_path,), CHANGES_SCHEMA, doing=doing)
                tables = self._previous_tables(warehouse, previous)
                mentioned = (
                    f"NOT EXISTS (SELECT 1 FROM {SENT} s "
                    "WHERE s.kind = p.kind AND s.value = p.value)"
                )
                warehouse.write_tables(
                    {
                        self.members_table: f"SELECT p.kind, p.value FROM {tables.members} p "
                        f"WHERE {mentioned} UNION ALL "
                        f"SELECT kind, value FROM {SENT} WHERE NOT should_remove",
                        self.exits_table: f"SELECT p.kind, p.value FROM {tables.exits} p "
                        f"WHERE {mentioned} UNION ALL "
                        f"SELECT kind, value FROM {SENT} WHERE should_remove",
                    },
                    doing="writing the snapshot",
                )
            self.store.commit(self.run_id)
            prefix = cohort_prefix(self.store.key.slug)
            warehouse.drop_tables((f"m{prefix}", f"x{prefix}"), keep=names)


def _invalid(warehouse: SnapshotWarehouse, value: str) -> str:
    return warehouse.invalid(value, max_chars=MAX_IDENTIFIER_CHARS, max_bytes=MAX_IDENTIFIER_BYTES)


def _pairs(
    warehouse: SnapshotWarehouse, columns: IdentifierColumns, kinds: Sequence[str], alias: str
) -> list[tuple[str, str]]:
    """(kind literal, column of ``alias``) for each kind: what :meth:`unpivot` takes."""
    return [
        (warehouse.literal(kind), f"{alias}.{warehouse.identifier(columns.columns[kind])}")
        for kind in kinds
    ]


@dataclass(frozen=True)
class _Tables:
    """The relations of the previous snapshot inside the session."""

    members: str
    exits: str
    first_run: bool = False
    tracked: bool = True  # a previous snapshot exists


class _Diff:
    """The diff's statements on the session relations, inside the consistent reading."""

    def __init__(self, warehouse: SnapshotWarehouse, tables: _Tables, *, abandoned: bool) -> None:
        self.warehouse = warehouse
        self.tables = tables
        self.abandoned = abandoned
        self.counts: dict[str, dict[str, int]] = {}
        self.full_resync = False
        previous: str | None = None  # the relation of the members tracked before
        if tables.first_run:
            diff = f"SELECT kind, value, false AS should_remove FROM {RESULT}"
        elif not abandoned:
            previous = tables.members
            # Both anti-joins in one full outer join keeping the unmatched rows of each side.
            diff = (
                "SELECT coalesce(r.kind, p.kind) AS kind, coalesce(r.value, p.value) AS value, "
                f"r.value IS NULL AS should_remove FROM {RESULT} r FULL OUTER JOIN "
                f"{tables.members} p ON r.kind = p.kind AND r.value = p.value "
                "WHERE r.value IS NULL OR p.value IS NULL"
            )
        else:
            # As the local mirror: certain = tracked and never removed by an abandoned run;
            # possible = tracked, or added by one.
            certain = (
                f"SELECT p.kind, p.value FROM {tables.members} p WHERE NOT EXISTS (SELECT 1 FROM "
                f"{ABANDONED} a WHERE a.should_remove AND a.kind = p.kind AND a.value = p.value)"
            )
            possible = (
                f"SELECT kind, value FROM {tables.members} UNION "
                f"SELECT kind, value FROM {ABANDONED} WHERE NOT should_remove"
            )
            previous = f"({possible}) s"
            diff = (
                f"SELECT r.kind AS kind, r.value AS value, false AS should_remove FROM {RESULT} r "
                "WHERE NOT EXISTS "
                f"(SELECT 1 FROM ({certain}) c WHERE c.kind = r.kind AND c.value = r.value) "
                f"UNION ALL SELECT s.kind, s.value, true FROM ({possible}) s WHERE NOT EXISTS "
                f"(SELECT 1 FROM {RESULT} r WHERE r.kind = s.kind AND r.value = s.value)"
            )
        warehouse.fill(DIFF, diff, doing="diffing the result against the snapshot")
        self.previous = previous
        self._count_all()

    def _count_all(self) -> None:
        """Every count of the plan, by kind, in one statement (one pass on Spark)."""
        parts = [f"SELECT 'result' AS counted, kind, count(*) AS n FROM {RESULT} GROUP BY kind"]
        if self.previous is not None:
            parts.append(f"SELECT 'previous', kind, count(*) FROM {self.previous} GROUP BY kind")
        parts += [
            "SELECT CASE WHEN should_remove THEN 'exits' ELSE 'entries' END, kind, count(*) "
            f"FROM {DIFF} GROUP BY should_remove, kind",
            f"SELECT 'new_exits', '', count(*) FROM ({self.new_exits_sql()}) e",
        ]
        self.new_exits = 0
        for counted, kind, count in self.warehouse.rows(
            " UNION ALL ".join(parts), doing="counting the diff"
        ):
            if counted == "new_exits":
                self.new_exits = int(count)
                continue
            counts = self.counts.setdefault(str(kind), {})
            counts[str(counted)] = counts.get(str(counted), 0) + int(count)

    def new_exits_sql(self) -> str:
        """Known exits still out, with this run's exits: the next known exits."""
        return (
            f"SELECT k.kind, k.value FROM {self.tables.exits} k WHERE NOT EXISTS (SELECT 1 FROM "
            f"{DIFF} d WHERE NOT d.should_remove AND d.kind = k.kind AND d.value = k.value) "
            f"UNION SELECT kind, value FROM {DIFF} WHERE should_remove"
        )

    def send_sql(self) -> str:
        """The changes to send: the diff, or on ``--full-resync`` every member and known exit."""
        if self.full_resync:
            return (
                f"SELECT kind, value, false AS should_remove FROM {RESULT} UNION ALL "
                f"SELECT kind, value, true FROM ({self.new_exits_sql()}) e"
            )
        return f"SELECT kind, value, should_remove FROM {DIFF}"

    def plan(self, *, full_resync: bool, sample_size: int = DEFAULT_SAMPLE_SIZE) -> MirrorPlan:
        self.full_resync = full_resync
        by_kind = {kind: KindCounts(**values) for kind, values in sorted(self.counts.items())}
        total = {
            name: sum(values.get(name, 0) for values in self.counts.values())
            for name in ("result", "previous", "entries", "exits")
        }
        new_exits = self.new_exits
        samples = self._samples(sample_size)
        adds = total["result"] if full_resync else total["entries"]
        removes = new_exits if full_resync else total["exits"]
        return MirrorPlan(
            first_run=self.tables.first_run,
            full_resync=full_resync,
            result_members=total["result"],
            previous_members=total["previous"],
            entries=total["entries"],
            exits=total["exits"],
            adds=adds,
            removes=removes,
            new_known_exits=new_exits,
            by_kind=by_kind,
            sample_adds=samples[False],
            sample_removes=samples[True],
        )

    def _samples(self, size: int) -> dict[bool, tuple[Identifier, ...]]:
        """The first adds and the first removes to send, in the plan's order.

        One ``ORDER BY ... LIMIT`` each: a top-N, where a window over both would sort them all.
        """
        samples = {}
        for remove in (False, True):
            rows = self.warehouse.rows(
                f"SELECT kind, value FROM ({self.send_sql()}) s "
                f"WHERE should_remove = {str(remove).lower()} "
                f"ORDER BY {self.warehouse.ordered('kind', 'value')} LIMIT {int(size)}",
                doing="sampling the changes",
            )
            samples[remove] = tuple((str(kind), str(value)) for kind, value in rows)
        return samples


class _Counted:
    """Counts the rows of a reader as they pass."""

    def __init__(self, reader: pa.RecordBatchReader) -> None:
        self._reader = reader
        self.rows = 0

    def reader(self) -> pa.RecordBatchReader:
        def batches() -> Iterator[pa.RecordBatch]:
            for batch in self._reader:
                self.rows += batch.num_rows
                yield batch

        return pa.RecordBatchReader.from_batches(self._reader.schema, batches())
