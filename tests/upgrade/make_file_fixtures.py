"""Rebuild the frozen files of tests/upgrade/fixtures/files/ with the previous release.

The upgrade tests (``test_file_formats.py``) must read state written by the
code of the previous release, not by today's: this script runs that release
(commit def6776, checked out as a git worktree) as real ``cohortsync``
processes against the partner API server of the export tests, on a fixed
port because runs and snapshots are keyed by their endpoint, and keeps:

- ``home/``: its ``catalog.db`` and ``secret.key``, a saved authentication
  ``sandbox``, cohort ``vip`` mirrored twice (a committed snapshot of 3,000
  members and 1,000 known exits), and cohort ``big``: a mirror run of 5,000
  identifiers killed (SIGKILL) after 3 acknowledged batches, with its plan,
  its ack log and its pending snapshot. The warehouse and the run's staging
  database, which a resume never reads, are left out.
- ``fixture.json``: what was made, and ``big-acknowledged.txt``: the
  identifiers the server acknowledged before the kill.

    git worktree add /tmp/prev-files def6776
    .venv/bin/python tests/upgrade/make_file_fixtures.py [--prev /tmp/prev-files]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import duckdb

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from export.partner_server import (  # noqa: E402
    CLIENT_SECRET,
    PARTNER_API_KEY,
    PartnerServer,
    Recorded,
)

PREVIOUS_RELEASE = "def6776"
PORT = 29417  # below Linux's ephemeral range, so no test's free port takes it
OUT = Path(__file__).resolve().parent / "fixtures" / "files"
AUTH = "sandbox"
BIG_IDS = 5_000
ACKED_BATCHES = 3


class FixedPortPartner(PartnerServer):
    """The export tests' partner API server on a fixed port.

    The frozen runs and snapshots name their endpoint (``http://127.0.0.1:29417``):
    the tests serve it again on the same port.

    Args:
        port: the port to listen on.
        hold_after: answer this many ``cohorts/users`` requests, then hold
            the next ones until :attr:`release` is set.
    """

    def __init__(self, port: int = PORT, *, hold_after: int | None = None) -> None:
        super().__init__(port=port)
        self.hold_after = hold_after
        self.release = threading.Event()

    def _respond(self, record: Recorded) -> tuple[int, dict[str, Any], dict[str, str]]:
        if record.kind == "users" and self.hold_after is not None:
            with self._lock:
                answered = sum(1 for r in self.requests if r.kind == "users" and r.status)
            if answered >= self.hold_after:
                self.release.wait()
        return super()._respond(record)


def users(start: int, stop: int, prefix: str = "u") -> list[str]:
    """The identifiers of the fixture's tables: ``u000000``, ``u000001``..."""
    return [f"{prefix}{i:06}" for i in range(start, stop)]


def table_sql(name: str, start: int, stop: int, prefix: str = "u") -> str:
    return (
        f"CREATE OR REPLACE TABLE {name} AS SELECT '{prefix}' || lpad(i::VARCHAR, 6, '0') "
        f"AS user_ids FROM range({start}, {stop}) r(i)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prev", type=Path, default=Path("/tmp/prev-files"))
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    prev: Path = args.prev
    if not (prev / "src" / "cohortsync").is_dir():
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", str(prev), PREVIOUS_RELEASE], check=True
        )
    commit = subprocess.run(
        ["git", "-C", str(prev), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    if not commit.startswith(PREVIOUS_RELEASE):
        sys.exit(f"{prev} is at {commit}, not the previous release {PREVIOUS_RELEASE}")
    with tempfile.TemporaryDirectory() as scratch:
        manifest = make(prev / "src", Path(scratch) / "home", args.out, commit)
    print(json.dumps(manifest, indent=2))


def make(src: Path, home: Path, out: Path, commit: str) -> dict[str, Any]:
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COHORTSYNC_")}
    env.update(
        PYTHONPATH=str(src),
        COHORTSYNC_HOME=str(home),
        COHORTSYNC_PARTNER_API_KEY=PARTNER_API_KEY,
        COHORTSYNC_HTTP_BACKOFF_BASE="0.01",
        COHORTSYNC_HTTP_BACKOFF_MAX="0.05",
    )
    command = [sys.executable, "-m", "cohortsync"]
    where = subprocess.run(
        [sys.executable, "-c", "import cohortsync; print(cohortsync.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not where.startswith(str(src)):
        sys.exit(f"PYTHONPATH={src} imports cohortsync from {where}, not the previous release")

    def cli(*args: str) -> Any:
        done = subprocess.run([*command, *args], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"cohortsync {' '.join(args)} failed ({done.returncode}): {done.stderr}")
        return json.loads(done.stdout) if "--json" in args else done.stdout

    def warehouse(sql: str) -> None:
        with duckdb.connect(str(home / "warehouse.duckdb")) as connection:
            connection.execute(sql)

    server = FixedPortPartner().start()
    try:
        endpoint = server.url
        cli("auth", "create", AUTH, "--endpoint", endpoint, "--data-import-key", CLIENT_SECRET)
        export = ["export", "--auth", AUTH, "--operation", "mirror", "--json"]
        warehouse(table_sql("t", 0, 3_000))
        first = cli(*export, "--cohort-id", "vip", "--cohort-name", "VIP", "--table", "t")
        warehouse(table_sql("t", 1_000, 4_000))
        second = cli(*export, "--cohort-id", "vip", "--cohort-name", "VIP", "--table", "t")

        # cohort big: killed after ACKED_BATCHES acknowledged batches, the next one held.
        warehouse(table_sql("big", 0, BIG_IDS, "b"))
        before = len(server.requests)
        server.delay = 0.25  # some acks reach the catalog, the last ones only the ack log
        server.hold_after = len(server.users_requests()) + ACKED_BATCHES
        process = subprocess.Popen(
            [*command, *export[:-1], "--cohort-id", "big", "--table", "big", "--threads", "1"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while len(server.users_requests(answered=False)) <= server.hold_after:
            if process.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"the run of cohort big ended early: {process.communicate()[1]}")
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
        answered = [
            r for r in server.requests[before:] if r.kind == "users" and 200 <= r.status < 300
        ]
        if len(answered) != ACKED_BATCHES:
            sys.exit(
                f"{len(answered)} batches of cohort big were acknowledged, not {ACKED_BATCHES}"
            )
        acked = sorted(
            value
            for request in answered
            for change in request.body["cohort_changes"]
            for value in change.get("user_ids", [])
        )
    finally:
        # The held request is never answered: its client is dead.
        server.stop()

    [big_run] = [run for run in cli("runs", "list", "--json") if run["cohort_id"] == "big"]
    in_catalog = int(cli("runs", "show", big_run["id"], "--json")["acknowledged_batches"])
    run_dir = home / "runs" / big_run["id"]
    in_log = (run_dir / "acks.log").stat().st_size // 16
    # Fold the catalog's write-ahead log into catalog.db, so the copy holds every commit.
    connection = sqlite3.connect(home / "catalog.db")
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    shutil.copytree(
        home,
        out / "home",
        ignore=shutil.ignore_patterns("warehouse.duckdb*", "staging*", "*.wal", "*-shm"),
    )
    (out / "big-acknowledged.txt").write_text("".join(f"{value}\n" for value in acked))
    manifest = {
        "made_by": {"commit": commit, "script": "tests/upgrade/make_file_fixtures.py"},
        "endpoint": endpoint,
        "auth": AUTH,
        "mirror": {
            "cohort_id": "vip",
            "table": "t",
            "runs": [first["run_id"], second["run_id"]],
            "members": [1_000, 4_000],
            "known_exits": [0, 1_000],
        },
        "interrupted": {
            "cohort_id": "big",
            "table": "big",
            "prefix": "b",
            "ids": [0, BIG_IDS],
            "run_id": big_run["id"],
            "status": big_run["status"],
            "acknowledged_batches": ACKED_BATCHES,
            "in_catalog": in_catalog,
            "in_ack_log": in_log,
        },
    }
    (out / "fixture.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


if __name__ == "__main__":
    main()
