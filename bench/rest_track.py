"""/users/track benchmark: attribute updates per second on a store of a million users.

Builds a fresh SQLite store in a temporary home, loads ``--users`` users
with the bulk load (``cohortsync braze users load``, measured), then times
``/users/track`` requests of 75 attributes objects, each updating one random
existing user (one custom attribute set, one incremented):

1. through the operation itself (``tracking.track``, the function the route
   calls after parsing), in a child process, ``--requests`` requests;
2. through the HTTP endpoint of a real ``cohortsync braze serve``, with
   ``--clients`` concurrent clients (the server's peak memory is polled).
   Bodies are encoded before the clock starts, so that on a small machine
   the clients' JSON encoding does not take CPU from the server.

Each phase prints updates per second and the peak memory (``VmHWM``) of the
process that did the work; the HTTP phase also prints the CPU time the
server (its event loop and its thread pool) and the clients spent per
request, which other work on the machine does not change as much as it
changes the rate:

    python bench/rest_track.py                        # 1,000,000 users
    python bench/rest_track.py --users 100000 --requests 200
    python bench/rest_track.py --no-metrics           # the server without its metrics
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
import requests

from measured import high_water_mb, run_measured

HERE = Path(__file__).resolve().parent
PER_REQUEST = 75

DIRECT = """
import json, random, resource, sys, time
from cohortsync.braze.profiles import rest_operations, tracking
from cohortsync.braze.store import open_store

db_url = sys.argv[1]
workspace, users, requests = (int(value) for value in sys.argv[2:5])
store = open_store(db_url)
rng = random.Random(7)
batches = [
    [
        tracking.TrackObject(
            "attributes", i, ("external_id", f"u{rng.randrange(users)}"), False,
            custom=(("plan", "set", rng.choice(["gold", "silver"])), ("visits", "inc", 1)),
        )
        for i in range(75)
    ]
    for _ in range(requests)
]
started = time.perf_counter()
for batch in batches:
    assert tracking.track(store, workspace, batch) == []
seconds = time.perf_counter() - started
print(json.dumps({"objects": 75 * requests, "seconds": seconds}))
"""


def cli(home: Path, *args: str) -> str:
    env = {**os.environ, "COHORTSYNC_HOME": str(home)}
    done = subprocess.run(
        [sys.executable, "-m", "cohortsync", *args],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout


def write_users(path: Path, users: int) -> None:
    with path.open("w") as out:
        for n in range(users):
            out.write(f'{{"external_id": "u{n}"}}\n')


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU time so far of the process's main thread (the event loop) and of its others
    (the thread pool, where requests are authenticated, parsed and applied)."""
    main, others = 0.0, 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        seconds = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        if task.name == str(pid):
            main += seconds
        else:
            others += seconds
    return main, others


