"""Mirror planning: the entries and exits that make a cohort equal to the latest result.

Braze asks partners to send only who entered or left a cohort since the last
refresh, and every identifier sent costs data points. A mirror run therefore
diffs the staged result against the snapshot of the last successful sync
(:mod:`cohortsync.export.snapshots`) with DuckDB anti-joins, out of core: the
scratch database lives in a file of the run directory, with a memory limit and
a spill directory, so ten million identifiers diff inside a few hundred MB.

The mirror is *tracked*: the snapshot holds only what this system added to the
cohort through one authentication, and exits are taken from it alone, so a
member that someone else put into the cohort is never removed.

Runs that stopped half-way and were superseded by a run of another spec
("abandoned" runs) leave the cohort uncertain: each of their batches may or
may not have been applied. Their changes files are folded in so that nothing
is lost or leaked: an identifier is *certainly* present when the snapshot
holds it and no abandoned run tried to remove it, and *possibly* present when
the snapshot or an abandoned run's additions hold it. Additions are the result
minus the certain set; removals are the possible set minus the result.

Without abandoned runs the certain and possible sets are both the snapshot,
and the two anti-joins run as one full outer join that keeps the unmatched
rows of each side: one hash build over ten million identifiers instead of two.

No statement holds more than one *pass*: the diff runs kind by kind, and a
kind with more than :data:`PASS_VALUES` identifiers (or :data:`PASS_BYTES`
bytes) on one side is split by ``hash(value)`` into several passes, as
staging deduplicates; a single join over every identifier ran out of the
memory limit at ten million rows of three kinds.

Changes are written as ``(kind, value, should_remove)`` ordered by
``(should_remove, kind, value)``, the order the batcher numbers them in, so
that a batch number means the same identifiers on every resume.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import duckdb

from cohortsync.errors import ConfigError, MirrorGuardRefused
from cohortsync.export.identifiers import KINDS
from cohortsync.export.plan import Plan
from cohortsync.export.snapshots import EXITS_FILE, MEMBERS_FILE, Snapshot, SnapshotStore
from cohortsync.export.spec import MirrorOptions
from cohortsync.export.staging import PASS_BYTES, PASS_VALUES
from cohortsync.export.stopping import StopToken

DEFAULT_MEMORY_LIMIT = "128MB"  # ~270 MB peak RSS for 10M identifiers; the diff spills
DEFAULT_SAMPLE_SIZE = 5

Identifier = tuple[str, str]

_EMPTY = "SELECT NULL::VARCHAR AS kind, NULL::VARCHAR AS value WHERE false"
_EMPTY_CHANGES = (
    "SELECT NULL::VARCHAR AS kind, NULL::VARCHAR AS value, NULL::BOOLEAN AS should_remove "
    "WHERE false"
)


class ResultSource(Protocol):
    """A staged query result: a relation of distinct ``(kind, value)`` rows."""

    def relation_sql(self, con: duckdb.DuckDBPyConnection) -> str:
        """SQL naming the relation inside ``con`` (attaching files as needed)."""
        ...


@dataclass(frozen=True)
class ParquetResult:
    """A result held in one or more Parquet files of ``(kind, value)`` rows."""

    paths: tuple[Path, ...]

    @classmethod
    def of(cls, *paths: Path) -> ParquetResult:
        return cls(tuple(paths))

    def relation_sql(self, con: duckdb.DuckDBPyConnection) -> str:
        return f"read_parquet({_sql_list(self.paths)})"


@dataclass(frozen=True)
class DuckDBResult:
    """A result held in a table of a DuckDB file, attached read-only."""

    path: Path
    table: str

    def relation_sql(self, con: duckdb.DuckDBPyConnection) -> str:
        con.execute(f"ATTACH {_sql_str(self.path)} AS staged (READ_ONLY)")
        return f'staged."{self.table}"'


@dataclass(frozen=True)
class KindCounts:
    """Counts of one identifier kind: result, tracked before, entries, exits."""

    result: int = 0
    previous: int = 0
    entries: int = 0
    exits: int = 0


@dataclass(frozen=True)
class MirrorPlan:
    """What a mirror run will send, and the counts the guards and reports need.

    ``entries`` and ``exits`` are the true changes since the last sync;
    ``adds`` and ``removes`` are what will be sent (equal to them, except on
    ``--full-resync`` which re-sends every member and every known exit, and
    after abandoned runs whose uncertain changes are sent again).
    """

    first_run: bool
    full_resync: bool
    result_members: int
    previous_members: int
    entries: int
    exits: int
    adds: int
    removes: int
    new_known_exits: int
    by_kind: dict[str, KindCounts] = field(default_factory=dict)
    sample_adds: tuple[Identifier, ...] = ()
    sample_removes: tuple[Identifier, ...] = ()
    changes_path: Path | None = None
    snapshot_dir: Path | None = None

    @property
    def unchanged(self) -> int:
        return self.result_members - self.entries

    @property
    def to_send(self) -> int:
        return self.adds + self.removes

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready counts and samples, for ``--json`` and the run report."""
        return {
            "first_run": self.first_run,
            "full_resync": self.full_resync,
            "result_members": self.result_members,
            "previous_members": self.previous_members,
            "entries": self.entries,
            "exits": self.exits,
            "unchanged": self.unchanged,
            "adds": self.adds,
            "removes": self.removes,
            "by_kind": {kind: vars(counts) for kind, counts in self.by_kind.items()},
            "sample_adds": [list(item) for item in self.sample_adds],
            "sample_removes": [list(item) for item in self.sample_removes],
        }


