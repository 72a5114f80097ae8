"""Export benchmark: ``cohortsync export`` against the hand-written script.

For each size (3,000,000 and 10,000,000 distinct user ids by default; change
with ``--ids``), builds a DuckDB table, starts a minimal partner API server
in its own process that answers ``201 {"message": "success"}`` at once, and
runs both exporters in subprocesses, measuring wall time and peak RSS (the
child's own ``VmHWM``, polled from ``/proc/<pid>/status``; not ``ru_maxrss``,
which on Linux starts from the parent's resident size at fork). Prints
identifiers per second and peak memory side by side. Targets at 3M: at least
twice the hand-written speed and at most half its peak memory; at 10M: under
300 MB.

    python bench/export.py                     # 3M and 10M
    python bench/export.py --repeat 3          # median of 3 interleaved runs each
    python bench/export.py --ids 3000000 --skip-handwritten-above 5000000
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from measured import run_measured

HERE = Path(__file__).resolve().parent
PARTNER_API_KEY = "bench-partner-key"
DATA_IMPORT_KEY = "bench-data-import-key"
_BODY = b'{"message":"success"}'
RESPONSE = (
    b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
    b"Content-Length: " + str(len(_BODY)).encode() + b"\r\n\r\n" + _BODY
)


class _InstantPartner(asyncio.Protocol):
    """Reads one HTTP/1.1 request at a time (Content-Length bodies) and answers 201."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = bytearray()
        self.requests = 0

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).lower()
            start = head.find(b"content-length:")
            length = 0
            if start >= 0:
                line_end = head.find(b"\r\n", start)
                length = int(head[start + 15 : line_end if line_end > 0 else None])
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            del self.buffer[:total]
            self.transport.write(RESPONSE)  # type: ignore[attr-defined]


def _serve(port: int) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_InstantPartner, "127.0.0.1", port, backlog=256)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Measure:
    name: str
    ids: int
    seconds: float
    peak_mb: float
    returncode: int

    @property
    def rate(self) -> float:
        return self.ids / self.seconds


def measure(name: str, command: list[str], env: dict[str, str], ids: int) -> Measure:
    """Run ``command``; its wall time and the peak memory of that process alone."""
    done = run_measured(command, env)
    return Measure(name, ids, done.seconds, done.peak_mb, done.returncode)


BUILD_TABLE = """
import sys, duckdb
with duckdb.connect(sys.argv[1]) as connection:
    connection.execute(
        "CREATE TABLE ids AS SELECT 'user-' || lpad(i::VARCHAR, 12, '0') AS user_ids "
        f"FROM range({int(sys.argv[2])}) t(i) ORDER BY hash(i)"
    )
"""


def median(measures: list[Measure]) -> Measure:
    """The run of median duration (its own peak memory kept with it)."""
    return sorted(measures, key=lambda m: m.seconds)[len(measures) // 2]


def build_table(path: Path, ids: int) -> None:
    """Build the table in a child process.

    This process must stay small: Linux carries a parent's resident size at
    fork into the child's ``ru_maxrss``, which would inflate every figure.
    """
    subprocess.run([sys.executable, "-c", BUILD_TABLE, str(path), str(ids)], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ids", type=int, action="append", help="ids per run (repeatable)")
    parser.add_argument("--threads", type=int, default=4, help="cohortsync export --threads")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of each exporter per size; the median is kept"
    )
    parser.add_argument(
        "--skip-handwritten-above",
        type=int,
        default=20_000_000,
        help="do not run the hand-written script above this many ids",
    )
    args = parser.parse_args()
    sizes = args.ids or [3_000_000, 10_000_000]

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
                    "COHORTSYNC_PARTNER_API_KEY": PARTNER_API_KEY,
                    "PARTNER_API_KEY": PARTNER_API_KEY,
                    "DATA_IMPORT_KEY": DATA_IMPORT_KEY,
                }
                cli = [sys.executable, "-m", "cohortsync", "export", "--table", "ids"]
                cli += ["--endpoint", endpoint, "--data-import-key", DATA_IMPORT_KEY]
                cli += ["--cohort-id", f"bench-{ids}", "--threads", str(args.threads), "--json"]
                script = [sys.executable, str(HERE / "handwritten_export.py")]
                script += ["--db", str(home / "warehouse.duckdb"), "--table", "ids"]
                script += ["--endpoint", endpoint, "--cohort-id", f"hand-{ids}"]
                ours, theirs = [], []
                for _ in range(args.repeat):  # interleaved, so both see the same machine load
                    ours.append(measure("cohortsync export", cli, env, ids))
                    if ids <= args.skip_handwritten_above:
                        theirs.append(measure("hand-written", script, env, ids))
                results.append(median(ours))
                if theirs:
                    results.append(median(theirs))
    finally:
        server.terminate()
        server.join()

    print(f"\n{'exporter':<20}{'ids':>12}{'seconds':>10}{'ids/s':>12}{'peak MB':>10}{'exit':>6}")
    for result in results:
        print(
            f"{result.name:<20}{result.ids:>12,}{result.seconds:>10.2f}"
            f"{result.rate:>12,.0f}{result.peak_mb:>10.0f}{result.returncode:>6}"
        )
    for ids in sizes:
        ours = next(r for r in results if r.ids == ids and r.name == "cohortsync export")
        hand = next((r for r in results if r.ids == ids and r.name == "hand-written"), None)
        if hand is not None:
            print(
                f"{ids:,} ids: cohortsync is {ours.rate / hand.rate:.2f}x the speed "
                f"(target >= 2) at {ours.peak_mb / hand.peak_mb:.2f}x the peak memory "
                f"(target <= 0.5)"
            )
        if ids >= 10_000_000:
            verdict = "met" if ours.peak_mb < 300 else "missed"
            print(
                f"{ids:,} ids: cohortsync peak {ours.peak_mb:.0f} MB (target < 300 MB: {verdict})"
            )


if __name__ == "__main__":
    main()
