"""Mirror diffs inside PostgreSQL: only the entries and exits leave the warehouse.

A local mirror (:mod:`cohortsync.export.mirror`) streams the whole result to
cohortsync on every run and diffs it against a Parquet snapshot. With a
hundred million members and one percent churn, that moves a hundred times
more rows than the sync sends. Here the snapshot of tracked members is a
table of the warehouse, and the diff is a join inside it:

1. **Staging, in the warehouse.** In one ``REPEATABLE READ READ ONLY``
   transaction (so the user's query writes nothing, and every statement sees
   the same data) the result is counted once (rows, NULL, empty and invalid
   values per kind) and its distinct identifiers are put into a session table.
2. **The diff, in the warehouse.** One full outer join of the result with the
   snapshot (or, after runs abandoned half-way, the anti-joins of
   :mod:`mirror`) fills a session table of changes; the guards and the dry
   run's counts are computed on it there.
3. **Only the changes travel**, ordered, through ``COPY ... TO STDOUT``, into
   the run's plan file (``changes.parquet``), the same plan every export
   sends, checkpoints and resumes.
4. **The commit, after every batch is acknowledged**: in one transaction the
   new snapshot's two tables are built from the previous ones and the sent
   changes (the plan file, copied back in), then the home's snapshot store
   names them current (:mod:`snapshots`, format 2). A crash before the
   transaction commits leaves nothing; after it, the resumed run finds the
   tables and finishes naming them. Older tables are dropped after.

The tables are ``<schema>.m_<cohort>_<run>`` (members) and ``x_...`` (known
exits), in the schema ``cohortsync`` by default (``COHORTSYNC_SNAPSHOT_SCHEMA``).
The warehouse role needs ``USAGE`` and ``CREATE`` on that schema, and the
right to create session tables; a missing right is named before anything is
sent. The pointer to the current tables stays in the home, with the run
history, so one commit protocol serves every engine.

A cohort whose snapshot is still a Parquet generation (an earlier release, or
a local diff) is upgraded on its next run: the Parquet files are copied into
session tables and diffed there, and the commit writes the first warehouse
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
import pyarrow.parquet as pq

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
from cohortsync.warehouse import open_engine
from cohortsync.warehouse.capabilities import POSTGRESQL
from cohortsync.warehouse.connect import display_url
from cohortsync.warehouse.dialect_statements import check_sql_query
from cohortsync.warehouse.placeholders import to_named
from cohortsync.warehouse.postgres_session import (
    PostgresSession,
    quote_identifier,
    quote_literal,
)

CHANGES_SCHEMA = pa.schema(
    [("kind", pa.string()), ("value", pa.string()), ("should_remove", pa.bool_())]
)
MEMBERS_SCHEMA = pa.schema([("kind", pa.string()), ("value", pa.string())])
# Session tables: gone with the connection, and they need no right on any schema.
RESULT = "cs_result"
DIFF = "cs_diff"
ABANDONED = "cs_abandoned"
SENT = "cs_sent"
LOCAL_MEMBERS = "cs_previous_members"
LOCAL_EXITS = "cs_previous_exits"
_COLLATED = 'kind COLLATE "C", value COLLATE "C"'


def invalid_sql(value: str) -> str:
    """PostgreSQL condition: the text ``value`` is one Braze would refuse (:mod:`identifiers`).

    A NUL cannot be stored in PostgreSQL text, so the control characters
    tested are U+0001 to U+001F and U+007F to U+009F.
    """
    return (
        f"(char_length({value}) > {MAX_IDENTIFIER_CHARS} "
        f"OR octet_length({value}) > {MAX_IDENTIFIER_BYTES} "
        f"OR {value} ~ '[\\x01-\\x1f\\x7f-\\u009f]')"
    )


@dataclass(frozen=True)
class WarehousePrepared:
    """What staging and planning inside the warehouse hand to the run."""

    counts: StagedCounts
    ignored: tuple[str, ...]
    unaddressable: dict[str, int]
    plan: Plan


def snapshot_tables(key_slug: str, run_id: str) -> tuple[str, str]:
    """The names of a generation's members and exits tables (lower case, under 63 bytes)."""
    cohort = hashlib.sha256(key_slug.encode()).hexdigest()[:12]
    run = run_id.lower().replace("-", "_")
    return f"m_{cohort}_{run}", f"x_{cohort}_{run}"