def plan_mirror(
    result: ResultSource,
    previous: Snapshot | None,
    *,
    work_dir: Path,
    options: MirrorOptions = MirrorOptions(),
    abandoned: Sequence[Path] = (),
    changes_path: Path | None = None,
    snapshot_dir: Path | None = None,
    alias_label: str | None = None,
    cohort: str = "the cohort",
    memory_limit: str | None = None,
    threads: int | None = None,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    distinct: bool = False,
    write_members: bool = True,
    pass_values: int | None = None,
    stop: StopToken | None = None,
) -> MirrorPlan:
    """Diff ``result`` against ``previous`` and, unless this is a dry run, write the changes.

    Args:
        result: the staged result, distinct ``(kind, value)`` rows (else pass ``distinct``).
        previous: the committed snapshot, ``None`` on the first run.
        work_dir: a directory for the scratch database and spill files (emptied after).
        options: the guards (empty result, removal share), checked before anything is
            written, and ``full_resync``: send every member as an add and every known
            exit as a remove.
        abandoned: ``changes.parquet`` files of runs since the snapshot that stopped
            half-way and will never finish.
        changes_path: where to write the ordered changes; ``None`` with
            ``snapshot_dir=None`` plans without writing (``--dry-run``).
        snapshot_dir: where to write the new snapshot's Parquet files.
        alias_label: the alias column of this export; it must match the snapshot's.
        cohort: how messages name the cohort.
        memory_limit: DuckDB's memory limit (:data:`DEFAULT_MEMORY_LIMIT` by default);
            the diff spills to ``work_dir`` beyond it.
        threads: DuckDB threads (default: all cores).
        sample_size: how many identifiers of each side to return for display.
        distinct: deduplicate ``result`` first (the staged result already is).
        write_members: write the new snapshot's members file; ``False`` when ``result``
            already is that file (the pipeline stages the result there).
        pass_values: the most identifiers of one kind that one join of the diff takes
            (:data:`PASS_VALUES` by default); larger kinds are split by ``hash(value)``.
        stop: the run's stop token: checked between passes, and a request
            interrupts the statement running.

    Raises:
        MirrorGuardRefused: a guard tripped; the message gives the numbers and the flag.
        ConfigError: the alias column differs from the one the snapshot was made with.
        RunInterrupted: ``stop`` was requested.
    """
    if (changes_path is None) != (snapshot_dir is None):
        raise ValueError("changes_path and snapshot_dir are written together or not at all")
    work_dir.mkdir(parents=True, exist_ok=True)
    scratch = work_dir / "mirror-scratch.duckdb"
    spill = work_dir / "mirror-spill"
    _remove_scratch(scratch, spill)
    spill.mkdir()
    con = duckdb.connect(str(scratch))
    stop = stop or StopToken()
    try:
        con.execute(f"SET memory_limit = {_sql_str(memory_limit or DEFAULT_MEMORY_LIMIT)}")
        con.execute(f"SET temp_directory = {_sql_str(spill)}")
        con.execute("SET preserve_insertion_order = false")
        if threads:
            con.execute(f"SET threads = {int(threads)}")
        with stop.interrupting(con.interrupt):
            diff = _Diff(
                con,
                result,
                previous,
                abandoned,
                distinct=distinct,
                work_dir=spill,
                pass_values=pass_values or PASS_VALUES,
                stop=stop,
            )
            _check_alias_label(con, previous, alias_label, cohort)
            plan = diff.plan(full_resync=options.full_resync, sample_size=sample_size)
            check_guards(plan, options, cohort=cohort)
            if changes_path is not None and snapshot_dir is not None:
                diff.write(changes_path, snapshot_dir, write_members=write_members)
                plan = _with_paths(plan, changes_path, snapshot_dir)
        return plan
    except (duckdb.Error, RuntimeError) as error:  # RuntimeError: "Query interrupted"
        if stop.requested:  # a statement was interrupted on the run's request
            raise stop.interrupted("the mirror diff") from error
        raise
    finally:
        con.close()
        _remove_scratch(scratch, spill)


