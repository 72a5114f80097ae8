"""Rebuild the frozen databases of tests/upgrade/fixtures/databases/ with old releases.

The upgrade tests open state that *earlier code* wrote, so this script runs
that code, not today's: it checks out each release in a git worktree and runs
its real command line (``python -m cohortsync`` with ``PYTHONPATH`` at the
worktree's ``src``) in a fresh home:

* ``def6776`` (the last release before schema versions) makes ``catalog.db``
  and ``secret.key`` (authentications, saved queries with schedules, a
  parent, a segment, an activation and their runs, exported for real to its
  own receiving service), ``braze.db`` (workspace, partner, keys, users,
  cohorts with members, a segment) and ``braze-postgres.sql``, a plain
  ``pg_dump`` of the same store on PostgreSQL;
* ``93004df`` (the first receiving service, whose counters lived in
  ``braze_cohort_counts``) makes ``braze-0001.db``.

``facts.json`` records what the tests expect to find (keys, names, counts).

Usage (from the repository root, with the project's virtualenv)::

    .venv/bin/python tests/upgrade/make_database_fixtures.py
    .venv/bin/python tests/upgrade/make_database_fixtures.py --postgres postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent / "fixtures" / "databases"
PREVIOUS = "def6776"
FIRST_STORE = "93004df"

WORKSPACE = "upgrade"
PARTNER = "treasuredata"
PARTNER_API_KEY = "upgrade-partner-key-us"
AUTH = "local"
CUSTOMERS = [
    # external_id, email, device_id, country, age
    (f"user{n:02d}", f"user{n:02d}@example.com", f"device{n:02d}", "FR" if n % 3 else "DE", 20 + n)
    for n in range(30)
]


def worktree(commit: str) -> Path:
    """A checkout of ``commit`` under the temporary directory (made once, then reused)."""
    path = Path(tempfile.gettempdir()) / f"cohortsync-{commit}"
    if not (path / "src" / "cohortsync").is_dir():
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), commit], check=True
        )
    return path


class Release:
    """The command line of one old release, in one home, against one store."""

    def __init__(self, source: Path, home: Path, store_url: str) -> None:
        self.env = {
            key: value for key, value in os.environ.items() if not key.startswith("COHORTSYNC_")
        }
        self.env.update(
            PYTHONPATH=str(source / "src"),
            COHORTSYNC_HOME=str(home),
            COHORTSYNC_BRAZE_DB=store_url,
            COHORTSYNC_PARTNER_API_KEY=PARTNER_API_KEY,
        )
        self.home = home

    def run(self, *args: str, env: dict[str, str] | None = None) -> str:
        print("$ cohortsync", " ".join(args), flush=True)
        done = subprocess.run(
            [sys.executable, "-m", "cohortsync", *args],
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"failed: cohortsync {' '.join(args)}\n{done.stdout}{done.stderr}")
        return done.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args))

    @contextmanager
    def serving(self) -> Iterator[str]:
        """``braze serve`` of this release in the background."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        log = (self.home / "serve.log").open("w")
        process = subprocess.Popen(
            [sys.executable, "-m", "cohortsync", "braze", "serve", "--port", str(port)],
            env=self.env,
            stdout=log,
            stderr=log,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    with urllib.request.urlopen(f"{base}/openapi.json", timeout=1):
                        break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        log_file = self.home / "serve.log"
                        raise SystemExit(f"serve did not start; see {log_file}") from None
                    time.sleep(0.1)
            yield base
        finally:
            process.terminate()
            process.wait(timeout=15)
            log.close()


def set_up_store(release: Release, users: Path) -> dict[str, Any]:
    """Workspace, partner, two keys (one invalidated), users: the Braze side."""
    workspace = release.json("braze", "workspace", "create", WORKSPACE)
    release.run(
        "braze", "partner", "create", PARTNER, "--display-name", "Treasure Data",
        "--api-key", PARTNER_API_KEY, "--region", "us",
    )  # fmt: skip
    release.run("braze", "partner", "enable", PARTNER, "--workspace", WORKSPACE)
    key = release.json("braze", "key", "generate", "--workspace", WORKSPACE)["data_import_key"]
    old = release.json("braze", "key", "generate", "--workspace", WORKSPACE)["data_import_key"]
    release.run("braze", "key", "invalidate", old)
    lines = []
    for external_id, email, device, _country, _age in CUSTOMERS:
        lines.append(
            {"external_id": external_id, "aliases": [{"alias_label": "email", "alias_name": email}]}
        )
        lines.append({"device_ids": [device]})
    users.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    release.run("braze", "users", "load", "--workspace", WORKSPACE, str(users))
    return {"workspace": WORKSPACE, "rest_api_key": workspace.get("rest_api_key"), "key": key,
            "invalidated_key": old}  # fmt: skip


def previous_release(source: Path, home: Path, store_url: str) -> dict[str, Any]:
    """Both sides of the previous release, used as its documentation shows."""
    release = Release(source, home, store_url)
    facts = set_up_store(release, home / "users.ndjson")
    table = home / "customers.csv"
    rows = ["external_id,email,device_id,country,age"]
    rows += [",".join(str(value) for value in row) for row in CUSTOMERS]
    table.write_text("\n".join(rows) + "\n")
    release.run("warehouse", "load", "customers", str(table))
    with release.serving() as base:
        with_key = {"COHORTSYNC_DATA_IMPORT_KEY": facts["key"]}
        release.run("auth", "create", AUTH, "--endpoint", base, env=with_key)
        release.run("auth", "create", "spare", "--endpoint", base, env=with_key)
        release.run(
            "export", "--auth", AUTH, "--cohort-id", "over_40", "--cohort-name", "Over 40",
            "--query", "SELECT external_id AS user_ids FROM customers WHERE age > 40",
        )  # fmt: skip
        release.run(
            "query", "save", "germans",
            "--sql", "SELECT external_id AS user_ids FROM customers WHERE country = 'DE'",
            "--export", AUTH, "--cohort-id", "germans", "--cohort-name", "Germans",
            "--operation", "mirror", "--schedule", "0 6 * * *", "--timezone", "Europe/Paris",
        )  # fmt: skip
        release.run("query", "run", "germans")
        release.run(
            "query", "save", "devices", "--sql", "SELECT device_id AS device_ids FROM customers",
            "--export", AUTH, "--cohort-id", "devices", "--schedule", "30 * * * *",
        )  # fmt: skip
        release.run("query", "run", "devices")
        release.run(
            "audience", "parent", "create", "customers", "--table", "customers",
            "--key", "external_id",
        )  # fmt: skip
        release.run(
            "segment", "create", "french", "--parent", "customers",
            "--rules", '{"column": "country", "op": "=", "value": "FR"}',
        )  # fmt: skip
        release.run(
            "activation", "create", "french_emails", "--segment", "french", "--auth", AUTH,
            "--cohort-id", "french_emails", "--cohort-name", "French by email",
            "--map", "email=email", "--alias-column", "email",
            "--schedule", "0 7 * * 1", "--timezone", "UTC",
        )  # fmt: skip
        release.run("activation", "run", "french_emails")
    release.run(
        "braze", "segment", "create", "Germans in Braze", "--workspace", WORKSPACE,
        "--includes-cohort", "germans",
    )  # fmt: skip
    runs = release.json("runs", "list", "--json")
    cohorts = release.json("braze", "cohorts", "list", "--workspace", WORKSPACE)
    return {
        **facts,
        "auths": [AUTH, "spare"],
        "queries": ["devices", "germans"],
        "parent": "customers",
        "segment": "french",
        "activation": "french_emails",
        "braze_segment": "Germans in Braze",
        "runs": sorted(run["id"] for run in _runs(runs)),
        "cohorts": {cohort["cohort_id"]: cohort for cohort in cohorts},
    }


def _runs(document: Any) -> list[dict[str, Any]]:
    return document["runs"] if isinstance(document, dict) else document


def first_store(source: Path, home: Path, store_url: str) -> dict[str, Any]:
    """The first receiving service's store, with cohorts sent over its partner API."""
    release = Release(source, home, store_url)
    facts = set_up_store(release, home / "users.ndjson")
    with release.serving() as base:
        for cohort_id, changes in (
            ("early_ids", {"user_ids": [c[0] for c in CUSTOMERS[:10]] + ["nobody"]}),
            ("early_devices", {"device_ids": [c[2] for c in CUSTOMERS[5:12]]}),
        ):
            common = {"partner_api_key": PARTNER_API_KEY, "client_secret": facts["key"]}
            _post(f"{base}/partners/{PARTNER}/cohorts", {
                **common, "cohort_id": cohort_id, "name": cohort_id,
                "created_at": "2026-11-28T12:00:00Z",
            })  # fmt: skip
            _post(f"{base}/partners/{PARTNER}/cohorts/users", {
                **common, "cohort_id": cohort_id, "cohort_changes": [changes],
            })  # fmt: skip
    release.run(
        "braze", "segment", "create", "Early", "--workspace", WORKSPACE,
        "--includes-cohort", "early_ids",
    )  # fmt: skip
    cohorts = release.json("braze", "cohorts", "list", "--workspace", WORKSPACE)
    return {**facts, "cohorts": {cohort["cohort_id"]: cohort for cohort in cohorts}}


def _post(url: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200, response.read()


def copy_sqlite(source: Path, target: Path) -> None:
    """A clean single-file copy (whatever the WAL still held is folded in)."""
    target.unlink(missing_ok=True)
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


def postgres_dump(source: Path, work: Path, admin_url: str) -> dict[str, Any]:
    """The previous release's store on PostgreSQL, dumped as plain SQL."""
    import psycopg

    name = f"cohortsync_fixture_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        facts = previous_release(source, work, url)
        dump = subprocess.run(
            ["pg_dump", "--no-owner", "--no-privileges", url],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        (OUT / "braze-postgres.sql").write_text(dump)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return facts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--postgres",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="an administrative URL of the PostgreSQL server for braze-postgres.sql",
    )
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    facts: dict[str, Any] = {"previous_release": PREVIOUS, "first_store_release": FIRST_STORE}
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        (work / "prev").mkdir()
        store = work / "prev" / "braze.db"
        facts["sqlite"] = previous_release(worktree(PREVIOUS), work / "prev", f"sqlite:///{store}")
        copy_sqlite(work / "prev" / "catalog.db", OUT / "catalog.db")
        shutil.copyfile(work / "prev" / "secret.key", OUT / "secret.key")
        copy_sqlite(store, OUT / "braze.db")
        (work / "pg").mkdir()
        facts["postgres"] = postgres_dump(worktree(PREVIOUS), work / "pg", args.postgres)
        (work / "first").mkdir()
        first = work / "first" / "braze.db"
        facts["first_store"] = first_store(
            worktree(FIRST_STORE), work / "first", f"sqlite:///{first}"
        )
        copy_sqlite(first, OUT / "braze-0001.db")
    (OUT / "facts.json").write_text(json.dumps(facts, indent=2, sort_keys=True) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
