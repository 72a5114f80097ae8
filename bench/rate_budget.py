"""Rate budget benchmark: how much of a workspace's allowed rate exports use, and how politely.

A local partner API server in its own process answers every request after
``--latency`` seconds (100 ms) and allows ``--rate`` requests per second (69,
Braze's 250,000 an hour), counted in fixed one-second windows aligned on the
clock as Braze counts its windows: every answer carries ``X-RateLimit-Limit``,
``-Remaining`` and ``-Reset`` (epoch seconds), and a request over the limit
is answered 429 with a ``Retry-After``. The server logs when each request
arrived and how it was answered.

Two scenarios, each in a fresh home and against a fresh server:

(a) one ``cohortsync export`` with the default settings (``--threads auto``);
(b) ``--runs`` (5) exports of different cohorts of one workspace at once,
    separate processes sharing one home.

Each scenario measures ``--seconds`` (60) from the moment every run has sent
its first batch, then stops the runs (SIGTERM: they finish their requests in
flight and end interrupted). Printed: the requests per second arriving over
that span (every answer counted, 429s included), the share of 429 answers,
the busiest one-second window, and each run's requests in flight (the run
report's highest and last). Targets: (a) at least 90% of the allowed rate
with at most 1% 429s; (b) together at most the allowed rate, at most 1% 429s.

    python bench/rate_budget.py                  # both scenarios, 60 s each
    python bench/rate_budget.py --seconds 20 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import ClassVar

PARTNER_API_KEY = "bench-partner-key"
DATA_IMPORT_KEY = "bench-data-import-key"
STATS_PATH = "/__stats"


class _LimitedPartner(asyncio.Protocol):
    """Reads HTTP/1.1 requests (Content-Length bodies); answers each after the latency.

    The rate limit is decided when a request arrives; answers on one
    connection keep their order (the latency is the same for all).
    """

    limit = 69
    latency = 0.1
    # one server per process: the log and the window counts are the process's
    log: ClassVar[list[tuple[float, int, str]]] = []  # arrival, status, cohort id
    windows: ClassVar[Counter[int]] = Counter()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buffer = bytearray()
        self.loop = asyncio.get_running_loop()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            body = bytes(self.buffer[end + 4 : total])
            del self.buffer[:total]
            self._answer(head.split(b" ", 2)[1].decode(), body)

    def _answer(self, path: str, body: bytes) -> None:
        if path == STATS_PATH:
            self._write(200, json.dumps(self.log).encode(), {})
            return
        now = time.time()
        window = math.floor(now)
        self.windows[window] += 1
        used = self.windows[window]
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(0, self.limit - used)),
            "X-RateLimit-Reset": str(window + 1),
        }
        status, answer = 201, b'{"message":"success"}'
        if used > self.limit:
            status, answer = 429, b'{"message":"Rate limited"}'
            headers["Retry-After"] = str(max(1, math.ceil(window + 1 - now)))
        cohort = str(json.loads(body).get("cohort_id", "")) if path.endswith("/users") else ""
        self.log.append((now, status, cohort))
        self.loop.call_later(self.latency, self._write, status, answer, headers)

    def _write(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        if self.transport.is_closing():
            return
        reason = {200: "OK", 201: "Created", 429: "Too Many Requests"}[status]
        lines = [f"HTTP/1.1 {status} {reason}", "Content-Type: application/json"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines.append(f"Content-Length: {len(body)}")
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)


def _serve(limit: int, latency: float, ready: Connection) -> None:
    _LimitedPartner.limit, _LimitedPartner.latency = limit, latency

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_LimitedPartner, "127.0.0.1", 0, backlog=512)
        ready.send(server.sockets[0].getsockname()[1])
        async with server:
            await server.serve_forever()

    asyncio.run(main())


class Server:
    """The rate-limited partner server, in its own process."""

    def __init__(self, limit: int, latency: float) -> None:
        receive, send = multiprocessing.Pipe(duplex=False)
        self.process = multiprocessing.Process(
            target=_serve, args=(limit, latency, send), daemon=True
        )
        self.process.start()
        self.url = f"http://127.0.0.1:{receive.recv()}"

    def log(self) -> list[tuple[float, int, str]]:
        """Every request so far: when it arrived, its status, its cohort (batches only)."""
        with urllib.request.urlopen(self.url + STATS_PATH, timeout=30) as answer:
            return [(float(at), int(status), str(c)) for at, status, c in json.loads(answer.read())]

    def stop(self) -> None:
        self.process.terminate()
        self.process.join()


@dataclass
class Figures:
    seconds: float
    requests: int
    throttled: int
    busiest_window: int
    per_second: list[int]
    per_run: dict[str, int]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def throttled_pct(self) -> float:
        return 100 * self.throttled / self.requests if self.requests else 0.0


def figures(log: list[tuple[float, int, str]], start: float, seconds: float) -> Figures:
    """Every answer to a request that arrived in [start, start + seconds)."""
    inside = [entry for entry in log if start <= entry[0] < start + seconds]
    windows = Counter(math.floor(at) for at, _, _ in inside)
    # the first and last windows are partly outside the span
    whole = [count for window, count in windows.items() if start <= window < start + seconds - 1]
    return Figures(
        seconds,
        len(inside),
        sum(1 for _, status, _ in inside if status == 429),
        max(whole, default=0),
        [windows[w] for w in sorted(windows)],
        dict(sorted(Counter(cohort for _, _, cohort in inside if cohort).items())),
    )


def export_command(url: str, cohort: str, ids: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "cohortsync",
        "export",
        "--endpoint",
        url,
        "--data-import-key",
        DATA_IMPORT_KEY,
        "--warehouse",
        "duckdb:///:memory:",
        "--query",
        f"SELECT 'user-' || lpad(i::VARCHAR, 12, '0') AS user_ids FROM range({ids}) t(i)",
        "--cohort-id",
        cohort,
        "--json",
    ]


def concurrency_of(home: Path, env: dict[str, str]) -> dict[str, object]:
    """Each run's requests in flight (setting, highest, last), from the run history."""
    listed = subprocess.run(
        [sys.executable, "-m", "cohortsync", "runs", "list", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    shown: dict[str, object] = {}
    for run in json.loads(listed.stdout):
        detail = subprocess.run(
            [sys.executable, "-m", "cohortsync", "runs", "show", run["id"], "--json"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        report = json.loads(detail.stdout).get("report") or {}
        shown[str(run.get("cohort_id"))] = report.get("concurrency")
    return shown


def scenario(name: str, runs: int, args: argparse.Namespace, work: Path) -> Figures:
    """Start ``runs`` exports of one workspace in one home; measure ``args.seconds``."""
    server = Server(args.rate, args.latency)
    home = work / name
    home.mkdir()
    env = {
        **os.environ,
        "COHORTSYNC_HOME": str(home),
        "COHORTSYNC_PARTNER_API_KEY": PARTNER_API_KEY,
    }
    ids = math.ceil(args.rate * args.seconds * 1.3 / runs) * 1000 + 50_000
    processes = [
        subprocess.Popen(
            export_command(server.url, f"{name}-{n}", ids),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(runs)
    ]
    try:
        cohorts = {f"{name}-{n}" for n in range(runs)}
        while not cohorts <= {cohort for _, _, cohort in server.log()}:  # every run sends
            if any(p.poll() is not None for p in processes):
                failed = next(p for p in processes if p.poll() is not None)
                raise SystemExit(f"{name}: a run ended early: {failed.stderr.read()}")  # type: ignore[union-attr]
            time.sleep(0.2)
        start = time.time()
        time.sleep(args.seconds)
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(timeout=120)
        measured = figures(server.log(), start, args.seconds)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
        server.stop()
    shown = concurrency_of(home, env)
    print(
        f"{name}: {runs} run(s), {args.seconds:.0f} s: {measured.rate:.1f} requests/s "
        f"= {100 * measured.rate / args.rate:.1f}% of the {args.rate}/s allowed; "
        f"{measured.throttled} of {measured.requests} answers 429 "
        f"({measured.throttled_pct:.2f}%); busiest second {measured.busiest_window} requests"
    )
    if args.verbose:
        print(f"  per second: {measured.per_second}")
    for cohort, concurrency in sorted(shown.items()):
        sent = measured.per_run.get(cohort, 0)
        print(f"  {cohort}: {sent / args.seconds:.1f} requests/s, in flight {concurrency}")
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=int, default=69, help="requests allowed per second")
    parser.add_argument("--latency", type=float, default=0.1, help="seconds added per answer")
    parser.add_argument("--runs", type=int, default=5, help="concurrent runs of scenario b")
    parser.add_argument("--verbose", action="store_true", help="print each second's count")
    parser.add_argument("--only", choices=("a", "b"), help="run one scenario")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rate-budget-") as tmp:
        work = Path(tmp)
        ok = True
        if args.only in (None, "a"):
            single = scenario("a", 1, args, work)
            ok &= single.rate >= 0.9 * args.rate and single.throttled_pct <= 1
        if args.only in (None, "b"):
            shared = scenario("b", args.runs, args, work)
            ok &= shared.rate <= args.rate and shared.throttled_pct <= 1
        print("targets met" if ok else "targets MISSED")
        sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
