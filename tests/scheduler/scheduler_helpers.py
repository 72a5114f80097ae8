"""Helpers of the scheduler tests: a controlled clock, the probe job kind, a webhook receiver."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cohortsync.errors import SourceError
from cohortsync.scheduler import JobContext, JobResult


class Clock:
    """Time that moves only when the test says so."""

    def __init__(self, start: str) -> None:
        self.now = datetime.fromisoformat(start).replace(tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def set(self, moment: str) -> None:
        self.now = datetime.fromisoformat(moment).replace(tzinfo=UTC)

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Probe:
    """Calls of the probe job kind: who ran, and the most that ran at once."""

    calls: list[str] = field(default_factory=list)
    active: dict[str, int] = field(default_factory=dict)
    max_active: dict[str, int] = field(default_factory=dict)
    max_total: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    release: threading.Event = field(default_factory=threading.Event)

    def __call__(self, context: JobContext) -> JobResult:
        with self.lock:
            self.calls.append(context.name)
            self.active[context.name] = self.active.get(context.name, 0) + 1
            self.max_active[context.name] = max(
                self.max_active.get(context.name, 0), self.active[context.name]
            )
            self.max_total = max(self.max_total, sum(self.active.values()))
        try:
            if context.name.startswith("slow"):
                # Runs until the test releases it (or the scheduler interrupts it).
                while not self.release.wait(0.01):
                    pass
            if context.name.startswith("fail"):
                raise SourceError(f"the query of {context.name} failed: table missing")
            time.sleep(0.05)  # long enough for overlapping runs to be seen
            return JobResult("succeeded", None, None, {"job": context.job})
        finally:
            with self.lock:
                self.active[context.name] -= 1

    def count(self, name: str) -> int:
        return self.calls.count(name)


class WebhookReceiver:
    """A real HTTP server on 127.0.0.1 that keeps every JSON body POSTed to it."""

    def __init__(self, status: int = 200, delay: float = 0.0) -> None:
        import json
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        receiver = self
        self.status = status
        self.bodies: list[dict[str, object]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                time.sleep(delay)
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/cohortsync"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
