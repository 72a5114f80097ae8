"""`make demo`: the whole cohort import, end to end, on the embedded defaults.

It plays both roles with the real command line, printing each command it
runs so that the output doubles as a tutorial:

1. the Braze side: a fresh sandbox store with a workspace, the
   ``treasuredata`` partner, a data import key and users (the spec's seed
   example plus a few thousand more), served on a free local port;
2. the warehouse side: ``example_cohort_table`` loaded into the embedded
   DuckDB warehouse, checked with a query, and an authentication saved;
3. the three use cases of the seed workflow (external ids, email aliases,
   device ids) exported into three cohorts;
4. the first use case saved as a query (the console's Data Workbench) and
   run, so the run history holds a saved job's run beside the ad-hoc ones;
5. the Braze side again: each cohort's members and match rate, and a segment
   built on a cohort, as a marketer would target it.

Everything lives in a fresh home (``.demo-home`` by default, or the
directory given as the first argument), kept afterwards for inspection. The
demo ends with the command that opens the web console on that home, where
the authentication, the saved query and the runs are shown.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cohortsync.filemodes import open_private_home

WORKSPACE = "demo"
PARTNER_API_KEY = "demo-partner-key-us"
AUTH_NAME = "braze-demo"
SAVED_QUERY = "td_external_ids_daily"
EXTRA_USERS = 5_000

# The spec's example_cohort_table (section 1).
SEED_ROWS = [
    ("TDCohort1", "TDCohort1@gmail.com", "1a2b3c"),
    ("TDCohort2", "TDCohort2@gmail.com", "4d5f6g"),
    ("TDCohort3", "TDCohort3@gmail.com", "7h8j9k"),
    ("TDCohort4", "TDCohort4@gmail.com", "1ab2cd"),
]

USE_CASES = [
    (
        "td_external_ids",
        "external ids",
        ["--query", "SELECT external_id AS user_ids FROM example_cohort_table"],
    ),
    (
        "td_emails",
        "email aliases",
        ["--query", "SELECT email FROM example_cohort_table", "--alias-column", "email"],
    ),
    (
        "td_devices",
        "device ids",
        ["--query", "SELECT device_ids FROM example_cohort_table"],
    ),
]


def heading(text: str) -> None:
    print(f"\n== {text}", flush=True)


def cohortsync(
    env: dict[str, str], *args: str, parse_json: bool = False, quiet: bool = False
) -> Any:
    """Run one ``cohortsync`` command as a user would, echoing it first."""
    print(f"$ cohortsync {shlex.join(args)}", flush=True)
    done = subprocess.run(
        [sys.executable, "-m", "cohortsync", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"demo failed at: cohortsync {shlex.join(args)}")
    if not quiet and done.stdout.strip():
        print(done.stdout.rstrip(), flush=True)
    if done.stderr.strip() and not quiet:
        print(done.stderr.rstrip(), flush=True)
    return json.loads(done.stdout) if parse_json else done.stdout


def write_users(path: Path) -> int:
    """Braze users for the seed example, and a few thousand others.

    The seed people are identified (external id + email alias). Their device
    ids belong to anonymous profiles, as when a device was seen before anyone
    logged in: Braze matches device ids only for users without an external id.
    """
    lines = []
    for external_id, email, _device in SEED_ROWS:
        lines.append(
            {"external_id": external_id, "aliases": [{"alias_label": "email", "alias_name": email}]}
        )
    lines.extend({"device_ids": [device]} for _, _, device in SEED_ROWS)
    for number in range(EXTRA_USERS):
        user: dict[str, Any] = {"external_id": f"user{number:05d}"}
        if number % 2 == 0:
            user["aliases"] = [
                {"alias_label": "email", "alias_name": f"user{number:05d}@example.com"}
            ]
        lines.append(user)
        if number % 5 == 0:
            lines.append({"device_ids": [f"device{number:05d}"]})
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return len(lines)


def write_seed_table(path: Path) -> None:
    rows = ["external_id,email,device_ids"]
    rows += [",".join(row) for row in SEED_ROWS]
    path.write_text("\n".join(rows) + "\n")


# The line ``braze serve`` prints once it listens; with --port 0 it is where to find it.
SERVING_ON = re.compile(r"^serving on (http://\S+)", re.MULTILINE)


def _served_url(log: Path) -> str | None:
    found = SERVING_ON.search(log.read_text())
    return found.group(1) if found else None


def _answers(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/openapi.json", timeout=1):
            return True
    except OSError:
        return False


@contextmanager
def receiving_service(env: dict[str, str], home: Path) -> Iterator[str]:
    """``cohortsync braze serve`` in the background, on a port it picks; stopped on exit.

    Port 0: the service binds a free port itself and says which, so no other
    program can take the port between choosing it and listening on it.
    """
    args = ["braze", "serve", "--port", "0"]
    print(f"$ cohortsync {shlex.join(args)} &", flush=True)
    log_path = home / "braze-serve.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "cohortsync", *args], env=env, stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 30
        while not ((base_url := _served_url(log_path)) and _answers(base_url)):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the receiving service did not start; see {log_path}")
            time.sleep(0.1)
        print(f"  serving at {base_url} (OpenAPI at {base_url}/docs)", flush=True)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        print("  receiving service stopped", flush=True)


def main() -> None:
    home = Path(sys.argv[1] if len(sys.argv) > 1 else ".demo-home").resolve()
    shutil.rmtree(home, ignore_errors=True)
    open_private_home(home)  # 0700, and the logs written here 0600, as the commands do
    env = {
        **os.environ,
        "COHORTSYNC_HOME": str(home),
        "COHORTSYNC_PARTNER_API_KEY": PARTNER_API_KEY,
    }
    env.pop("COHORTSYNC_WAREHOUSE", None)
    env.pop("COHORTSYNC_BRAZE_DB", None)
    print(f"cohortsync demo, in a fresh home: {home}")

    heading("1. Braze side: a sandbox workspace, the Treasure Data partner, a key, users")
    cohortsync(env, "braze", "workspace", "create", WORKSPACE)
    cohortsync(
        env,
        "braze", "partner", "create", "treasuredata",
        "--display-name", "Treasure Data", "--api-key", PARTNER_API_KEY, "--region", "us",
    )  # fmt: skip
    cohortsync(env, "braze", "partner", "enable", "treasuredata", "--workspace", WORKSPACE)
    key = cohortsync(
        env, "braze", "key", "generate", "--workspace", WORKSPACE, parse_json=True, quiet=True
    )["data_import_key"]
    print(f'  {{"data_import_key": "{key[:4]}…"}}')
    users = home / "users.ndjson"
    count = write_users(users)
    print(f"  ({count:,} users: the 4 seed people, their 4 anonymous devices, and others)")
    cohortsync(env, "braze", "users", "load", "--workspace", WORKSPACE, str(users))

    with receiving_service(env, home) as base_url:
        heading("2. Warehouse side: load the example table, check it, save the authentication")
        table = home / "example_cohort_table.csv"
        write_seed_table(table)
        cohortsync(env, "warehouse", "load", "example_cohort_table", str(table))
        cohortsync(env, "warehouse", "query", "SELECT * FROM example_cohort_table")
        auth_env = {**env, "COHORTSYNC_DATA_IMPORT_KEY": key}
        print("  (the data import key comes from $COHORTSYNC_DATA_IMPORT_KEY)")
        cohortsync(auth_env, "auth", "create", AUTH_NAME, "--endpoint", base_url)

        heading("3. Export the three use cases of the seed workflow into cohorts")
        for cohort_id, what, source in USE_CASES:
            print(f"-- {what}")
            cohortsync(env, "export", "--auth", AUTH_NAME, "--cohort-id", cohort_id, *source)

        heading("4. Save the external ids export as a query, and run it")
        first_cohort, _what, (_flag, first_sql) = USE_CASES[0]
        cohortsync(
            env,
            "query", "save", SAVED_QUERY, "--sql", first_sql,
            "--export", AUTH_NAME, "--cohort-id", first_cohort,
        )  # fmt: skip
        cohortsync(env, "query", "run", SAVED_QUERY)

        heading("5. Braze side: the cohorts, their members, and a segment to target")
        cohortsync(env, "braze", "cohorts", "list", "--workspace", WORKSPACE)
        for cohort_id, _what, _source in USE_CASES:
            members = cohortsync(
                env,
                "braze", "cohorts", "members", cohort_id, "--workspace", WORKSPACE,
                parse_json=True, quiet=True,
            )  # fmt: skip
            print(f"  {len(members)} members: {json.dumps(members)}")
        cohortsync(
            env,
            "braze", "segment", "create", "Treasure Data email cohort",
            "--workspace", WORKSPACE, "--includes-cohort", "td_emails",
        )  # fmt: skip
        cohortsync(
            env, "braze", "segment", "members", "Treasure Data email cohort",
            "--workspace", WORKSPACE,
        )  # fmt: skip
        cohortsync(env, "runs", "list")

    print(f"\ndemo complete; everything it made is in {home}")
    print(console_instructions(home))


def console_command() -> str:
    """How to start the command line of the Python running the demo, as a user types it.

    ``make demo`` runs ``.venv/bin/python``, whose ``cohortsync`` executable
    sits beside it; it is shown relative to the current directory when inside.
    """
    executable = Path(sys.executable).with_name("cohortsync")
    if not executable.exists():
        return f"{shlex.quote(sys.executable)} -m cohortsync"
    try:
        return str(executable.absolute().relative_to(Path.cwd()))
    except ValueError:
        return shlex.quote(str(executable))


def console_instructions(home: Path) -> str:
    """The demo's last words: open the web console on the demo's home."""
    return (
        "\nOpen the console on this demo's home:\n"
        f"    COHORTSYNC_HOME={shlex.quote(str(home))} {console_command()} console\n"
        "then open the one-time login link it prints and choose a password"
        " (or set COHORTSYNC_CONSOLE_PASSWORD first and log in as 'admin')."
    )


if __name__ == "__main__":
    main()
