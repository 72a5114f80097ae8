"""The export script a data engineer would write by hand, as the benchmark's baseline.

Fetch the whole result from DuckDB, deduplicate it, and post chunks of 1,000
user ids with ``requests`` sessions in a thread pool of 8. Deliberately naive
(that is the point of the comparison), but correct: every id is sent once.

    python bench/handwritten_export.py --db warehouse.duckdb --table ids \
        --endpoint http://127.0.0.1:8080 --cohort-id bench
"""

from __future__ import annotations

import argparse
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import duckdb
import requests

_local = threading.local()


def session() -> requests.Session:
    if not hasattr(_local, "session"):
        _local.session = requests.Session()
    return _local.session


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", required=True)
    parser.add_argument("--table", required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--cohort-id", required=True)
    args = parser.parse_args()

    connection = duckdb.connect(args.db, read_only=True)
    rows = connection.execute(f"SELECT user_ids FROM {args.table}").fetchall()
    user_ids = list(dict.fromkeys(row[0] for row in rows if row[0]))
    chunks = [user_ids[i : i + 1000] for i in range(0, len(user_ids), 1000)]
    url = f"{args.endpoint}/partners/treasuredata/cohorts/users"
    keys = {
        "partner_api_key": os.environ.get("PARTNER_API_KEY", "pk"),
        "client_secret": os.environ.get("DATA_IMPORT_KEY", "dik"),
    }

    def post(chunk: list[str]) -> None:
        body = {**keys, "cohort_id": args.cohort_id, "cohort_changes": [{"user_ids": chunk}]}
        response = session().post(url, json=body, timeout=60)
        response.raise_for_status()

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(post, chunks))
    print(f"sent {len(user_ids)} user ids in {len(chunks)} requests")


if __name__ == "__main__":
    main()
