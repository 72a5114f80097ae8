"""A real webhook receiver on 127.0.0.1 for the alert tests.

It records every POST (path, headers, JSON body, arrival time) and answers
as scripted: a status (200 by default, 500 to see the retries), or a hang of
some seconds before answering (to see the timeout).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from support.loopback_server import LoopbackServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any
    at: float


class Receiver(LoopbackServer):
    """The server and what it received; ``status`` and ``hang`` script its answers."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.status = 200
        self.hang = 0.0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        super().__init__(self._handler())

    @property
    def url(self) -> str:
        return f"{super().url}/hooks/t0ken-secret"

    def stop(self) -> None:
        self._stopping.set()
        super().stop()

    @property
    def bodies(self) -> list[Any]:
        with self._lock:
            return [item.body for item in self.received]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.received.append(
                        Received(self.path, dict(self.headers), json.loads(raw), time.monotonic())
                    )
                if receiver.hang:
                    receiver._stopping.wait(receiver.hang)
                body = b'{"ok": true}'
                try:
                    self.send_response(receiver.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up waiting

        return Handler
