"""In-warehouse mirror benchmark: a PostgreSQL cohort of 20,000,000 members, then 1% churn.

The same data is mirrored twice, by two homes: once with the diff inside
PostgreSQL (the default for a PostgreSQL warehouse) and once with the local
diff (``COHORTSYNC_MIRROR_DIFF=local``: the whole result streams to
cohortsync and is diffed in DuckDB). Each home runs the first sync of the
base cohort, then the sync of the churned cohort, as real ``cohortsync
export`` processes against a local partner API that answers at once. For each
run: wall time, the process's peak memory (``VmHWM``), the rows that crossed
from the warehouse to cohortsync, and the identifiers sent.

Kinds are mixed as a real cohort: 80% external ids, 10% device ids, 10% e-mail
aliases. The churn takes half of it out (members leaving) and brings as many
new ones in, so a 1% churn is 100,000 exits and 100,000 entries at 20M.

Targets: the churn run transfers under 2% of the members, and its peak
memory is below the local diff's.

    .venv/bin/python bench/warehouse_mirror.py [--members 20000000] [--churn 0.01]
        [--postgres postgresql://postgres@127.0.0.1:5432]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import orjson
import psycopg

from measured import run_measured
from mirror import CountingPartner, serve_counting_partner

TARGET_SHARE = 0.02
# The two syncs of a home: label and the export's source arguments.
TABLE_RUNS = (
    ("first sync", ["--table", "base_cohort"]),
    ("1% churn", ["--table", "churned_cohort"]),
)


def create_cohorts(url: str, members: int, churn: float) -> None:
    """Tables ``base`` and ``churned`` (``n``, ``kind``); views ``*_cohort`` of identifiers."""
    changed = int(members * churn / 2)
    step = members // changed if changed else members + 1
    kind = "CASE WHEN n % 10 = 8 THEN 'd' WHEN n % 10 = 9 THEN 'e' ELSE 'u' END"
    with psycopg.connect(url, autocommit=True) as con:
        con.execute(
            f"CREATE TABLE base AS SELECT n, {kind} AS kind "
            f"FROM generate_series(0, {members - 1}) n"
        )
        # The churned result: every step-th member left, as many new ones came in.
        con.execute(
            f"CREATE TABLE churned AS SELECT n, kind FROM base WHERE n % {step} <> 0 "
            f"UNION ALL SELECT n, {kind} FROM generate_series({members}, "
            f"{members + changed - 1}) n"
        )
        for name in ("base", "churned"):
            con.execute(f"ANALYZE {name}")
            con.execute(
                f"CREATE VIEW {name}_cohort AS SELECT "
                "CASE WHEN kind = 'u' THEN 'user-' || lpad(n::text, 10, '0') END AS user_ids, "
                "CASE WHEN kind = 'd' THEN md5(n::text)::uuid::text END AS device_ids, "
                "CASE WHEN kind = 'e' THEN 'member' || n || '@example.com' END AS email "
                f"FROM {name}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=20_000_000)
    parser.add_argument("--churn", type=float, default=0.01)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432")
    args = parser.parse_args()

    database = f"cohortsync_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{args.postgres}/postgres", autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{database}"')
    url = f"{args.postgres}/{database}"
    try:
        started = time.perf_counter()
        create_cohorts(url, args.members, args.churn)
        print(
            f"{args.members:,} members, {args.churn:.0%} churn, in PostgreSQL "
            f"({time.perf_counter() - started:.0f} s to generate)"
        )
        endpoint = serve_counting_partner()
        with tempfile.TemporaryDirectory() as tmp:
            figures = {
                where: sync_twice(Path(tmp) / where, url, endpoint, where)
                for where in ("warehouse", "local")
            }
        report(figures, args.members)
    finally:
        with psycopg.connect(f"{args.postgres}/postgres", autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def sync_twice(
    home: Path,
    url: str,
    endpoint: str,
    where: str,
    runs_of: Sequence[tuple[str, list[str]]] = TABLE_RUNS,
) -> list[dict[str, float]]:
    """The first sync and the churn sync of one home; one figures dict each.

    ``runs_of``: each run's label and source arguments (``--table`` or ``--query``).
    """
    home.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "COHORTSYNC_HOME": str(home),
        "COHORTSYNC_WAREHOUSE": url,
        "COHORTSYNC_PARTNER_API_KEY": "bench",
        "COHORTSYNC_MIRROR_DIFF": "auto" if where == "warehouse" else "local",
    }
    head = [sys.executable, "-m", "cohortsync", "export", "--endpoint", endpoint]
    head += ["--data-import-key", "bench-key", "--alias-column", "email", "--json"]
    head += ["--operation", "mirror", "--cohort-id", f"bench-{where}", "--max-remove-pct", "100"]
    runs = []
    for label, source in runs_of:
        sent_before = CountingPartner.counts["identifiers"]
        done = run_measured([*head, *source], env, capture=True)
        if done.returncode != 0:
            raise SystemExit(f"{where} {label} failed: {done.stderr}")
        result = orjson.loads(done.stdout)
        diff = result["mirror"].get("diff")
        transferred = diff["rows_transferred"] if diff else result["rows_read"]
        runs.append(
            {
                "seconds": done.seconds,
                "peak_mb": done.peak_mb,
                "children_peak_mb": done.children_peak_mb,
                "transferred": transferred,
                "sent": CountingPartner.counts["identifiers"] - sent_before,
            }
        )
        children = (
            f" (its child processes {done.children_peak_mb:6.0f} MB)"
            if done.children_peak_mb
            else ""
        )
        print(
            f"  {where:<9} {label:<10} {done.seconds:7.1f} s, peak {done.peak_mb:6.0f} MB"
            f"{children}, {transferred:>11,} rows from the warehouse, "
            f"{runs[-1]['sent']:>11,} sent",
            flush=True,
        )
    return runs


def report(figures: dict[str, list[dict[str, float]]], members: int) -> None:
    churn_in, churn_local = figures["warehouse"][1], figures["local"][1]
    share = churn_in["transferred"] / members
    print(
        f"\nchurn run, diff in the warehouse vs local: {churn_in['transferred']:,} vs "
        f"{churn_local['transferred']:,} rows transferred ({share:.2%} of the members; "
        f"target < {TARGET_SHARE:.0%}: {'met' if share < TARGET_SHARE else 'MISSED'}), "
        f"{churn_in['seconds']:.1f} s vs {churn_local['seconds']:.1f} s, peak "
        f"{churn_in['peak_mb']:.0f} MB vs {churn_local['peak_mb']:.0f} MB (target below: "
        f"{'met' if churn_in['peak_mb'] < churn_local['peak_mb'] else 'MISSED'})"
    )


if __name__ == "__main__":
    main()
