"""A faithful local Braze partner cohort import API, for exact-request tests.

A real HTTP/1.1 server on 127.0.0.1 in a thread (one thread per connection,
so concurrency is real and measurable). It validates bodies the way Braze
does (spec section 2: keys, ``cohort_id``, ``name``, ``created_at``, the
shape of ``cohort_changes``, at most 1,000 identifiers), records every
request, and can be scripted to answer 429/5xx/423/400/401, to delay, and to
announce and enforce a rate limit with ``X-RateLimit-*`` headers.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from cohortsync.export.spec import Destination, ExportSpec, Source
from support.loopback_server import LoopbackServer

PARTNER_API_KEY = "pk-test-0123456789abcdef"
CLIENT_SECRET = "dik-test-fedcba9876543210"


@dataclass
class Recorded:
    """One request as received, and what it was answered."""

    path: str
    body: Any
    started: float  # monotonic
    finished: float = 0.0
    status: int = 0
    wall: float = field(default_factory=time.time)  # wall clock at arrival

    @property
    def kind(self) -> str:
        return "users" if self.path.endswith("/cohorts/users") else "cohorts"


@dataclass
class Scripted:
    status: int
    message: str
    headers: dict[str, str] = field(default_factory=dict)


class PartnerServer(LoopbackServer):
    """The server and its script; see the module docstring."""

    def __init__(self, *, partner: str = "treasuredata", port: int = 0) -> None:
        self.partner = partner
        self.partner_api_key = PARTNER_API_KEY
        self.client_secret = CLIENT_SECRET
        self.requests: list[Recorded] = []
        self.delay = 0.0
        self.in_flight = 0
        self.max_in_flight = 0
        self.rate_limit: tuple[int, float] | None = None  # (requests, window seconds)
        self.wall_clock = time.time  # the rate limit's clock; tests may give a fake one
        self._window_start = 0.0
        self._window_count = 0
        self._script: dict[str, deque[Scripted]] = {"cohorts": deque(), "users": deque()}
        self._lock = threading.Lock()
        super().__init__(self._handler_class(), port=port)

    def script(
        self, which: str, status: int, message: str, *, times: int = 1, **headers: str
    ) -> None:
        """Answer the next ``times`` requests to ``which`` ("cohorts" or "users") so."""
        headers = {name.replace("_", "-"): value for name, value in headers.items()}
        for _ in range(times):
            self._script[which].append(Scripted(status, message, headers))

    # -- what the tests look at ------------------------------------------------

    def users_requests(self, *, answered: bool = True) -> list[Recorded]:
        """``cohorts/users`` requests; only the 2xx-answered ones unless ``answered=False``."""
        return [
            r
            for r in self.requests
            if r.kind == "users" and (not answered or 200 <= r.status < 300)
        ]

    def identifiers(self) -> Iterator[tuple[str, str, bool]]:
        """Identifiers of the 2xx-answered ``cohorts/users`` requests: (kind, value, remove)."""
        for request in self.users_requests():
            for change in request.body["cohort_changes"]:
                remove = change.get("should_remove", False)
                for value in change.get("user_ids", []):
                    yield "user_ids", value, remove
                for value in change.get("device_ids", []):
                    yield "device_ids", value, remove
                for alias in change.get("aliases", []):
                    yield f"alias:{alias['alias_label']}", alias["alias_name"], remove

    # -- the HTTP side ---------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in two writes

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                status, payload, headers = server._answer(self.path, raw)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def _answer(self, path: str, raw: bytes) -> tuple[int, dict[str, Any], dict[str, str]]:
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        record = Recorded(path=path, body=body, started=time.monotonic())
        with self._lock:
            self.requests.append(record)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay and record.kind == "users":
                time.sleep(self.delay)
            status, payload, headers = self._respond(record)
        finally:
            with self._lock:
                self.in_flight -= 1
        record.status = status
        record.finished = time.monotonic()
        return status, payload, headers

    def _respond(self, record: Recorded) -> tuple[int, dict[str, Any], dict[str, str]]:
        headers: dict[str, str] = {}
        with self._lock:
            if self.rate_limit is not None:
                limit, window = self.rate_limit
                now = self.wall_clock()
                if now - self._window_start >= window:
                    self._window_start, self._window_count = now, 0
                self._window_count += 1
                reset = self._window_start + window
                headers = {
                    "X-RateLimit-Limit": str(limit),
                    "X-RateLimit-Remaining": str(max(0, limit - self._window_count)),
                    "X-RateLimit-Reset": f"{reset:.3f}",
                }
                if self._window_count > limit:
                    retry = str(max(0.0, reset - now))
                    return 429, {"message": "Rate limited"}, {**headers, "Retry-After": retry}
            queue = self._script[record.kind]
            scripted = queue.popleft() if queue else None
        if scripted is not None:
            return scripted.status, {"message": scripted.message}, {**headers, **scripted.headers}
        error = self._validate(record)
        if error is not None:
            return error[0], {"message": error[1]}, headers
        return 201, {"message": "success"}, headers

    def _validate(self, record: Recorded) -> tuple[int, str] | None:
        prefix = f"/partners/{self.partner}/"
        if record.path not in (prefix + "cohorts", prefix + "cohorts/users"):
            return 404, f"no route {record.path}"
        body = record.body
        if not isinstance(body, dict):
            return 400, "body must be a JSON object"
        if body.get("partner_api_key") != self.partner_api_key:
            return 401, "Invalid Partner API key"
        if body.get("client_secret") != self.client_secret:
            return (
                401,
                f"Partner not enabled for client with client secret: {body.get('client_secret')}",
            )
        if not isinstance(body.get("cohort_id"), str) or not body["cohort_id"]:
            return 400, "cohort_id must be a valid string"
        if record.kind == "cohorts":
            if not isinstance(body.get("name"), str) or not body["name"]:
                return 400, "name must be a non-empty string"
            try:
                dt.datetime.fromisoformat(str(body.get("created_at")))
            except ValueError:
                return 400, "created_at must be a valid time as an ISO-8601 string"
            return None
        return _validate_changes(body.get("cohort_changes"))


CHANGES_SHAPE = (
    "cohort_changes must be an array of objects each with key user_ids and/or device_ids "
    "mapping to an array of strings, or an aliases object"
)


def _validate_changes(changes: Any) -> tuple[int, str] | None:
    if not isinstance(changes, list):
        return 400, CHANGES_SHAPE
    total = 0
    for change in changes:
        if not isinstance(change, dict) or not set(change) <= {
            "user_ids",
            "device_ids",
            "aliases",
            "should_remove",
        }:
            return 400, CHANGES_SHAPE
        for key in ("user_ids", "device_ids"):
            values = change.get(key, [])
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                return 400, CHANGES_SHAPE
            total += len(values)
        aliases = change.get("aliases", [])
        if not isinstance(aliases, list) or not all(
            isinstance(a, dict)
            and set(a) == {"alias_name", "alias_label"}
            and all(isinstance(v, str) for v in a.values())
            for a in aliases
        ):
            return 400, CHANGES_SHAPE
        total += len(aliases)
        if not isinstance(change.get("should_remove", False), bool):
            return 400, CHANGES_SHAPE
    if total > 1000:
        return 400, "Only 1,000 user_ids, device_ids, and aliases are allowed per request"
    return None


def spec_for(partner: PartnerServer, source: Source, **extra: object) -> ExportSpec:
    """An export of ``source`` to cohort ``c`` of this partner server, with ``extra`` settings."""
    destination = Destination(
        endpoint=partner.url,
        data_import_key=CLIENT_SECRET,
        partner_api_key=partner.partner_api_key,
    )
    return ExportSpec(source=source, destination=destination, cohort_id="c", **extra)  # type: ignore[arg-type]
