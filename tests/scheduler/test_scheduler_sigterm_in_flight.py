"""SIGTERM while a batch is in flight: the scheduler lets it finish and records it.

A proxy between the export and the receiving service forwards every request at
once but holds each batch's answer for a while, so the scheduler gets SIGTERM
while a batch has reached the service and its answer has not reached the
export. The batch must still be acknowledged in the catalog: what the service
received and what the run recorded are the same batches.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import sys as _sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import sqlalchemy as sa

_sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "queries"))

from workbench_helpers import AUTH, make_workbench

from cohortsync.braze.sandbox import running_sandbox
from cohortsync.catalog import leases, schedules
from cohortsync.catalog import runs as run_history
from cohortsync.catalog.db import open_catalog
from cohortsync.queries import QueryExport, save_query
from cohortsync.settings import Settings
from support import wait_for

HOLD_S = 1.5  # how long the proxy holds each batch's answer
SKIPPED_HEADERS = {"host", "connection", "content-length", "transfer-encoding"}


class SlowAnswers:
    """A proxy to ``upstream``: batches reach it at once, their answers come ``HOLD_S`` later."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.lock = threading.Lock()
        self.delivered = 0  # batches the service answered 2xx
        self.holding = threading.Event()  # set while a delivered batch's answer is held back
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in SKIPPED_HEADERS
                }
                request = urllib.request.Request(
                    proxy.upstream + self.path, data=body, headers=headers, method="POST"
                )
                try:
                    with urllib.request.urlopen(request, timeout=30) as response:
                        status, answer, kept = response.status, response.read(), response.headers
                except urllib.error.HTTPError as error:
                    status, answer, kept = error.code, error.read(), error.headers
                if self.path.endswith("/cohorts/users") and 200 <= status < 300:
                    with proxy.lock:
                        proxy.delivered += 1
                    proxy.holding.set()
                    time.sleep(HOLD_S)  # in the service; the answer is on its way
                    proxy.holding.clear()
                self.send_response(status)
                for key, value in kept.items():
                    if key.lower() not in SKIPPED_HEADERS:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    @contextmanager
    def serving(self) -> Iterator[SlowAnswers]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()


# The job is due at once (anchored two years back) and never again while the test runs.
ONCE_A_YEAR = "0 0 1 1 *"


def job_runs(catalog: sa.Engine, job: str) -> list[run_history.RunRecord]:
    return [r for r in run_history.list_runs(catalog, limit=50) if r.job.get("job") == job]


def test_sigterm_with_a_batch_in_flight_leaves_nothing_unacknowledged(
    home: Path, tmp_path: Path
) -> None:
    with running_sandbox(f"sqlite:///{tmp_path / 'braze.db'}") as sandbox:
        proxy = SlowAnswers(sandbox.base_url)
        with proxy.serving():
            sandbox.base_url = proxy.url  # the saved authentication points at the proxy
            bench = make_workbench(home, sandbox)
            bench.add_customers(20_000)
            # Due now, and not again for a year: a run that crosses a minute is not due twice.
            two_years_ago = datetime.now(UTC) - timedelta(days=730)
            export = QueryExport(auth=AUTH, cohort_id="everyone", threads=1)
            everyone = "SELECT external_id AS user_ids FROM customers"
            save_query("a_export", everyone, export=export, schedule=ONCE_A_YEAR, now=two_years_ago)
            catalog = open_catalog(Settings().catalog_path)

            process = subprocess.Popen(
                [sys.executable, "-m", "cohortsync", "scheduler", "--poll-interval", "0.2",
                 "--max-parallel", "1", "--json"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ),
            )  # fmt: skip
            try:
                wait_for(
                    lambda: proxy.delivered >= 3 and proxy.holding.is_set(),
                    60,
                    what="the third batch in the service, its answer not yet back",
                    interval=0.01,
                    process=process,
                )
                in_flight = proxy.delivered
                process.send_signal(signal.SIGTERM)
                stdout, stderr = process.communicate(timeout=30)
            finally:
                if process.poll() is None:
                    process.kill()
                    process.communicate()

        assert process.returncode == 0, stderr
        assert "received SIGTERM" in stderr
        [line] = [orjson.loads(text) for text in stdout.splitlines()]
        assert (line["job"], line["status"]) == ("query:a_export", "interrupted")
        [record] = job_runs(catalog, "query:a_export")
        assert record.status == "interrupted"
        acknowledged = run_history.acknowledged_batches(catalog, record.id)
        # no new batch after the signal; the one in flight finished and was recorded
        assert proxy.delivered == in_flight
        assert len(acknowledged) == proxy.delivered < 20
        # the receiving side holds exactly the acknowledged batches (1000 users each)
        assert len(bench.members("everyone")) == 1000 * len(acknowledged)
        assert leases.get_lease(catalog, "query:a_export") is None
        stored = schedules.get_schedule(catalog, "query", "a_export")
        assert stored is not None and stored.last_slot is None  # handed back: due again
        catalog.dispose()
