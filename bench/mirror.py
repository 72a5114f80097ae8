"""Mirror benchmark: diff 10,000,000 tracked members against a result with 1% churn.

Prints, for the mirror diff and for re-sending the whole result with ``add``:
wall time, peak resident memory of the process doing the work, and the number
of identifiers that would be sent. Each measured step runs in a fresh child
process so its peak memory (``ru_maxrss``, the kernel's high-water mark)
counts nothing else.

Targets (issue 4): diff under 20 s and under 500 MB on 2 cores.

    .venv/bin/python bench/mirror.py [--members 10000000] [--churn 0.01] [--dir PATH]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from cohortsync.export.mirror import ParquetResult, plan_mirror
from cohortsync.export.snapshots import CohortKey, SnapshotStore
from cohortsync.export.spec import MirrorOptions

TARGET_SECONDS = 20.0
TARGET_MB = 500.0
KEY = CohortKey.for_destination("http://127.0.0.1", "bench-key", "treasuredata", "bench")


def generate(directory: Path, members: int, churn: float) -> None:
    """Write base.parquet (the tracked members) and result.parquet (1% churn, half each way).

    Kinds are mixed as a real cohort would be: 80% external ids, 10% device
    ids (UUID-like), 10% e-mail aliases.
    """
    changed = int(members * churn / 2)
    step = members // changed if changed else members + 1
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    identifiers = """
        SELECT CASE WHEN i % 10 < 8 THEN 'user_ids' WHEN i % 10 = 8 THEN 'device_ids'
                    ELSE 'alias' END AS kind,
               CASE WHEN i % 10 < 8 THEN 'customer-' || lpad(i::VARCHAR, 10, '0')
                    WHEN i % 10 = 8 THEN md5(i::VARCHAR)
                    ELSE 'person' || i::VARCHAR || '@example.com' END AS value
        FROM range({start}, {stop}) t(i) {where}
    """
    con.execute(
        f"COPY ({identifiers.format(start=0, stop=members, where='')}) "
        f"TO '{directory / 'base.parquet'}' (FORMAT parquet, COMPRESSION zstd)"
    )
    kept = identifiers.format(start=0, stop=members, where=f"WHERE i % {step} <> 7")
    added = identifiers.format(start=members, stop=members + changed, where="")
    con.execute(
        f"COPY ({kept} UNION ALL {added}) "
        f"TO '{directory / 'result.parquet'}' (FORMAT parquet, COMPRESSION zstd)"
    )
    con.close()


def child(step: str, directory: Path, memory_limit: str, threads: int) -> None:
    """One measured step, in its own process; prints a JSON line of its figures."""
    home = directory / "home"
    store = SnapshotStore(home, KEY)
    started = time.perf_counter()
    figures: dict[str, object] = {"step": step}
    if step == "first":
        plan = plan_mirror(
            ParquetResult.of(directory / "base.parquet"),
            None,
            work_dir=directory / "work-first",
            changes_path=directory / "changes-first.parquet",
            snapshot_dir=store.pending_dir("first"),
            memory_limit=memory_limit,
            threads=threads,
        )
        store.write_pending_meta(
            "first", members=plan.result_members, exits=plan.new_known_exits, alias_label=None
        )
        store.commit("first")
        figures["sent"] = plan.to_send
    elif step in ("diff", "nochange"):
        source = "result.parquet" if step == "diff" else "base.parquet"
        run_id = step
        plan = plan_mirror(
            ParquetResult.of(directory / source),
            store.current(),
            work_dir=directory / f"work-{step}",
            changes_path=directory / f"changes-{step}.parquet",
            snapshot_dir=store.pending_dir(run_id),
            options=MirrorOptions(),
            memory_limit=memory_limit,
            threads=threads,
        )
        store.discard_pending(run_id)
        figures.update(sent=plan.to_send, entries=plan.entries, exits=plan.exits)
    elif step == "add":
        # What an ``add`` export plans: the whole result, deduplicated, in batch order.
        con = duckdb.connect(str(directory / "add-scratch.duckdb"))
        con.execute(f"SET memory_limit = '{memory_limit}'")
        con.execute(f"SET temp_directory = '{directory / 'add-spill'}'")
        con.execute(f"SET threads = {threads}")
        con.execute("SET preserve_insertion_order = false")
        con.execute(
            "COPY (SELECT DISTINCT kind, value, false AS should_remove "
            f"FROM read_parquet('{directory / 'result.parquet'}') "
            "ORDER BY should_remove, kind, value) "
            f"TO '{directory / 'changes-add.parquet'}' (FORMAT parquet, COMPRESSION zstd)"
        )
        row = con.execute(
            f"SELECT count(*) FROM read_parquet('{directory / 'changes-add.parquet'}')"
        ).fetchone()
        con.close()
        figures["sent"] = int(row[0]) if row else 0
    figures["seconds"] = round(time.perf_counter() - started, 2)
    figures["peak_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(figures))


def measure(step: str, directory: Path, memory_limit: str, threads: int) -> dict[str, object]:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            step,
            "--dir",
            str(directory),
            "--memory-limit",
            memory_limit,
            "--threads",
            str(threads),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=10_000_000)
    parser.add_argument("--churn", type=float, default=0.01)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--memory-limit", default="256MB")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", default=None)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.dir, args.memory_limit, args.threads)
        return
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        directory = Path(tmp)
        started = time.perf_counter()
        generate(directory, args.members, args.churn)
        print(
            f"generated {args.members:,} members and a {args.churn:.0%} churn result "
            f"in {time.perf_counter() - started:.1f} s"
        )
        first = measure("first", directory, args.memory_limit, args.threads)
        print(
            f"first run (everyone added, snapshot committed): {first['seconds']} s, "
            f"peak {first['peak_mb']} MB, {first['sent']:,} identifiers"
        )
        diff = measure("diff", directory, args.memory_limit, args.threads)
        met = (
            "met"
            if float(str(diff["seconds"])) < TARGET_SECONDS
            and float(str(diff["peak_mb"])) < TARGET_MB
            else "MISSED"
        )
        print(
            f"mirror diff, {args.churn:.0%} churn: {diff['seconds']} s, peak {diff['peak_mb']} MB, "
            f"{diff['sent']:,} identifiers to send ({diff['entries']:,} entries, "
            f"{diff['exits']:,} exits); target < {TARGET_SECONDS:g} s and < {TARGET_MB:g} MB: "
            f"{met}"
        )
        full = measure("add", directory, args.memory_limit, args.threads)
        print(
            f"full re-send with add: {full['seconds']} s, peak {full['peak_mb']} MB, "
            f"{full['sent']:,} identifiers to send"
        )
        same = measure("nochange", directory, args.memory_limit, args.threads)
        print(
            f"mirror with no change: {same['seconds']} s, peak {same['peak_mb']} MB, "
            f"{same['sent']:,} identifiers to send"
        )


if __name__ == "__main__":
    main()