def bench_http(
    home: Path,
    db_url: str,
    rest_key: str,
    users: int,
    requests_: int,
    clients: int,
    serve_options: tuple[str, ...] = (),
) -> dict[str, float]:
    env = {**os.environ, "COHORTSYNC_HOME": str(home)}
    server = subprocess.Popen(
        [sys.executable, "-m", "cohortsync", "braze", "serve", "--port", "0", "--db", db_url,
         "--rate-limit", "1000000000/hour", *serve_options],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    peak = [0.0]
    done = threading.Event()
    try:
        assert server.stderr is not None
        base = ""
        while line := server.stderr.readline():
            if "serving on " in line:
                base = line.split("serving on ", 1)[1].split()[0]
                break
        assert base, "the server did not start"

        def poll() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], high_water_mb(server.pid))
                done.wait(0.05)

        threading.Thread(target=poll, daemon=True).start()
        rng = random.Random(11)
        bodies = [
            orjson.dumps({
                "attributes": [
                    {"external_id": f"u{rng.randrange(users)}",
                     "plan": rng.choice(["gold", "silver"]), "visits": {"inc": 1}}
                    for _ in range(PER_REQUEST)
                ]
            })
            for _ in range(requests_)
        ]  # fmt: skip
        local = threading.local()

        def send(body: bytes) -> None:
            session = getattr(local, "session", None)
            if session is None:
                session = local.session = requests.Session()
                session.headers["Authorization"] = f"Bearer {rest_key}"
                session.headers["Content-Type"] = "application/json"
            answer = session.post(f"{base}/users/track", data=body, timeout=60)
            assert answer.status_code == 200, answer.text

        server_cpu, client_cpu = cpu_seconds(server.pid), time.process_time()
        loop_cpu, pool_cpu = thread_cpu_seconds(server.pid)
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=clients) as pool:
            list(pool.map(send, bodies))
        seconds = time.perf_counter() - started
        server_cpu = cpu_seconds(server.pid) - server_cpu
        client_cpu = time.process_time() - client_cpu
        loop_after, pool_after = thread_cpu_seconds(server.pid)
        loop_cpu, pool_cpu = loop_after - loop_cpu, pool_after - pool_cpu
    finally:
        done.set()
        server.terminate()
        server.wait(timeout=30)
    return {
        "objects": PER_REQUEST * requests_,
        "seconds": seconds,
        "peak_mb": peak[0],
        "server_ms": 1000 * server_cpu / requests_,
        "client_ms": 1000 * client_cpu / requests_,
        "loop_ms": 1000 * loop_cpu / requests_,
        "pool_ms": 1000 * pool_cpu / requests_,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=2_000, help="direct requests of 75")
    parser.add_argument("--http-requests", type=int, default=1_000, help="HTTP requests of 75")
    parser.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients")
    parser.add_argument(
        "--no-metrics",
        action="store_true",
        help="serve without GET /metrics and its request counting, to measure their cost",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-track-") as folder:
        home = Path(folder)
        db_url = f"sqlite:///{home / 'braze.db'}"
        workspace = json.loads(cli(home, "braze", "workspace", "create", "bench", "--db", db_url))
        users_file = home / "users.ndjson"
        write_users(users_file, args.users)
        env = {**os.environ, "COHORTSYNC_HOME": str(home)}
        load = run_measured(
            [sys.executable, "-m", "cohortsync", "braze", "users", "load", str(users_file),
             "-w", "bench", "--db", db_url],
            env,
        )  # fmt: skip
        assert load.returncode == 0, "the bulk load failed"
        print(
            f"bulk load: {args.users:,} users in {load.seconds:.1f} s, peak {load.peak_mb:.0f} MB"
        )

        result_file = home / "direct.json"
        direct_env = {**env, "PYTHONPATH": str(HERE.parent / "src")}
        command = [sys.executable, "-c", DIRECT, db_url, str(workspace["id"]), str(args.users),
                   str(args.requests)]  # fmt: skip
        with result_file.open("w") as out:
            started = time.perf_counter()
            process = subprocess.Popen(command, env=direct_env, stdout=out)
            peak = 0.0
            while process.poll() is None:
                try:
                    peak = max(peak, high_water_mb(process.pid))
                except (OSError, ValueError):
                    break
                time.sleep(0.02)
            assert process.wait() == 0, "the direct run failed"
            wall = time.perf_counter() - started
        direct = json.loads(result_file.read_text())
        print(
            f"direct (tracking.track, {PER_REQUEST} objects a request): "
            f"{direct['objects'] / direct['seconds']:,.0f} attribute updates/s "
            f"({direct['objects']:,} in {direct['seconds']:.2f} s; process {wall:.1f} s "
            f"with start-up and request building), peak {peak:.0f} MB"
        )

        http = bench_http(
            home,
            db_url,
            workspace["rest_api_key"],
            args.users,
            args.http_requests,
            args.clients,
            ("--no-metrics",) if args.no_metrics else (),
        )
        print(
            f"HTTP (POST /users/track, {PER_REQUEST} objects a request, {args.clients} clients): "
            f"{http['objects'] / http['seconds']:,.0f} attribute updates/s "
            f"({http['objects']:,} in {http['seconds']:.2f} s), "
            f"server peak {http['peak_mb']:.0f} MB; CPU a request: server "
            f"{http['server_ms']:.2f} ms (event loop {http['loop_ms']:.2f} ms, thread pool "
            f"{http['pool_ms']:.2f} ms), clients {http['client_ms']:.2f} ms"
        )


if __name__ == "__main__":
    main()