def check_guards(plan: MirrorPlan, guards: MirrorOptions, *, cohort: str) -> None:
    """Refuse an empty result, or a removal share above ``max_remove_pct``.

    ``--allow-empty`` is consent to empty the cohort, so an empty result it
    allows is not also held back by the removal share.
    """
    if plan.result_members == 0:
        if not guards.allow_empty:
            tracked = plan.previous_members
            what = f"would remove all {tracked:,} tracked members" if tracked else "is empty"
            raise MirrorGuardRefused(
                f"mirror of {cohort}: the query returned no identifiers, so the sync {what}",
                hint="check the query, or rerun with --allow-empty to empty the cohort",
                **_guard_counts(plan),
            )
        return
    if plan.previous_members == 0:
        return
    if plan.exits * 100 > guards.max_remove_pct * plan.previous_members:
        share = 100 * plan.exits / plan.previous_members
        needed = _ceil_pct(plan.exits, plan.previous_members)
        raise MirrorGuardRefused(
            f"mirror of {cohort} would remove {plan.exits:,} of its {plan.previous_members:,} "
            f"tracked members ({share:.1f}%), more than --max-remove-pct "
            f"{guards.max_remove_pct:g}",
            hint=f"check the query, or rerun with --max-remove-pct {needed:g} or higher",
            **_guard_counts(plan),
        )


def _guard_counts(plan: MirrorPlan) -> dict[str, int]:
    """The numbers a guard refusal carries, for a caller that acts on them."""
    return {
        "result_members": plan.result_members,
        "previous_members": plan.previous_members,
        "exits": plan.exits,
    }


