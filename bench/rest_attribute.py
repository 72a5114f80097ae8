"""Attribute delivery benchmark: ``cohortsync export --type rest-attribute``, exporter side.

For each size (1,000,000 and 3,000,000 distinct user ids by default; change
with ``--ids``), builds a DuckDB table, starts the instantly answering server
of ``bench/export.py`` in its own process (it answers every request
``201 {"message": "success"}``, as ``/users/track`` does when every object
was processed), and runs the export in a subprocess, measuring wall time and
the child's own peak memory (``VmHWM``, see ``measured.py``). Every id is one
attribute object, 75 to a request. Targets: at least 200,000 ids/s, and a
peak under 300 MB at 3M ids that does not grow with the size.

    python bench/rest_attribute.py                       # 1M and 3M, array mode
    python bench/rest_attribute.py --mode boolean --repeat 3
    python bench/rest_attribute.py --ids 3000000 --operation mirror --compare-partner

``--compare-partner`` runs the same export through ``--type partner-cohort``
(1,000 identifiers per request) on the same server, for a baseline.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
from pathlib import Path

from export import Measure, _serve, build_table, free_port, measure, median

REST_API_KEY = "bench-rest-api-key"
PARTNER_API_KEY = "bench-partner-key"
DATA_IMPORT_KEY = "bench-data-import-key"
RATE_TARGET = 200_000
PEAK_TARGET_MB = 300


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ids", type=int, action="append", help="ids per run (repeatable)")
    parser.add_argument("--threads", type=int, default=4, help="cohortsync export --threads")
    parser.add_argument("--mode", choices=("array", "boolean"), default="array")
    parser.add_argument("--operation", choices=("add", "mirror"), default="add")
    parser.add_argument("--repeat", type=int, default=1, help="runs per size; the median is kept")
    parser.add_argument(
        "--compare-partner", action="store_true", help="also run --type partner-cohort"
    )
    args = parser.parse_args()
    sizes = args.ids or [1_000_000, 3_000_000]

    port = free_port()
    server = multiprocessing.Process(target=_serve, args=(port,), daemon=True)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    results: list[Measure] = []
    try:
        for ids in sizes:
            with tempfile.TemporaryDirectory(prefix="cohortsync-bench-") as scratch:
                home = Path(scratch) / "home"
                home.mkdir()
                build_table(home / "warehouse.duckdb", ids)
                env = {
                    **os.environ,
                    "COHORTSYNC_HOME": str(home),
                    "COHORTSYNC_REST_API_KEY": REST_API_KEY,
                    "COHORTSYNC_PARTNER_API_KEY": PARTNER_API_KEY,
                }
                common = [sys.executable, "-m", "cohortsync", "export", "--table", "ids"]
                common += ["--endpoint", endpoint, "--operation", args.operation]
                common += ["--threads", str(args.threads), "--json"]
                cli = [*common, "--type", "rest-attribute", "--attribute-mode", args.mode]
                cli += ["--cohort-id", f"attr-{ids}"]
                partner = [*common, "--data-import-key", DATA_IMPORT_KEY]
                partner += ["--cohort-id", f"partner-{ids}"]
                ours, baseline = [], []
                for _ in range(args.repeat):  # interleaved: both see the same machine load
                    ours.append(measure("rest-attribute", cli, env, ids))
                    if args.compare_partner:
                        baseline.append(measure("partner-cohort", partner, env, ids))
                results.append(median(ours))
                if baseline:
                    results.append(median(baseline))
    finally:
        server.terminate()
        server.join()

    print(
        f"\nrest-attribute export, {args.mode} mode, operation {args.operation}, "
        f"--threads {args.threads}, 75 objects per request"
    )
    print(
        f"{'destination':<16}{'ids':>12}{'requests':>10}{'seconds':>10}{'ids/s':>12}"
        f"{'peak MB':>10}{'exit':>6}"
    )
    for result in results:
        per_request = 75 if result.name == "rest-attribute" else 1000
        print(
            f"{result.name:<16}{result.ids:>12,}{-(-result.ids // per_request):>10,}"
            f"{result.seconds:>10.2f}{result.rate:>12,.0f}{result.peak_mb:>10.0f}"
            f"{result.returncode:>6}"
        )
    for result in results:
        if result.name != "rest-attribute":
            continue
        rate = "met" if result.rate >= RATE_TARGET else "missed"
        peak = "met" if result.peak_mb < PEAK_TARGET_MB else "missed"
        print(
            f"{result.ids:,} ids: {result.rate:,.0f} ids/s (target >= {RATE_TARGET:,}: {rate}), "
            f"peak {result.peak_mb:.0f} MB (target < {PEAK_TARGET_MB} MB: {peak})"
        )


if __name__ == "__main__":
    main()
