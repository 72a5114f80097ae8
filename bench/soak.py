"""Soak benchmark: a 1,000,000-member cohort mirrored 50 times into a loaded receiving service.

Starts the real service (``cohortsync braze serve``, a fresh SQLite store)
with the users of :mod:`receiver` loaded by ``cohortsync braze users load``
(one in ten anonymous, known by a device id; by default 10% more users than
members, so that members can enter as well as leave). The cohort lives in
the embedded DuckDB warehouse of a fresh ``COHORTSYNC_HOME`` (80% external
ids, 10% e-mail aliases, 10% device ids). A first mirror run adds everyone
(cycle 0); then each cycle moves a random share of 0.1% to 2% of the members
out and as many users in (a seeded RNG; the seed is printed) and runs
``cohortsync export --operation mirror`` as its own process.

Meanwhile ``--clients`` other clients, in a process of their own, keep the
service busy without pause: partner ``cohorts/users`` requests of 1,000
identifiers to other cohorts (:func:`receiver.request_body`), ``/users/track``
requests of 75 attribute updates and ``/users/export/ids`` requests of 50
external ids, each counting its requests and errors.

After every cycle: the export exited 0; the cohort's members in the service's
store (read through its tables) are exactly the users the warehouse query's
identifiers name; the export's peak memory (``VmHWM``), and the service's
resident memory, open file descriptors and threads. The verdict asks that
every cycle passed, that no client request failed, and that the export's
peak, the service's descriptors and threads did not grow in the second half
of the churn cycles past the first half's maximum, nor the service's
resident memory past the first half's median (memory: by more than 10% and
20 MB). The service is sampled under load, so one reading moves with the
requests in flight at that moment (a single 690 MB among readings of
370-590 MB has been seen); a leak shows as a rise of the typical reading,
which the medians compare.

    .venv/bin/python bench/soak.py [--members 1000000] [--cycles 50] [--clients 8]
        [--users N] [--seed N] [--max-minutes M]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.sharedctypes import SynchronizedArray
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import aiohttp
import duckdb
import orjson
import psutil
import sqlalchemy as sa

from cohortsync.braze import admin
from cohortsync.braze.store import Store, open_store
from cohortsync.braze.store.tables import cohort_members, cohorts, user_devices, users
from measured import run_measured
from receiver import ANONYMOUS_EVERY, request_body, write_users

COHORT = "soak"
PARTNER = "treasuredata"
TRACK_OBJECTS = 75
EXPORT_IDS = 50
CHURN_RANGE = (0.001, 0.02)
HEADER = (
    "cycle   churn       sent  export s  peak MB  service RSS MB  fds  threads  home MB"
    "    members  ok"
)
GROWTH_SHARE, GROWTH_MB = 0.10, 20.0
# The cohort's identifiers, by member: the kind its user is known by in receiver.write_users.
COHORT_VIEW = f"""
    CREATE VIEW soak_cohort AS SELECT
        CASE WHEN i % {ANONYMOUS_EVERY} < {ANONYMOUS_EVERY - 2}
             THEN 'user-' || i END AS user_ids,
        CASE WHEN i % {ANONYMOUS_EVERY} = {ANONYMOUS_EVERY - 1}
             THEN 'device-' || i END AS device_ids,
        CASE WHEN i % {ANONYMOUS_EVERY} = {ANONYMOUS_EVERY - 2}
             THEN 'user-' || i || '@example.com' END AS email
    FROM members
