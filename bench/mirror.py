"""Mirror benchmark: diff 10,000,000 tracked members against a result with 1% churn.

Part 1, the diff alone (:func:`cohortsync.export.mirror.plan_mirror` on
Parquet files): for the mirror diff and for planning a re-send of the whole
result with ``add``, wall time, peak resident memory of the process doing the
work, and the number of identifiers that would be sent.

Part 2, end to end: ``cohortsync export`` processes against a local partner
API server that answers at once and counts the ``cohorts/users`` requests it
gets: the first mirror run, the 1% churn run, an ``add`` of the whole result,
and a run with no change (which must send no membership request).

Each measured step runs in a fresh child process; its peak memory is the
kernel's high-water mark of that process's own memory since it started
(``VmHWM`` in ``/proc/<pid>/status``). Not ``ru_maxrss``: on Linux a child's
``ru_maxrss`` starts from its parent's resident size at fork, so a large
parent would inflate every figure.

Targets (issue 4): diff under 20 s and under 500 MB on 2 cores; a run with no
change sends no membership request.

    .venv/bin/python bench/mirror.py [--members 10000000] [--churn 0.01] [--skip-e2e]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import ClassVar

import duckdb
import orjson

from cohortsync.export.mirror import DEFAULT_MEMORY_LIMIT, ParquetResult, plan_mirror
from cohortsync.export.snapshots import CohortKey, SnapshotStore
from cohortsync.export.spec import MirrorOptions
from measured import high_water_mb, run_measured

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
    figures["peak_mb"] = round(high_water_mb("self"), 1)
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
    parser.add_argument("--memory-limit", default=DEFAULT_MEMORY_LIMIT)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", default=None)
    parser.add_argument("--skip-e2e", action="store_true", help="only the diff, no exports")
    parser.add_argument("--e2e-threads", type=int, default=4)
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
        if not args.skip_e2e:
            end_to_end(directory, args.members, args.churn, args.e2e_threads)


class CountingPartner(asyncio.Protocol):
    """A partner API that answers 201 at once and counts requests and identifiers by path."""

    counts: ClassVar[Counter[str]] = Counter()
    _BODY = b'{"message":"success"}'
    _RESPONSE = (
        b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(_BODY)).encode() + b"\r\n\r\n" + _BODY
    )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = bytes(self.buffer[:end]).lower()
            start = head.find(b"content-length:")
            line_end = head.find(b"\r\n", start)
            length = int(head[start + 15 : line_end if line_end > 0 else None])
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            path = head.split(b" ", 2)[1].decode()
            CountingPartner.counts[path] += 1
            if path.endswith("/cohorts/users"):
                for change in orjson.loads(body)["cohort_changes"]:
                    for key in ("user_ids", "device_ids", "aliases"):
                        CountingPartner.counts["identifiers"] += len(change.get(key, ()))
            self.transport.write(self._RESPONSE)  # type: ignore[attr-defined]


def serve_counting_partner() -> str:
    """Start the counting partner in a daemon thread; return its URL."""
    ready = threading.Event()
    address: list[int] = []

    def run() -> None:
        async def main() -> None:
            loop = asyncio.get_running_loop()
            server = await loop.create_server(CountingPartner, "127.0.0.1", 0, backlog=256)
            address.append(server.sockets[0].getsockname()[1])
            ready.set()
            async with server:
                await server.serve_forever()

        asyncio.run(main())

    threading.Thread(target=run, daemon=True).start()
    ready.wait()
    return f"http://127.0.0.1:{address[0]}"


def end_to_end(directory: Path, members: int, churn: float, threads: int) -> None:
    """``cohortsync export`` processes against the counting partner; prints one line each."""
    home = directory / "e2e-home"
    home.mkdir()
    endpoint = serve_counting_partner()
    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        con.execute(
            f"CREATE TABLE base AS SELECT * FROM read_parquet('{directory / 'base.parquet'}')"
        )
        con.execute(
            f"CREATE TABLE churned AS SELECT * FROM read_parquet('{directory / 'result.parquet'}')"
        )
        for name in ("base", "churned"):
            con.execute(
                f"CREATE VIEW {name}_cohort AS SELECT "
                "CASE WHEN kind = 'user_ids' THEN value END AS user_ids, "
                "CASE WHEN kind = 'device_ids' THEN value END AS device_ids, "
                f"CASE WHEN kind = 'alias' THEN value END AS email FROM {name}"
            )
    env = {**os.environ, "COHORTSYNC_HOME": str(home), "COHORTSYNC_PARTNER_API_KEY": "bench"}
    head = [sys.executable, "-m", "cohortsync", "export", "--endpoint", endpoint]
    head += ["--data-import-key", "bench-key", "--alias-column", "email"]
    head += ["--threads", str(threads), "--json"]
    steps = [
        ("mirror, first run", "base_cohort", "mirror", "bench"),
        (f"mirror, {churn:.0%} churn", "churned_cohort", "mirror", "bench"),
        ("mirror, no change", "churned_cohort", "mirror", "bench"),
        ("add, whole result", "churned_cohort", "add", "bench-add"),
    ]
    print(f"\nend to end, {members:,} members, {threads} threads, instant local server:")
    for label, table, operation, cohort in steps:
        before = Counter(CountingPartner.counts)
        command = [*head, "--table", table, "--operation", operation, "--cohort-id", cohort]
        command += ["--max-remove-pct", "100"]
        done = run_measured(command, env, capture=True)
        seconds, peak_mb = done.seconds, done.peak_mb
        if done.returncode != 0:
            print(f"  {label}: FAILED {done.stderr}")
            continue
        report = json.loads(done.stdout)
        after = CountingPartner.counts - before
        requests = sum(n for path, n in after.items() if path.endswith("/cohorts/users"))
        print(
            f"  {label:<24} {seconds:6.1f} s, {requests:>6,} membership requests, "
            f"{after['identifiers']:>10,} identifiers sent, peak {peak_mb:.0f} MB, "
            f"status {report['status']}"
        )


if __name__ == "__main__":
    main()
