"""Load benchmark: ``cohortsync warehouse load`` of a large CSV and Parquet into DuckDB.

Builds a 5,000,000-row file once (user ids, emails, an integer, a float, a
date, a boolean: about 350 MB of CSV), then runs ``cohortsync warehouse load``
in a subprocess into a fresh warehouse file, measuring wall time and peak RSS
(the child's own ``VmHWM``, polled from ``/proc/<pid>/status``, as in
bench/export.py). Prints rows per second and peak memory per format.

The strict load reads a CSV twice (once to check every row and infer types
from every value, once to build the table), so it is expected to be slower
than a sniffing load; ``--python`` runs another checkout's code for comparison
(e.g. the code before strict loads, in a worktree):

    python bench/load.py                          # 5M rows, this checkout
    python bench/load.py --rows 1000000 --repeat 3
    git worktree add /tmp/old <commit> && \\
      python bench/load.py --source /tmp/old/src  # the same files, the old code
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from measured import run_measured

HERE = Path(__file__).resolve().parent

BUILD = """
import sys, duckdb
rows, csv_path, parquet_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
with duckdb.connect() as connection:
    connection.execute("SET enable_progress_bar = false")
    connection.execute(
        "CREATE TABLE t AS SELECT 'user_' || i AS user_ids, 'u' || i || '@example.com' AS email, "
        "(i % 90)::INTEGER AS age, (i % 1000) / 8 AS score, "
        "DATE '2020-01-01' + (i % 1000)::INTEGER AS signed_up, i % 2 = 0 AS vip "
        f"FROM range({rows}) t(i)"
    )
    connection.execute(f"COPY t TO '{csv_path}' (HEADER)")
    connection.execute(f"COPY t TO '{parquet_path}' (FORMAT parquet)")
"""


@dataclass
class Measure:
    rows: int
    seconds: float
    peak_mb: float
    returncode: int

    @property
    def rate(self) -> float:
        return self.rows / self.seconds


def measure(command: list[str], env: dict[str, str], rows: int) -> Measure:
    """Run ``command``; its wall time and the peak memory of that process alone."""
    done = run_measured(command, env)
    return Measure(rows, done.seconds, done.peak_mb, done.returncode)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--repeat", type=int, default=1, help="runs per format (median shown)")
    parser.add_argument(
        "--source",
        type=Path,
        default=HERE.parent / "src",
        help="the src directory whose cohortsync to run",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="where to keep the generated files (default: a temporary dir)",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="cohortsync-bench-load-") as scratch:
        data = args.data or Path(scratch)
        data.mkdir(parents=True, exist_ok=True)
        csv_path, parquet_path = data / f"load-{args.rows}.csv", data / f"load-{args.rows}.parquet"
        if not csv_path.exists() or not parquet_path.exists():
            print(f"building {args.rows:,} rows as CSV and Parquet in {data} ...", flush=True)
            subprocess.run(
                [sys.executable, "-c", BUILD, str(args.rows), str(csv_path), str(parquet_path)],
                check=True,
            )
        env = {k: v for k, v in os.environ.items() if not k.startswith("COHORTSYNC_")}
        env["PYTHONPATH"] = str(args.source.resolve())
        print(f"code: {args.source.resolve()}; load average {os.getloadavg()[0]:.2f}")
        print(f"{'format':<8} {'rows':>11} {'seconds':>8} {'rows/s':>11} {'peak MB':>8}")
        for path in (csv_path, parquet_path):
            runs = []
            for _ in range(args.repeat):
                home = Path(scratch) / f"home-{time.monotonic_ns()}"
                home.mkdir()
                env["COHORTSYNC_HOME"] = str(home)
                command = [sys.executable, "-m", "cohortsync", "warehouse", "load", "t", str(path)]
                done = measure(command, env, args.rows)
                if done.returncode != 0:
                    sys.exit(f"the load of {path} failed with exit {done.returncode}")
                runs.append(done)
            run = sorted(runs, key=lambda m: m.seconds)[len(runs) // 2]
            spread = statistics.pstdev([m.seconds for m in runs]) if len(runs) > 1 else 0.0
            print(
                f"{path.suffix[1:]:<8} {run.rows:>11,} {run.seconds:>8.2f} {run.rate:>11,.0f} "
                f"{run.peak_mb:>8.0f}" + (f"  (±{spread:.2f} s)" if spread else ""),
                flush=True,
            )


if __name__ == "__main__":
    main()
