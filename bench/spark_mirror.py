"""In-warehouse mirror benchmark on Spark: a ``spark+local://`` cohort of 5,000,000, then 1% churn.

The Spark counterpart of ``bench/warehouse_mirror.py`` (PostgreSQL), with its
runs and figures: two homes mirror the same data, one with the diff inside
Spark (the default for a Spark warehouse), one with the local diff
(``COHORTSYNC_MIRROR_DIFF=local``: the whole result streams from Spark to
cohortsync and is diffed in DuckDB). Each runs the first sync, then the sync
of the churned cohort, as real ``cohortsync export`` processes against a
local partner API that answers at once. The tables are Parquet files loaded
into each home's Spark warehouse with ``cohortsync warehouse load``.

Kinds are mixed as in the PostgreSQL benchmark: 80% external ids, 10% device
ids, 10% e-mail aliases; a 1% churn is 25,000 exits and 25,000 entries at 5M.
The peak memory is the cohortsync process's own; Spark's driver JVM, a child
process in ``spark+local://``, is given apart.

    .venv/bin/python bench/spark_mirror.py [--members 5000000] [--churn 0.01]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from mirror import serve_counting_partner
from warehouse_mirror import report, sync_twice

URL = "spark+local://"
COLUMNS = "user_ids, device_ids, email"


def write_cohorts(directory: Path, members: int, churn: float) -> dict[str, Path]:
    """``base_cohort.parquet`` and ``churned_cohort.parquet``: the identifier columns."""
    changed = int(members * churn / 2)
    step = members // changed if changed else members + 1
    kind = "CASE WHEN n % 10 = 8 THEN 'd' WHEN n % 10 = 9 THEN 'e' ELSE 'u' END"
    identifiers = (
        "CASE WHEN kind = 'u' THEN 'user-' || lpad(n::VARCHAR, 10, '0') END AS user_ids, "
        "CASE WHEN kind = 'd' THEN md5(n::VARCHAR) END AS device_ids, "
        "CASE WHEN kind = 'e' THEN 'member' || n || '@example.com' END AS email"
    )
    base = f"SELECT n, {kind} AS kind FROM range({members}) t(n)"
    churned = (
        f"SELECT n, kind FROM ({base}) b WHERE n % {step} <> 0 UNION ALL "
        f"SELECT n, {kind} FROM range({members}, {members + changed}) t(n)"
    )
    paths = {}
    with duckdb.connect() as con:
        for name, sql in (("base_cohort", base), ("churned_cohort", churned)):
            paths[name] = directory / f"{name}.parquet"
            con.execute(f"COPY (SELECT {identifiers} FROM ({sql}) c) TO '{paths[name]}'")
    return paths


def load_into(home: Path, paths: dict[str, Path]) -> None:
    """Load the cohort files into the home's Spark warehouse (pyarrow writes; no Spark)."""
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "COHORTSYNC_HOME": str(home)}
    for table, path in paths.items():
        subprocess.run(
            [sys.executable, "-m", "cohortsync", "warehouse", "load", "--warehouse", URL,
             table, str(path)],
            env=env, check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=5_000_000)
    parser.add_argument("--churn", type=float, default=0.01)
    args = parser.parse_args()

    endpoint = serve_counting_partner()
    runs_of = [
        (label, ["--query", f"SELECT {COLUMNS} FROM {table}"])
        for label, table in (("first sync", "base_cohort"), ("1% churn", "churned_cohort"))
    ]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        paths = write_cohorts(root, args.members, args.churn)
        homes = {where: root / where for where in ("warehouse", "local")}
        for home in homes.values():
            load_into(home, paths)
        print(
            f"{args.members:,} members, {args.churn:.0%} churn, in Spark ({URL}; "
            f"{time.perf_counter() - started:.0f} s to generate and load)"
        )
        figures = {
            where: sync_twice(home, URL, endpoint, where, runs_of) for where, home in homes.items()
        }
    report(figures, args.members)
    churn_in, churn_local = figures["warehouse"][1], figures["local"][1]
    print(
        f"Spark's driver JVM at its peak in the churn run: {churn_in['children_peak_mb']:.0f} MB "
        f"(diff in Spark) vs {churn_local['children_peak_mb']:.0f} MB (local diff)"
    )


if __name__ == "__main__":
    main()