class WarehouseMirror:
    """The mirror planner of a run whose diff runs in PostgreSQL (a :class:`Planner`).

    Args:
        store: the cohort's snapshot store in the home (the pointer to the tables).
        run_id: the run; names its tables.
        plan_path: the run's plan file: written when planning, read back to commit.
        options: guards and ``full_resync``.
        alias_label: the export's alias column.
        warehouse_url: the PostgreSQL warehouse the source is read from.
        schema: the schema of the snapshot tables.
        abandoned: plans of earlier runs that may have been applied in part.
        dry_run: plan only; write nothing in the warehouse or the store.
        stop: the run's stop token (cancels the statement running).
    """

    scans_staged_in_order = False
    engine = POSTGRESQL

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
        query, params = self._query(source)
        columns = self._columns(source, check_sql_query(source_sql(source), "postgresql"))
        unsent = left_out(columns)
        previous = self._previous()
        self.plan_path.parent.mkdir(parents=True, exist_ok=True)
        with self._session() as session:
            if not self.dry_run:
                self._ensure_schema(session)
            tables = self._session_tables(session, previous)
            with session.read_only():
                counts = self._stage(session, source, query, params, columns, unsent)
                reporter.rows_read(counts.rows_read)
                if counts.invalid and not skip_invalid:
                    counts.add_samples(
                        self._invalid_samples(session, source, query, params, columns)
                    )
                    raise InvalidIdentifiers(counts)
                check_alias_label(
                    previous,
                    self.alias_label,
                    self.store.key.describe(),
                    tracked_aliases=self._previous_aliases(session, tables),
                )
                reporter.stage_started("planning")
                diff = _Diff(session, tables, abandoned=bool(self.abandoned))
                self.plan = diff.plan(full_resync=self.options.full_resync)
                check_guards(self.plan, self.options, cohort=self.store.key.describe())
                self.rows_transferred = self._write_plan(session, diff.send_sql(), self.plan_path)
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

    def _query(self, source: Source) -> tuple[str, dict[str, Any]]:
        """The user's query, checked to be one read-only statement, with ``:name`` parameters."""
        try:
            sql = check_sql_query(source_sql(source), "postgresql")
        except SourceError as error:
            raise query_failed(source, error) from error
        return to_named(sql, source.params)

    def _columns(self, source: Source, query: str) -> IdentifierColumns:
        """The result's identifier columns, from its schema (no row read)."""
        engine = open_engine(self.url)
        try:
            reader = engine.stream(f"SELECT * FROM ({query}) AS q LIMIT 0", source.params)
            schema = reader.schema
            reader.read_all()
        except SourceError as error:
            raise query_failed(source, error) from error
        finally:
            engine.close()
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
    def _session(self) -> Iterator[PostgresSession]:
        session = PostgresSession(self.url)
        try:
            with self.stop.interrupting(session.cancel):
                yield session
        except Exception as error:
            if self.stop.requested:
                raise self.stop.interrupted("the mirror diff in the warehouse") from error
            raise
        finally:
            session.close()

    def _ensure_schema(self, session: PostgresSession) -> None:
        """Create the snapshot schema if needed; refuse, naming it, a right the role lacks."""
        schema = quote_literal(self.schema)
        exists = session.scalar(f"SELECT count(*) FROM pg_namespace WHERE nspname = {schema}")
        if not exists:
            session.execute(
                f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(self.schema)}",
                doing=f"creating the snapshot schema {self.schema}",
            )
            session.commit()
        for right in ("USAGE", "CREATE"):
            if not session.scalar(f"SELECT has_schema_privilege({schema}, '{right}')"):
                raise ConfigError(
                    f"the warehouse role {session.user!r} has no {right} right on the snapshot "
                    f"schema {self.schema!r}",
                    hint=f"GRANT USAGE, CREATE ON SCHEMA {quote_identifier(self.schema)} TO "
                    f"{quote_identifier(session.user)}, or set COHORTSYNC_SNAPSHOT_SCHEMA to a "
                    "schema it owns",
                )

    def _session_tables(self, session: PostgresSession, previous: Snapshot | None) -> _Tables:
        """Create the session tables; copy a Parquet snapshot and abandoned plans in."""
        for name, columns in (
            (RESULT, "kind text NOT NULL, value text NOT NULL"),
            (DIFF, "kind text NOT NULL, value text NOT NULL, should_remove boolean NOT NULL"),
            (ABANDONED, "kind text NOT NULL, value text NOT NULL, should_remove boolean NOT NULL"),
        ):
            session.execute(
                f"CREATE TEMP TABLE {name} ({columns})", doing="creating session tables"
            )
        for path in self.abandoned:
            session.copy_in(ABANDONED, CHANGES_SCHEMA.names, _parquet_batches(path, CHANGES_SCHEMA))
        tables = self._previous_tables(session, previous)
        session.commit()
        return tables

    def _previous_tables(self, session: PostgresSession, previous: Snapshot | None) -> _Tables:
        if previous is None:
            # Empty session tables: the statements read the same relations either way.
            return _Tables(
                members=_copy_local(session, None, LOCAL_MEMBERS),
                exits=_copy_local(session, None, LOCAL_EXITS),
                first_run=not self.abandoned,
                tracked=False,
            )
        if previous.warehouse is not None:
            members = self._qualified(previous.warehouse["members_table"])
            exits = self._qualified(previous.warehouse["exits_table"])
            for table in (members, exits):
                if not session.scalar(f"SELECT to_regclass({quote_literal(table)}) IS NOT NULL"):
                    raise ConfigError(
                        f"the mirror snapshot table {table} of {self.store.key.describe()} is "
                        "missing from the warehouse",
                        hint=f"restore it, or remove {previous.directory} to start the cohort "
                        "over (members who left since will then not be removed)",
                    )
            return _Tables(members=members, exits=exits)
        return _Tables(
            members=_copy_local(session, previous.members_path, LOCAL_MEMBERS),
            exits=_copy_local(session, previous.exits_path, LOCAL_EXITS),
        )

    def _qualified(self, table: str) -> str:
        return f"{quote_identifier(self.schema)}.{quote_identifier(table)}"

    def _previous_aliases(self, session: PostgresSession, tables: _Tables) -> int:
        if not tables.tracked:
            return 0
        return int(
            session.scalar(
                f"SELECT count(*) FROM (SELECT 1 FROM {tables.members} "
                "WHERE kind = 'alias' LIMIT 1) a"
            )
        )

    def _stage(
        self,
        session: PostgresSession,
        source: Source,
        query: str,
        params: dict[str, Any],
        columns: IdentifierColumns,
        left_out: tuple[str, ...],
    ) -> StagedCounts:
        """Count the result's values and put its distinct identifiers in the result table."""
        kinds = columns.kinds
        selects = ["count(*)"]
        for kind in kinds:
            column = f"q.{quote_identifier(columns.columns[kind])}"
            valid = f"{column} <> '' AND NOT {invalid_sql(column)}"
            selects += [
                f"count({column})",
                f"count(*) FILTER (WHERE {column} = '')",
                f"count(*) FILTER (WHERE {column} <> '' AND {invalid_sql(column)})",
                f"coalesce(sum(octet_length({column})), 0)",
                f"count(DISTINCT {column}) FILTER (WHERE {valid})" if kind in left_out else "0",
            ]
        try:
            [row] = session.rows(
                f"SELECT {', '.join(selects)} FROM ({query}) AS q",
                params,
                doing="counting the result",
            )
        except Exception as error:
            raise query_failed(source, error) from error
        counts = StagedCounts(rows_read=int(row[0]))
        for index, kind in enumerate(kinds):
            non_null, empty, invalid, size, distinct = (
                int(v) for v in row[1 + 5 * index : 6 + 5 * index]
            )
            counts.kinds[kind] = StagedKindCounts(
                values=non_null - empty - invalid,
                distinct=distinct,
                null=counts.rows_read - non_null,
                empty=empty,
                invalid=invalid,
                value_bytes=size,
            )
        sent = [kind for kind in kinds if kind not in left_out]
        if sent:
            pairs = ", ".join(
                f"({quote_literal(kind)}, q.{quote_identifier(columns.columns[kind])})"
                for kind in sent
            )
            session.execute(
                f"INSERT INTO {RESULT} SELECT DISTINCT v.kind, v.value FROM ({query}) AS q "
                f"CROSS JOIN LATERAL (VALUES {pairs}) AS v(kind, value) "
                f"WHERE v.value <> '' AND NOT {invalid_sql('v.value')}",
                params,
                doing="staging the result",
            )
        session.execute(f"ANALYZE {RESULT}", doing="staging the result")
        return counts

    def _invalid_samples(
        self,
        session: PostgresSession,
        source: Source,
        query: str,
        params: dict[str, Any],
        columns: IdentifierColumns,
    ) -> list[InvalidIdentifier]:
        """The first invalid identifiers, with their row numbers, for the message."""
        pairs = ", ".join(
            f"({quote_literal(kind)}, s.{quote_identifier(columns.columns[kind])})"
            for kind in columns.kinds
        )
        rows = session.rows(
            "SELECT s.cs_row, v.kind, v.value FROM "
            f"(SELECT row_number() OVER () AS cs_row, q.* FROM ({query}) AS q) AS s "
            f"CROSS JOIN LATERAL (VALUES {pairs}) AS v(kind, value) "
            f"WHERE v.value <> '' AND {invalid_sql('v.value')} ORDER BY s.cs_row "
            f"LIMIT {SAMPLE_INVALID}",
            params,
            doing="finding the invalid identifiers",
        )
        return [
            InvalidIdentifier(str(kind), int(number), str(value), invalid_reason(str(value)) or "")
            for number, kind, value in rows
        ]

    def _write_plan(self, session: PostgresSession, send_sql: str, path: Path) -> int:
        """Stream the changes to send into the run's plan file; the rows that crossed."""
        reader = session.copy_out(
            f"SELECT kind, value, should_remove FROM ({send_sql}) s "
            f"ORDER BY should_remove, {_COLLATED}",
            CHANGES_SCHEMA,
            doing="reading the changes",
        )
        counted = _Counted(reader)
        con = duckdb.connect(config={"memory_limit": "64MB", "threads": 1})
        try:
            con.register("changes_stream", counted.reader())
            con.execute(
                plan_copy_sql(
                    "SELECT kind, value, should_remove FROM changes_stream", path, self.alias_label
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
        at any point of an earlier call: tables committed by it are kept.
        """
        if self.dry_run:
            return
        previous = self.store.current()
        if previous is not None and previous.run_id == self.run_id:
            return  # an earlier call committed all of it
        with self._session() as session:
            members = self._qualified(self.members_table)
            exits = self._qualified(self.exits_table)
            if not session.scalar(f"SELECT to_regclass({quote_literal(members)}) IS NOT NULL"):
                session.execute(
                    f"CREATE TEMP TABLE {SENT} (kind text NOT NULL, value text NOT NULL, "
                    "should_remove boolean NOT NULL)",
                    doing="committing the snapshot",
                )
                session.copy_in(
                    SENT, CHANGES_SCHEMA.names, _parquet_batches(self.plan_path, CHANGES_SCHEMA)
                )
                session.execute(f"ANALYZE {SENT}", doing="committing the snapshot")
                tables = self._previous_tables(session, previous)
                mentioned = (
                    f"NOT EXISTS (SELECT 1 FROM {SENT} s "
                    "WHERE s.kind = p.kind AND s.value = p.value)"
                )
                session.execute(
                    f"CREATE TABLE {members} AS SELECT p.kind, p.value FROM {tables.members} p "
                    f"WHERE {mentioned} UNION ALL "
                    f"SELECT kind, value FROM {SENT} WHERE NOT should_remove",
                    doing=f"writing the snapshot table {members}",
                )
                session.execute(
                    f"CREATE TABLE {exits} AS SELECT p.kind, p.value FROM {tables.exits} p "
                    f"WHERE {mentioned} UNION ALL "
                    f"SELECT kind, value FROM {SENT} WHERE should_remove",
                    doing=f"writing the snapshot table {exits}",
                )
                session.commit()
            self.store.commit(self.run_id)
            self._drop_stale(session)

    def _drop_stale(self, session: PostgresSession) -> None:
        """Drop this cohort's tables of older generations (a failure leaves them for next time)."""
        prefix = self.members_table[: self.members_table.index("_", 2) + 1]
        patterns = [quote_literal(f"{letter}{prefix[1:]}%") for letter in ("m", "x")]
        try:
            names = session.rows(
                f"SELECT tablename FROM pg_tables WHERE schemaname = {quote_literal(self.schema)} "
                f"AND (tablename LIKE {patterns[0]} OR tablename LIKE {patterns[1]})",
                doing="listing older snapshot tables",
            )
            for (name,) in names:
                if name not in (self.members_table, self.exits_table):
                    session.execute(
                        f"DROP TABLE IF EXISTS {self._qualified(name)}",
                        doing="dropping an older snapshot table",
                    )
            session.commit()
        except Exception:
            session.rollback()


@dataclass(frozen=True)
class _Tables:
    """The relations of the previous snapshot inside the session."""

    members: str
    exits: str
    first_run: bool = False
    tracked: bool = True  # a previous snapshot exists


class _Diff:
    """The diff's statements on the session tables, inside the read-only transaction."""

    def __init__(self, session: PostgresSession, tables: _Tables, *, abandoned: bool) -> None:
        self.session = session
        self.tables = tables
        self.abandoned = abandoned
        self.counts: dict[str, dict[str, int]] = {}
        self.full_resync = False
        self._count("result", f"SELECT kind, count(*) FROM {RESULT} GROUP BY kind")
        if tables.first_run:
            self._run(f"INSERT INTO {DIFF} SELECT kind, value, false FROM {RESULT}")
        elif not abandoned:
            self._count("previous", f"SELECT kind, count(*) FROM {tables.members} GROUP BY kind")
            # Both anti-joins in one full outer join keeping the unmatched rows of each side.
            self._run(
                f"INSERT INTO {DIFF} SELECT coalesce(r.kind, p.kind), coalesce(r.value, p.value), "
                f"r.value IS NULL FROM {RESULT} r FULL OUTER JOIN {tables.members} p "
                "ON r.kind = p.kind AND r.value = p.value WHERE r.value IS NULL OR p.value IS NULL"
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
            self._count("previous", f"SELECT kind, count(*) FROM ({possible}) s GROUP BY kind")
            self._run(
                f"INSERT INTO {DIFF} SELECT r.kind, r.value, false FROM {RESULT} r "
                "WHERE NOT EXISTS "
                f"(SELECT 1 FROM ({certain}) c WHERE c.kind = r.kind AND c.value = r.value)"
            )
            self._run(
                f"INSERT INTO {DIFF} SELECT s.kind, s.value, true FROM ({possible}) s "
                "WHERE NOT EXISTS "
                f"(SELECT 1 FROM {RESULT} r WHERE r.kind = s.kind AND r.value = s.value)"
            )
        self._run(f"ANALYZE {DIFF}")
        self._count(
            "entries", f"SELECT kind, count(*) FROM {DIFF} WHERE NOT should_remove GROUP BY kind"
        )
        if not tables.first_run:
            self._count(
                "exits", f"SELECT kind, count(*) FROM {DIFF} WHERE should_remove GROUP BY kind"
            )

    def _run(self, sql: str) -> None:
        self.session.execute(sql, doing="diffing the result against the snapshot")

    def _count(self, name: str, sql: str) -> None:
        for kind, count in self.session.rows(sql, doing="counting the diff"):
            counts = self.counts.setdefault(str(kind), {})
            counts[name] = counts.get(name, 0) + int(count)

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
        new_exits = int(self.session.scalar(f"SELECT count(*) FROM ({self.new_exits_sql()}) e"))
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
            sample_adds=self._sample(False, sample_size),
            sample_removes=self._sample(True, sample_size),
        )

    def _sample(self, remove: bool, size: int) -> tuple[Identifier, ...]:
        rows = self.session.rows(
            f"SELECT kind, value FROM ({self.send_sql()}) s "
            f"WHERE should_remove = {str(remove).lower()} "
            f"ORDER BY {_COLLATED} LIMIT {int(size)}",
            doing="sampling the changes",
        )
        return tuple((str(kind), str(value)) for kind, value in rows)


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


def _parquet_batches(path: Path, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """The ``schema`` columns of a Parquet file, a batch at a time."""
    parquet = pq.ParquetFile(path)
    try:
        yield from parquet.iter_batches(batch_size=65_536, columns=schema.names)
    finally:
        parquet.close()


def _copy_local(session: PostgresSession, path: Path | None, table: str) -> str:
    """A session table of a Parquet generation's members or exits (empty for none); its name."""
    doing = "copying the snapshot into the warehouse"
    session.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {table} (kind text NOT NULL, value text NOT NULL)",
        doing=doing,
    )
    session.execute(f"TRUNCATE {table}", doing=doing)
    if path is not None and path.exists():
        session.copy_in(table, MEMBERS_SCHEMA.names, _parquet_batches(path, MEMBERS_SCHEMA))
        session.execute(f"ANALYZE {table}", doing=doing)
    return table