"""


@dataclass
class Cycle:
    cycle: int
    churn: int  # members that left (as many entered)
    seconds: float
    peak_mb: float
    returncode: int
    service_rss_mb: float
    fds: int
    threads: int
    home_mb: float  # the exporting home on disk but the warehouse: catalog, snapshots, runs
    members: int
    entries: int  # the export's report: identifiers it added
    exits: int  # and removed
    membership_ok: bool
    detail: str = ""


# ---------------------------------------------------------------- the other clients


def load_bodies(
    rng: random.Random, users_count: int, partner_keys: dict[str, str], count: int
) -> dict[str, list[bytes]]:
    """Request bodies for each kind of load client, built once."""
    identified = [i for i in range(users_count) if i % ANONYMOUS_EVERY != ANONYMOUS_EVERY - 1]
    track = [
        orjson.dumps(
            {
                "attributes": [
                    {"external_id": f"user-{i}", "soak_visits": {"inc": 1}}
                    for i in rng.sample(identified, TRACK_OBJECTS)
                ]
            }
        )
        for _ in range(count)
    ]
    export = [
        orjson.dumps({"external_ids": [f"user-{i}" for i in rng.sample(identified, EXPORT_IDS)]})
        for _ in range(count)
    ]
    partner = [request_body(rng, users_count, partner_keys, i) for i in range(count)]
    return {"partner": partner, "track": track, "export": export}


def client_kind(index: int) -> str:
    """Half the clients send partner requests, a quarter each of the two REST routes."""
    return ("partner", "partner", "track", "export")[index % 4]


def run_load(
    base_url: str,
    bodies: dict[str, list[bytes]],
    rest_api_key: str,
    clients: int,
    counts: SynchronizedArray[Any],
    stop: Event,
    statuses_path: str,
) -> None:
    """The load clients' process: each client sends its kind of request until ``stop``.

    ``counts[2 * k]`` counts client k's requests, ``counts[2 * k + 1]`` its errors
    (an answer other than 200 or 201, or no answer); the error statuses go to
    ``statuses_path`` as JSON when stopped.
    """
    paths = {
        "partner": f"/partners/{PARTNER}/cohorts/users",
        "track": "/users/track",
        "export": "/users/export/ids",
    }
    statuses: Counter[str] = Counter()

    async def client(session: aiohttp.ClientSession, k: int) -> None:
        kind = client_kind(k)
        url = base_url + paths[kind]
        headers = {"Content-Type": "application/json"}
        if kind != "partner":
            headers["Authorization"] = f"Bearer {rest_api_key}"
        own = bodies[kind]
        n = k
        while not stop.is_set():
            try:
                async with session.post(url, data=own[n % len(own)], headers=headers) as answer:
                    await answer.read()
                    if answer.status not in (200, 201):
                        statuses[f"{kind} {answer.status}"] += 1
                        counts[2 * k + 1] += 1
            except (TimeoutError, aiohttp.ClientError) as error:
                statuses[f"{kind} {type(error).__name__}"] += 1
                counts[2 * k + 1] += 1
                await asyncio.sleep(0.1)
            counts[2 * k] += 1
            n += clients

    async def main() -> None:
        timeout = aiohttp.ClientTimeout(total=120)
        connector = aiohttp.TCPConnector(limit=clients)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            await asyncio.gather(*(client(session, k) for k in range(clients)))

    asyncio.run(main())
    Path(statuses_path).write_text(json.dumps(statuses))


# ---------------------------------------------------------------- the service


def start_service(db: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``cohortsync braze serve`` on a free port, its rate limit out of the way; its URL."""
    command = [sys.executable, "-m", "cohortsync", "braze", "serve", "--port", "0"]
    command += ["--db", db, "--rate-limit", "1000000000/hour"]
    with log.open("wb") as err:
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the service exited at start: {log.read_text()}")
        for line in log.read_text().splitlines():
            if "serving on " in line:
                return server, line.split("serving on ", 1)[1].split()[0]
        time.sleep(0.1)
    server.terminate()
    raise SystemExit("the service did not say where it serves within 60 s")


def service_figures(pid: int) -> tuple[float, int, int]:
    """The service's resident MB, open file descriptors and threads, from ``/proc``."""
    rss = psutil.Process(pid).memory_info().rss / 2**20
    return rss, len(os.listdir(f"/proc/{pid}/fd")), len(os.listdir(f"/proc/{pid}/task"))


def disk_mb(directory: Path, *, besides: Path) -> float:
    """The size of the files under ``directory`` but ``besides``, in MB."""
    sizes = (f.stat().st_size for f in directory.rglob("*") if f.is_file() and f != besides)
    return sum(sizes) / 2**20


