"""Receiver benchmark: identifiers matched per second by ``/cohorts/users``.

Loads 1,000,000 users with ``cohortsync braze users load`` (timed: the target
is under a minute), starts ``cohortsync braze serve`` in its own process, then
8 concurrent clients send requests of 1,000 identifiers (80% external ids,
10% aliases, 10% device ids of anonymous users, all known) for a fixed time.
Prints the load time and the identifiers matched per second, read back from
the service's own match counts. Target: 100,000 per second on SQLite, 2 cores.

    .venv/bin/python bench/receiver.py [--users 1000000] [--seconds 20] [--clients 8] [--db URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson
import psutil

from cohortsync.braze import admin
from cohortsync.braze.store import open_store

ANONYMOUS_EVERY = 10  # one user in ten is anonymous, known by a device id
TARGET = 100_000


def cli(*args: str, db: str) -> bytes:
    command = [sys.executable, "-m", "cohortsync", "braze", *args, "--db", db]
    return subprocess.run(command, check=True, capture_output=True).stdout


def write_users(path: Path, count: int) -> None:
    with path.open("wb") as out:
        for i in range(count):
            if i % ANONYMOUS_EVERY == ANONYMOUS_EVERY - 1:
                line = {"device_ids": [f"device-{i}"]}
            else:
                line = {
                    "external_id": f"user-{i}",
                    "aliases": [{"alias_label": "email", "alias_name": f"user-{i}@example.com"}],
                }
            out.write(orjson.dumps(line) + b"\n")


def request_body(rng: random.Random, users: int, keys: dict[str, str], index: int) -> bytes:
    user_ids, aliases, devices = [], [], []
    while len(user_ids) + len(aliases) + len(devices) < 1000:
        i = rng.randrange(users)
        if i % ANONYMOUS_EVERY == ANONYMOUS_EVERY - 1:
            if len(devices) < 100:
                devices.append(f"device-{i}")
        elif len(aliases) < 100 and rng.random() < 0.12:
            aliases.append({"alias_label": "email", "alias_name": f"user-{i}@example.com"})
        elif len(user_ids) < 800:
            user_ids.append(f"user-{i}")
    changes = [{"user_ids": user_ids, "aliases": aliases, "device_ids": devices}]
    if index % 4 == 3:  # a quarter of the requests remove what they name
        changes[0]["should_remove"] = True
    return orjson.dumps({**keys, "cohort_id": f"bench-{index % 4}", "cohort_changes": changes})


async def drive(
    base_url: str, bodies: list[bytes], clients: int, seconds: float
) -> tuple[int, float]:
    deadline = time.perf_counter() + seconds
    sent = 0
    headers = {"Content-Type": "application/json"}
    url = f"{base_url}/partners/treasuredata/cohorts/users"

    async def client(session: aiohttp.ClientSession, offset: int) -> None:
        nonlocal sent
        n = offset
        while time.perf_counter() < deadline:
            async with session.post(url, data=bodies[n % len(bodies)], headers=headers) as response:
                await response.read()
                if response.status != 200:
                    raise SystemExit(f"HTTP {response.status}: {await response.text()}")
            sent += 1
            n += clients

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(session, k) for k in range(clients)))
        return sent, time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(base_url: str, process: subprocess.Popen[bytes]) -> None:
    import urllib.request

    for _ in range(300):
        if process.poll() is not None:
            raise SystemExit("the service exited before answering")
        try:
            urllib.request.urlopen(f"{base_url}/openapi.json", timeout=1).read()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the service did not answer within 30 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--db", help="store URL (default: a fresh SQLite file)")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        db = options.db or f"sqlite:///{tmp}/braze.db"
        store = open_store(db)
        workspace = admin.create_workspace(store, f"bench-{os.getpid()}")
        partner_key = f"bench-partner-key-{os.getpid()}"
        admin.create_partner(
            store, "treasuredata", api_key=partner_key, display_name="Treasure Data"
        )
        admin.enable_partner(store, "treasuredata", workspace=workspace["id"])
        secret = admin.generate_key(store, workspace=workspace["id"])["data_import_key"]
        store.close()

        users_file = Path(tmp) / "users.ndjson"
        write_users(users_file, options.users)
        started = time.perf_counter()
        cli("users", "load", str(users_file), "--workspace", str(workspace["id"]), db=db)
        load_seconds = time.perf_counter() - started
        print(f"users load: {options.users:,} users in {load_seconds:.1f} s (target: under 60 s)")

        rng = random.Random(7)
        keys = {"partner_api_key": partner_key, "client_secret": secret}
        bodies = [request_body(rng, options.users, keys, i) for i in range(400)]

        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [sys.executable, "-m", "cohortsync", "braze", "serve", "--port", str(port), "--db", db],
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_until_up(base_url, server)
            asyncio.run(drive(base_url, bodies[:16], options.clients, 1.0))  # warm-up
            store = open_store(db)
            before = sum(
                c["identifiers"][kind]["matched"]
                for c in admin.list_cohorts(store, workspace=workspace["id"])
                for kind in c["identifiers"]
            )
            service, client = psutil.Process(server.pid), psutil.Process()
            cpu_before = sum(service.cpu_times()[:2])
            client_before = sum(client.cpu_times()[:2])
            sent, elapsed = asyncio.run(drive(base_url, bodies, options.clients, options.seconds))
            service_cpu = sum(service.cpu_times()[:2]) - cpu_before
            client_cpu = sum(client.cpu_times()[:2]) - client_before
            after = sum(
                c["identifiers"][kind]["matched"]
                for c in admin.list_cohorts(store, workspace=workspace["id"])
                for kind in c["identifiers"]
            )
            store.close()
        finally:
            server.terminate()
            server.wait(timeout=30)

    matched = after - before
    rate = matched / elapsed
    print(
        f"/cohorts/users: {sent:,} requests of 1,000 identifiers, {options.clients} clients, "
        f"{elapsed:.1f} s: {sent / elapsed:,.0f} requests/s"
    )
    cpu_ms = service_cpu / sent * 1000
    print(
        f"service CPU: {cpu_ms:.1f} ms per request ({service_cpu / elapsed:.2f} cores busy); "
        f"benchmark clients: {client_cpu / sent * 1000:.1f} ms per request; "
        f"machine load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    verdict = "met" if rate >= TARGET else "missed"
    print(f"identifiers matched per second: {rate:,.0f} (target {TARGET:,}: {verdict})")


if __name__ == "__main__":
    main()