class _Diff:
    """The tables of one diff inside the scratch connection, built kind by kind.

    No statement joins or deduplicates more than one *pass*: the identifiers
    of one kind, or of one ``hash(value) % parts`` share of a kind with more
    than ``pass_values`` identifiers on one side (as staging deduplicates,
    :mod:`cohortsync.export.staging`). The true changes are appended to the
    ``diff`` table and the new known exits to ``new_exits``, pass after pass,
    and the changes file is written one ``(should_remove, kind)`` group at a
    time, each sorted on its own.
    """

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        result: ResultSource,
        previous: Snapshot | None,
        abandoned: Sequence[Path],
        *,
        distinct: bool,
        work_dir: Path,
        pass_values: int,
        stop: StopToken,
    ) -> None:
        self.con = con
        self.stop = stop
        self.work_dir = work_dir
        self.first_run = previous is None and not abandoned
        self.sends_result = self.first_run  # adds are the whole result (else the entries)
        self.sends_new_exits = False  # removes are every known exit (else the exits)
        self.pass_values = pass_values
        self.pass_bytes = max(1, PASS_BYTES * pass_values // PASS_VALUES)
        source = result.relation_sql(con)
        con.execute(f"CREATE VIEW result_rows AS SELECT kind, value FROM {source}")
        members = previous.members_path if previous else None
        exits = previous.exits_path if previous else None
        con.execute(f"CREATE VIEW previous AS {_parquet_or_empty(members)}")
        con.execute(f"CREATE VIEW known_exits AS {_parquet_or_empty(exits)}")
        if abandoned:
            con.execute(
                "CREATE VIEW abandoned AS SELECT kind, value, should_remove "
                f"FROM read_parquet({_sql_list(abandoned)})"
            )
        else:
            con.execute(f"CREATE VIEW abandoned AS {_EMPTY_CHANGES}")
        for table in ("diff", "new_exits"):
            remove = ", should_remove BOOLEAN NOT NULL" if table == "diff" else ""
            con.execute(
                f"CREATE TABLE {table} (kind VARCHAR NOT NULL, value VARCHAR NOT NULL{remove})"
            )
        sizes = self._sizes()
        self.kinds = sorted(sizes)
        self.parts = {kind: self._parts(*sizes[kind]) for kind in self.kinds}
        if distinct:
            # Deduplicated pass by pass into a table, which the diff then reads.
            con.execute("CREATE TABLE result_distinct (kind VARCHAR, value VARCHAR)")
            for kind, share in self._passes():
                con.execute(
                    f"INSERT INTO result_distinct SELECT {_sql_str(kind)}, value FROM "
                    f"(SELECT DISTINCT value FROM result_rows WHERE {share})"
                )
            con.execute("CREATE VIEW result AS SELECT kind, value FROM result_distinct")
        else:
            con.execute("CREATE VIEW result AS SELECT kind, value FROM result_rows")
        self.counts: dict[str, dict[str, int]] = {}
        self._add_counts("result", "SELECT kind, count(*) FROM result GROUP BY kind")
        if self.first_run:
            return  # everyone enters; nobody was tracked, nobody leaves
        if not abandoned:  # then the snapshot is what may be, and surely is, in the cohort
            self._add_counts("previous", "SELECT kind, count(*) FROM previous GROUP BY kind")
        for kind, share in self._passes():
            self._diff_pass(kind, share, abandoned=bool(abandoned))
        self._add_counts(
            "entries", "SELECT kind, count(*) FROM diff WHERE NOT should_remove GROUP BY kind"
        )
        self._add_counts(
            "exits", "SELECT kind, count(*) FROM diff WHERE should_remove GROUP BY kind"
        )

    def _sizes(self) -> dict[str, tuple[int, int]]:
        """Per kind, the rows and bytes of its largest side (one scan of each input)."""
        rows = self.con.execute(
            "SELECT kind, count(*), coalesce(sum(strlen(value)), 0) FROM ("
            "SELECT kind, value, 0 AS side FROM result_rows "
            "UNION ALL SELECT kind, value, 1 FROM previous "
            "UNION ALL SELECT kind, value, 2 FROM abandoned "
            "UNION ALL SELECT kind, value, 3 FROM known_exits) GROUP BY kind, side"
        ).fetchall()
        sizes: dict[str, tuple[int, int]] = {}
        for kind, count, size in rows:
            most, largest = sizes.get(str(kind), (0, 0))
            sizes[str(kind)] = (max(most, int(count)), max(largest, int(size)))
        return sizes

    def _parts(self, values: int, size: int) -> int:
        """How many hash-partitioned passes diff one kind."""
        return max(1, math.ceil(values / self.pass_values), math.ceil(size / self.pass_bytes))

    def _passes(self) -> list[tuple[str, str]]:
        """``(kind, SQL condition)`` of every pass, kind by kind."""
        return [
            (kind, _share(kind, part, parts))
            for kind in self.kinds
            for parts in [self.parts[kind]]
            for part in range(parts)
        ]

    def _diff_pass(self, kind: str, share: str, *, abandoned: bool) -> None:
        """Append one pass's entries and exits to ``diff``, its new known exits to ``new_exits``."""
        self.stop.check()
        label = _sql_str(kind)
        result = f"SELECT value FROM result WHERE {share}"
        previous = f"SELECT value FROM previous WHERE {share}"
        if not abandoned:
            # certain = possible = previous: both anti-joins in one full outer join
            # keeping the unmatched rows of each side (one hash build instead of two).
            self.con.execute(
                f"INSERT INTO diff SELECT {label}, coalesce(r.value, p.value), "
                f"r.value IS NULL FROM ({result}) r FULL OUTER JOIN ({previous}) p "
                "ON r.value = p.value WHERE r.value IS NULL OR p.value IS NULL"
            )
        else:
            removed = f"SELECT value FROM abandoned WHERE should_remove AND {share}"
            added = f"SELECT value FROM abandoned WHERE NOT should_remove AND {share}"
            # Present for sure: tracked, and no abandoned run may have removed it.
            certain = f"SELECT value FROM ({previous}) p ANTI JOIN ({removed}) a USING (value)"
            # Maybe present: tracked, or an abandoned run may have added it.
            possible = f"{previous} UNION SELECT value FROM ({added}) a"
            self.con.execute(
                f"INSERT INTO diff SELECT {label}, value, false FROM ({result}) r "
                f"ANTI JOIN ({certain}) c USING (value)"
            )
            self.con.execute(
                f"INSERT INTO diff SELECT {label}, value, true FROM ({possible}) s "
                f"ANTI JOIN ({result}) r USING (value)"
            )
            row = self.con.execute(f"SELECT count(*) FROM ({possible}) s").fetchone()
            if row and row[0]:
                counts = self.counts.setdefault(kind, {})
                counts["previous"] = counts.get("previous", 0) + int(row[0])
        # Known exits are never tracked members, so those back in the result are entries:
        # anti-joining them with the (small) entries instead of the whole result is the same.
        self.con.execute(
            f"INSERT INTO new_exits SELECT {label}, value FROM ("
            f"SELECT value FROM (SELECT value FROM known_exits WHERE {share}) k ANTI JOIN "
            f"(SELECT value FROM diff WHERE NOT should_remove AND {share}) e USING (value) "
            f"UNION SELECT value FROM diff WHERE should_remove AND {share})"
        )

    def _add_counts(self, name: str, sql: str) -> None:
        for kind, count in self.con.execute(sql).fetchall():
            counts = self.counts.setdefault(str(kind), {})
            counts[name] = counts.get(name, 0) + int(count)

    def plan(self, *, full_resync: bool, sample_size: int) -> MirrorPlan:
        counts = self.counts
        if self.first_run:
            for values in counts.values():
                values["entries"] = values.get("result", 0)
        by_kind = {kind: KindCounts(**values) for kind, values in sorted(counts.items())}
        total = {
            name: sum(values.get(name, 0) for values in counts.values())
            for name in ("result", "previous", "entries", "exits")
        }
        self.sends_result = full_resync or self.first_run
        self.sends_new_exits = full_resync
        if full_resync:
            # Every known exit still out, with this run's exits: the new known exits.
            removes = self._count("new_exits")
            adds = total["result"]
        else:
            removes = total["exits"]
            adds = total["entries"]
        return MirrorPlan(
            first_run=self.first_run,
            full_resync=full_resync,
            result_members=total["result"],
            previous_members=total["previous"],
            entries=total["entries"],
            exits=total["exits"],
            adds=adds,
            removes=removes,
            new_known_exits=self._count("new_exits"),
            by_kind=by_kind,
            sample_adds=self._sample(self._adds, sample_size),
            sample_removes=self._sample(self._removes, sample_size),
        )

    def _adds(self, kind: str) -> str:
        """SQL of the values of one kind sent as adds."""
        if self.sends_result:
            return f"SELECT value FROM result WHERE kind = {_sql_str(kind)}"
        return f"SELECT value FROM diff WHERE NOT should_remove AND kind = {_sql_str(kind)}"

    def _removes(self, kind: str) -> str:
        """SQL of the values of one kind sent as removes."""
        if self.sends_new_exits:
            return f"SELECT value FROM new_exits WHERE kind = {_sql_str(kind)}"
        return f"SELECT value FROM diff WHERE should_remove AND kind = {_sql_str(kind)}"

    def write(self, changes_path: Path, snapshot_dir: Path, *, write_members: bool) -> None:
        """Write the ordered changes and the new snapshot's members and known exits.

        Each ``(should_remove, kind)`` group is sorted on its own into a part
        file; the parts are then copied, in order, into the changes file.
        """
        changes_path.parent.mkdir(parents=True, exist_ok=True)
        snapshot_dir.mkdir(parents=True, exist_ok=True)
        parts: list[Path] = []
        for remove, values in ((False, self._adds), (True, self._removes)):
            for kind in self.kinds:
                self.stop.check()
                part = self.work_dir / f"changes-{len(parts)}.parquet"
                # Insertion order is relaxed for speed; the ORDER BY still fixes the order.
                self.con.execute(
                    f"COPY (SELECT {_sql_str(kind)} AS kind, value, {str(remove).lower()} "
                    f"AS should_remove FROM ({values(kind)}) v ORDER BY value) "
                    f"TO {_sql_str(part)} (FORMAT parquet, COMPRESSION zstd)"
                )
                parts.append(part)
        self._concatenate(parts, changes_path)
        if write_members:
            self.con.execute(
                "COPY (SELECT kind, value FROM result) "
                f"TO {_sql_str(snapshot_dir / MEMBERS_FILE)} (FORMAT parquet, COMPRESSION zstd)"
            )
        self.con.execute(
            "COPY (SELECT kind, value FROM new_exits) "
            f"TO {_sql_str(snapshot_dir / EXITS_FILE)} (FORMAT parquet, COMPRESSION zstd)"
        )

    def _concatenate(self, parts: list[Path], path: Path) -> None:
        """Copy the part files into ``path``, rows in file order (one thread keeps it lean)."""
        ((threads,),) = self.con.execute("SELECT current_setting('threads')").fetchall()
        source = (
            f"SELECT kind, value, should_remove FROM read_parquet({_sql_list(parts)})"
            if parts
            else _EMPTY_CHANGES
        )
        self.con.execute("SET preserve_insertion_order = true")
        self.con.execute("SET threads = 1")
        try:
            self.con.execute(
                f"COPY ({source}) TO {_sql_str(path)} (FORMAT parquet, COMPRESSION zstd)"
            )
        finally:
            self.con.execute(f"SET threads = {int(threads)}")
            self.con.execute("SET preserve_insertion_order = false")
        for part in parts:
            part.unlink(missing_ok=True)

    def _count(self, relation: str) -> int:
        row = self.con.execute(f"SELECT count(*) FROM {relation}").fetchone()
        return int(row[0]) if row else 0

    def _sample(self, values: Callable[[str], str], size: int) -> tuple[Identifier, ...]:
        """The first ``size`` identifiers by ``(kind, value)``: a top-N per kind."""
        sample: list[Identifier] = []
        for kind in self.kinds:
            if len(sample) >= size:
                break
            rows = self.con.execute(
                f"SELECT value FROM ({values(kind)}) v ORDER BY value "
                f"LIMIT {int(size) - len(sample)}"
            ).fetchall()
            sample += [(kind, str(value)) for (value,) in rows]
        return tuple(sample)


def _check_alias_label(
    con: duckdb.DuckDBPyConnection, previous: Snapshot | None, alias_label: str | None, cohort: str
) -> None:
    """Aliases are tracked by name; their label must not change under a snapshot."""
    if previous is None or previous.alias_label == alias_label:
        return
    row = con.execute("SELECT count(*) FROM previous WHERE kind = 'alias'").fetchone()
    check_alias_label(previous, alias_label, cohort, tracked_aliases=int(row[0]) if row else 0)


def check_alias_label(
    previous: Snapshot | None, alias_label: str | None, cohort: str, *, tracked_aliases: int
) -> None:
    """Refuse an alias column other than the one the snapshot's aliases were tracked under.

    Raises:
        ConfigError: the snapshot tracks aliases under another label.
    """
    if previous is None or previous.alias_label == alias_label or not tracked_aliases:
        return
    raise ConfigError(
        f"mirror of {cohort}: the snapshot tracks aliases labelled "
        f"{previous.alias_label!r} but this export uses alias column {alias_label!r}",
        hint=(
            f"export with --alias-column {previous.alias_label}, or mirror the new "
            "alias column into another cohort id"
        ),
    )


def _with_paths(plan: MirrorPlan, changes_path: Path, snapshot_dir: Path) -> MirrorPlan:
    return replace(plan, changes_path=changes_path, snapshot_dir=snapshot_dir)


def _ceil_pct(part: int, whole: int) -> float:
    """The smallest whole percentage that lets ``part`` of ``whole`` through."""
    return float(-(-part * 100 // whole))


def _share(kind: str, part: int, parts: int) -> str:
    """SQL condition selecting one pass: one kind, or one hash share of it."""
    condition = f"kind = {_sql_str(kind)}"
    return condition + (f" AND hash(value) % {parts} = {part}" if parts > 1 else "")


def _parquet_or_empty(path: Path | None) -> str:
    if path is None:
        return _EMPTY
    return f"SELECT kind, value FROM read_parquet({_sql_str(path)})"


def _sql_str(value: object) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _sql_list(paths: Sequence[Path]) -> str:
    return "[" + ", ".join(_sql_str(path) for path in paths) + "]"


def _remove_scratch(scratch: Path, spill: Path) -> None:
    for path in (scratch, scratch.with_name(scratch.name + ".wal")):
        path.unlink(missing_ok=True)
    shutil.rmtree(spill, ignore_errors=True)


class MirrorStep:
    """The mirror planner of an export run (a :class:`~cohortsync.export.plan.Planner`).

    The staged result is written once, as the new snapshot's members file, by
    the statement that reads the source stream; the diff then reads it back
    from Parquet. In a dry run the "new snapshot" goes to the run's scratch
    directory and is never committed; a dry run reads no run history, so it
    does not count the changes of stopped runs that the real run will fold in.

    Args:
        store: the cohort's snapshot store.
        run_id: the run; names its pending snapshot.
        options: guards and ``full_resync``.
        alias_label: the export's alias column.
        abandoned: plans of earlier runs that may have been applied in part.
        dry_run: plan only; keep the store untouched.
        stop: the run's stop token (the diff stops on its request).
    """

    def __init__(
        self,
        store: SnapshotStore,
        run_id: str,
        options: MirrorOptions,
        *,
        alias_label: str | None,
        abandoned: Sequence[Path] = (),
        dry_run: bool = False,
        stop: StopToken | None = None,
    ) -> None:
        self.store = store
        self.stop = stop
        self.run_id = run_id
        self.options = options
        self.alias_label = alias_label
        self.abandoned = tuple(abandoned)
        self.dry_run = dry_run
        self.plan: MirrorPlan | None = None

    scans_staged_in_order = False  # its changes are read back from the diff's own file

    def snapshot_dirs(self, run_dir: Path) -> list[Path]:
        """The new snapshot's directory: the staging database writes its members there."""
        return [self.snapshot_dir(run_dir)]

    def snapshot_dir(self, run_dir: Path) -> Path:
        """Where the staging database writes the new snapshot's members: pending, or scratch."""
        return run_dir / "snapshot" if self.dry_run else self.store.pending_dir(self.run_id)

    def changes_sql(self, staging: StagingLike, identifiers_sql: str, run_dir: Path) -> str:
        """Stage the result, diff it, and return SQL of the changes with kind codes.

        Args:
            staging: the run's staging database (its connection reads the source).
            identifiers_sql: distinct ``(kind UTINYINT, value VARCHAR)`` of the source.
            run_dir: the run's directory (scratch files, the ordered changes).

        Raises:
            MirrorGuardRefused: a guard tripped (before anything is sent).
        """
        previous = self.store.current()
        if previous is not None and previous.warehouse is not None:
            raise ConfigError(
                f"the mirror snapshot of {self.store.key.describe()} lives in the warehouse "
                f"{previous.warehouse.get('url')}, and this export diffs in cohortsync",
                hint="export from that warehouse with COHORTSYNC_MIRROR_DIFF=auto, or mirror "
                "into another cohort id",
            )
        snapshot_dir = self.snapshot_dir(run_dir)
        snapshot_dir.mkdir(parents=True, exist_ok=True)
        members = snapshot_dir / MEMBERS_FILE
        names = " ".join(f"WHEN {code} THEN '{name}'" for code, name in enumerate(KINDS))
        statement = (
            f"COPY (SELECT CASE kind {names} END AS kind, value FROM ({identifiers_sql})) "
            f"TO {_sql_str(members)} (FORMAT parquet, COMPRESSION zstd)"
        )
        staging.run(statement)
        mirror_changes = run_dir / "mirror-changes.parquet"
        self.plan = plan_mirror(
            ParquetResult.of(members),
            previous,
            work_dir=run_dir / "mirror",
            options=self.options,
            abandoned=self.abandoned,
            changes_path=mirror_changes,
            snapshot_dir=snapshot_dir,
            alias_label=self.alias_label,
            cohort=self.store.key.describe(),
            write_members=False,
            stop=self.stop,
        )
        if not self.dry_run:
            self.store.write_pending_meta(
                self.run_id,
                members=self.plan.result_members,
                exits=self.plan.new_known_exits,
                alias_label=self.alias_label,
            )
        codes = " ".join(f"WHEN '{name}' THEN {code}" for code, name in enumerate(KINDS))
        return (
            f"SELECT (CASE kind {codes} END)::UTINYINT AS kind, value, should_remove "
            f"FROM read_parquet({_sql_str(mirror_changes)})"
        )

    def distinct_by_kind(self, plan: Plan) -> dict[str, int]:
        """Distinct identifiers of the result per kind (the staging's duplicate counts).

        The diff counted them; the written plan (``plan``) holds only the changes.
        """
        if self.plan is None:
            return {}
        return {kind: counts.result for kind, counts in self.plan.by_kind.items()}

    def summary(self) -> dict[str, Any] | None:
        """The diff's counts and samples, as the report shows them."""
        return self.plan.to_dict() if self.plan is not None else None

    def commit(self) -> None:
        """Make this run's snapshot current: every batch has been acknowledged."""
        self.store.commit(self.run_id)

    def discard(self) -> None:
        """Drop this run's pending snapshot: the run failed before sending anything."""
        if not self.dry_run:
            self.store.discard_pending(self.run_id)


class StagingLike(Protocol):
    """What :class:`MirrorStep` needs of the run's staging database."""

    def run(self, statement: str) -> tuple[Any, ...] | None: ...