def member_numbers(store: Store, workspace: int) -> list[int]:
    """The numbers of the cohort's members in the store: ``user-N`` or ``device-N``'s N.

    Identified users are known by their external id, anonymous ones by their
    only device (receiver.write_users gives them one each).
    """
    key = sa.func.coalesce(users.c.external_id, user_devices.c.device_id)
    query = (
        sa.select(key)
        .select_from(
            cohort_members.join(users, users.c.id == cohort_members.c.user_id)
            .join(cohorts, cohorts.c.id == cohort_members.c.cohort_pk)
            .outerjoin(user_devices, user_devices.c.user_id == users.c.id)
        )
        .where(cohorts.c.workspace_id == workspace, cohorts.c.cohort_id == COHORT)
    )
    with store.read() as conn:
        return [int(value.rsplit("-", 1)[1]) for (value,) in conn.execute(query)]


def query_numbers(warehouse: Path) -> list[int]:
    """The numbers of the users the cohort query's identifiers name, read from the warehouse."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute("SELECT user_ids, device_ids, email FROM soak_cohort").fetchall()
    numbers = []
    for user_id, device_id, email in rows:
        value = user_id or device_id or email.split("@", 1)[0]
        numbers.append(int(value.rsplit("-", 1)[1]))
    return numbers


def compare(store_side: list[int], query_side: list[int]) -> tuple[bool, str]:
    """Whether the store's members are exactly the query's users; what differs if not."""
    in_store, in_query = set(store_side), set(query_side)
    duplicates = len(store_side) - len(in_store)
    if in_store == in_query and not duplicates:
        return True, ""
    missing, extra = in_query - in_store, in_store - in_query
    return False, (
        f"{len(missing):,} missing (e.g. {sorted(missing)[:3]}), "
        f"{len(extra):,} not in the result (e.g. {sorted(extra)[:3]}), "
        f"{duplicates:,} listed twice"
    )


# ---------------------------------------------------------------- the cycles


def churn(
    rng: random.Random, inside: list[int], outside: list[int], members: int
) -> tuple[list[int], list[int]]:
    """Swap a random 0.1%-2% of the members with as many non-members: (leaving, entering)."""
    count = max(1, round(members * rng.uniform(*CHURN_RANGE)))
    count = min(count, len(outside))
    leaving, entering = [], []
    for a, b in zip(
        rng.sample(range(len(inside)), count), rng.sample(range(len(outside)), count), strict=True
    ):
        leaving.append(inside[a])
        entering.append(outside[b])
        inside[a], outside[b] = outside[b], inside[a]
    return leaving, entering


def apply_churn(warehouse: Path, leaving: list[int], entering: list[int]) -> None:
    with duckdb.connect(str(warehouse)) as con:
        con.execute("DELETE FROM members WHERE i IN (SELECT unnest(?::BIGINT[]))", [leaving])
        con.execute("INSERT INTO members SELECT unnest(?::BIGINT[])", [entering])


def grew(
    values: list[float],
    *,
    share: float = 0.0,
    slack: float = 0.0,
    level: Callable[[list[float]], float] = max,
) -> bool:
    """Whether the second half's ``level`` (its maximum, or its median) exceeds the first
    half's by more than the slack."""
    if len(values) < 2:
        return False
    half = len(values) // 2
    before, after = level(values[:half]), level(values[half:])
    return after > before * (1 + share) + slack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--cycles", type=int, default=50, help="churn cycles after the first")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--users", type=int, default=None, help="default: members + 10%%")
    parser.add_argument("--seed", type=int, default=None, help="default: a random one")
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="start no cycle after this many minutes; the report says how many ran",
    )
    options = parser.parse_args()
    users_count = options.users or options.members + options.members // 10
    if users_count <= options.members:
        parser.error("--users must exceed --members, so that users can enter the cohort")
    seed = options.seed if options.seed is not None else random.SystemRandom().randrange(10**6)
    print(
        f"soak: {options.members:,} members of {users_count:,} users, {options.cycles} churn "
        f"cycles of {CHURN_RANGE[0]:.1%}-{CHURN_RANGE[1]:.0%}, {options.clients} load clients, "
        f"seed {seed}",
        flush=True,
    )
    rng = random.Random(seed)

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        db = f"sqlite:///{directory}/braze.db"
        store = open_store(db)
        workspace = admin.create_workspace(store, "soak")
        partner_key = f"soak-partner-key-{os.getpid()}"
        admin.create_partner(store, PARTNER, api_key=partner_key, display_name="Treasure Data")
        admin.enable_partner(store, PARTNER, workspace=workspace["id"])
        secret = admin.generate_key(store, workspace=workspace["id"])["data_import_key"]

        users_file = directory / "users.ndjson"
        write_users(users_file, users_count)
        started = time.perf_counter()
        load_command = [sys.executable, "-m", "cohortsync", "braze", "users", "load"]
        load_command += [str(users_file), "--workspace", str(workspace["id"]), "--db", db]
        subprocess.run(
            load_command,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        users_file.unlink()
        print(f"users load: {time.perf_counter() - started:.1f} s", flush=True)

        home = directory / "home"
        home.mkdir()
        warehouse = home / "warehouse.duckdb"
        with duckdb.connect(str(warehouse)) as con:
            con.execute(f"CREATE TABLE members AS SELECT range AS i FROM range({options.members})")
            con.execute(COHORT_VIEW)
        inside, outside = list(range(options.members)), list(range(options.members, users_count))

        log = directory / "service.log"
        server, base_url = start_service(db, log)
        context = multiprocessing.get_context("spawn")
        counts = context.Array("q", 2 * options.clients)
        stop = context.Event()
        statuses_path = str(directory / "statuses.json")
        bodies = load_bodies(
            rng, users_count, {"partner_api_key": partner_key, "client_secret": secret}, 200
        )
        load = context.Process(
            target=run_load,
            args=(
                base_url,
                bodies,
                workspace["rest_api_key"],
                options.clients,
                counts,
                stop,
                statuses_path,
            ),
        )
        env = {
            **os.environ,
            "COHORTSYNC_HOME": str(home),
            "COHORTSYNC_PARTNER_API_KEY": partner_key,
        }
        command = [sys.executable, "-m", "cohortsync", "export", "--endpoint", base_url]
        command += ["--data-import-key", secret, "--alias-column", "email", "--json"]
        command += ["--table", "soak_cohort", "--operation", "mirror", "--cohort-id", COHORT]
        command += ["--max-remove-pct", "100"]
        results: list[Cycle] = []
        load_started = time.perf_counter()
        try:
            load.start()
            print(HEADER, flush=True)
            for cycle in range(options.cycles + 1):
                minutes = (time.perf_counter() - load_started) / 60
                if options.max_minutes is not None and cycle > 1 and minutes > options.max_minutes:
                    print(
                        f"stopped after {cycle - 1} of {options.cycles} churn cycles: "
                        f"{minutes:.1f} minutes passed (--max-minutes {options.max_minutes:g})",
                        flush=True,
                    )
                    break
                leaving: list[int] = []
                entering: list[int] = []
                if cycle:
                    leaving, entering = churn(rng, inside, outside, options.members)
                    apply_churn(warehouse, leaving, entering)
                done = run_measured(command, env, capture=True)
                rss, fds, threads = service_figures(server.pid)
                home_mb = disk_mb(home, besides=warehouse)
                in_store = member_numbers(store, workspace["id"])
                ok, detail = compare(in_store, query_numbers(warehouse))
                if ok and set(in_store) != set(inside):
                    ok, detail = False, "the warehouse does not hold the members the churn chose"
                entries = exits = -1
                if done.returncode == 0:
                    mirror = orjson.loads(done.stdout).get("mirror", {})
                    entries, exits = int(mirror["entries"]), int(mirror["exits"])
                    expected = (len(entering), len(leaving)) if cycle else (options.members, 0)
                    if ok and (entries, exits) != expected:
                        ok, detail = False, f"the export sent +{entries:,}/-{exits:,}"
                else:
                    detail = f"export exited {done.returncode}: {done.stderr[-500:]}"
                result = Cycle(
                    cycle,
                    len(leaving),
                    done.seconds,
                    done.peak_mb,
                    done.returncode,
                    rss,
                    fds,
                    threads,
                    home_mb,
                    len(in_store),
                    entries,
                    exits,
                    ok and done.returncode == 0,
                    detail,
                )
                results.append(result)
                print(
                    f"{cycle:5}  {len(leaving):6,}  {entries + exits:9,}  {done.seconds:8.1f}  "
                    f"{done.peak_mb:7.0f}  {rss:14.0f}  {fds:3}  {threads:7}  {home_mb:7.1f}  "
                    f"{len(in_store):9,}  "
                    f"{'yes' if result.membership_ok else 'NO ' + detail}",
                    flush=True,
                )
                if not load.is_alive():
                    raise SystemExit("the load clients' process stopped")
        finally:
            stop.set()
            load.join(timeout=150)
            load_seconds = time.perf_counter() - load_started
            server.terminate()
            server.wait(timeout=30)
            store.close()
        statuses = json.loads(Path(statuses_path).read_text()) if load.exitcode == 0 else {}
        tracebacks = log.read_text().count("Traceback")
        report(
            results, options.cycles, counts[:], options.clients, load_seconds, statuses, tracebacks
        )


def report(
    results: list[Cycle],
    cycles: int,
    counts: list[int],
    clients: int,
    load_seconds: float,
    statuses: dict[str, int],
    tracebacks: int,
) -> None:
    churned = results[1:] or results
    peaks = [r.peak_mb for r in churned]
    rss = [r.service_rss_mb for r in churned]
    fds = [float(r.fds) for r in churned]
    threads = [float(r.threads) for r in churned]
    first, last = churned[0], churned[-1]
    print(
        f"\nfirst sync (cycle 0): {results[0].seconds:.1f} s, peak {results[0].peak_mb:.0f} MB; "
        f"churn cycles {first.cycle}-{last.cycle}: export {min(r.seconds for r in churned):.1f}-"
        f"{max(r.seconds for r in churned):.1f} s"
    )
    peak_grew = grew(peaks, share=GROWTH_SHARE, slack=GROWTH_MB)
    rss_grew = grew(rss, share=GROWTH_SHARE, slack=GROWTH_MB, level=statistics.median)
    fds_grew, threads_grew = grew(fds), grew(threads)
    print(
        f"export peak: first {first.peak_mb:.0f} MB, last {last.peak_mb:.0f} MB, "
        f"max {max(peaks):.0f} MB ({'grew' if peak_grew else 'flat'})"
    )
    print(
        f"service RSS: first {first.service_rss_mb:.0f} MB, last {last.service_rss_mb:.0f} MB, "
        f"max {max(rss):.0f} MB, median {statistics.median(rss[: len(rss) // 2]):.0f} MB in the "
        f"first half, {statistics.median(rss[len(rss) // 2 :]):.0f} MB in the second "
        f"({'grew' if rss_grew else 'flat'})"
    )
    home = [r.home_mb for r in churned]
    print(
        f"exporting home on disk (but the warehouse): first {first.home_mb:.1f} MB, "
        f"last {last.home_mb:.1f} MB, max {max(home):.1f} MB"
    )
    print(
        f"service fds: first {first.fds}, last {last.fds}, max {max(fds):.0f} "
        f"({'grew' if fds_grew else 'no growth'}); threads: first {first.threads}, "
        f"last {last.threads}, max {max(threads):.0f} "
        f"({'grew' if threads_grew else 'no growth'})"
    )
    requests, errors = sum(counts[0::2]), sum(counts[1::2])
    by_kind: Counter[str] = Counter()
    for k in range(clients):
        by_kind[client_kind(k)] += counts[2 * k]
    kinds = ", ".join(f"{kind} {n:,}" for kind, n in sorted(by_kind.items()))
    print(
        f"load: {clients} clients, {requests:,} requests in {load_seconds:.0f} s "
        f"({requests / load_seconds:,.0f}/s; {kinds}), {errors:,} errors"
        + (f" ({', '.join(f'{s}: {n:,}' for s, n in statuses.items())})" if statuses else "")
        + f"; {tracebacks} tracebacks in the service's log"
    )
    failed = [r.cycle for r in results if not r.membership_ok]
    passed = not (failed or errors or tracebacks or peak_grew or rss_grew)
    passed = passed and not (fds_grew or threads_grew)
    print(
        f"verdict: {'PASS' if passed else 'FAIL'}: {len(results) - 1} of {cycles} churn cycles "
        f"ran; {len(results) - len(failed)}/{len(results)} runs exited 0 with the membership exact"
        + (f" (failed: {failed})" if failed else "")
        + f"; memory {'grew' if peak_grew or rss_grew else 'flat'}; fds and threads "
        f"{'grew' if fds_grew or threads_grew else 'did not grow'}; {errors:,} load errors"
    )
    if not passed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
