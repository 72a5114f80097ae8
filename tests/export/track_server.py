"""A local Braze ``POST /users/track`` for exact-request tests of attribute delivery.

A real HTTP/1.1 server on 127.0.0.1 in a thread, holding a few profiles, that
follows Braze's documentation of the endpoint
(https://www.braze.com/docs/api/endpoints/user_data/post_user_track/):

- the REST API key in ``Authorization: Bearer``; a wrong one is a 401;
- at most 75 attribute objects per request (a 400 otherwise);
- each object names its user by ``external_id`` or ``user_alias``; with
  ``_update_existing_only`` an unknown user is not created, and the answer
  is still a success carrying a non-fatal error naming the object's index
  (``{"message": "success", "errors": [...]}``);
- ``{"add": [...]}`` and ``{"remove": [...]}`` change an array attribute;
  any other value is set.

It records every request, can be scripted to answer 429/5xx/400/401 and to
delay, and, given a limit, announces ``X-RateLimit-*`` headers and answers
429 beyond it.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from support.loopback_server import LoopbackServer

REST_API_KEY = "rest-test-0123456789abcdef"
UNKNOWN_USER = "no such user and _update_existing_only is true"

Profile = dict[str, Any]


@dataclass
class Request:
    """One request as received, and what it was answered."""

    path: str
    headers: dict[str, str]
    body: Any
    status: int = 0
    started: float = field(default_factory=time.monotonic)


class TrackServer(LoopbackServer):
    """The server, its profiles and its script; see the module docstring."""

    def __init__(self) -> None:
        self.rest_api_key = REST_API_KEY
        # ("external_id", id) or ("alias", label, name) -> custom attributes
        self.profiles: dict[tuple[str, ...], Profile] = {}
        self.requests: list[Request] = []
        self.delay = 0.0
        self.rate_limit: tuple[int, float] | None = None
        self._window = (0.0, 0)
        self._script: deque[tuple[int, str, dict[str, str]]] = deque()
        self._lock = threading.Lock()
        super().__init__(self._handler_class())

    def add_users(self, *external_ids: str) -> None:
        for external_id in external_ids:
            self.profiles[("external_id", external_id)] = {}

    def add_alias_users(self, label: str, *names: str) -> None:
        for name in names:
            self.profiles[("alias", label, name)] = {}

    def script(self, status: int, message: str, *, times: int = 1, **headers: str) -> None:
        """Answer the next ``times`` requests with ``status`` and ``message``."""
        for _ in range(times):
            self._script.append(
                (status, message, {k.replace("_", "-"): v for k, v in headers.items()})
            )

    # -- what the tests look at ------------------------------------------------

    def answered(self) -> list[Request]:
        return [r for r in self.requests if 200 <= r.status < 300]

    def objects(self) -> list[dict[str, Any]]:
        """The attribute objects of every 2xx-answered request, in arrival order."""
        return [item for r in self.answered() for item in r.body["attributes"]]

    def members(self, attribute: str, cohort_id: str) -> set[tuple[str, ...]]:
        """Profiles whose array ``attribute`` holds ``cohort_id``."""
        return {
            key for key, attrs in self.profiles.items() if cohort_id in attrs.get(attribute, [])
        }

    def flagged(self, attribute: str) -> dict[tuple[str, ...], Any]:
        """Profiles that have ``attribute``, and its value."""
        return {key: attrs[attribute] for key, attrs in self.profiles.items() if attribute in attrs}

    # -- the HTTP side ---------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status, payload, headers = server._answer(self.path, dict(self.headers), raw)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def _answer(
        self, path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        request = Request(path, headers, body)
        with self._lock:
            self.requests.append(request)
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            status, payload, extra = self._respond(request)
        request.status = status
        return status, payload, extra

    def _rate_headers(self) -> tuple[dict[str, str], bool]:
        """The rate-limit headers of this answer, and whether the window is exhausted."""
        if self.rate_limit is None:
            return {}, False
        limit, window = self.rate_limit
        start, count = self._window
        now = time.time()
        if now - start >= window:
            start, count = now, 0
        self._window = (start, count + 1)
        headers = {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(max(0, limit - count - 1)),
            "X-RateLimit-Reset": f"{start + window:.3f}",
        }
        if count + 1 > limit:
            return {**headers, "Retry-After": f"{start + window - now:.3f}"}, True
        return headers, False

    def _respond(self, request: Request) -> tuple[int, dict[str, Any], dict[str, str]]:
        headers, exhausted = self._rate_headers()
        if exhausted:
            return 429, {"message": "Rate limited"}, headers
        if self._script:
            status, message, scripted = self._script.popleft()
            return status, {"message": message}, {**headers, **scripted}
        if request.path != "/users/track":
            return 404, {"message": f"no route {request.path}"}, headers
        if request.headers.get("Authorization") != f"Bearer {self.rest_api_key}":
            return 401, {"message": "Invalid API key"}, headers
        body = request.body
        items = body.get("attributes") if isinstance(body, dict) else None
        if not isinstance(items, list):
            return 400, {"message": "attributes must be an array"}, headers
        if len(items) > 75:
            return 400, {"message": "Too many attributes objects: at most 75"}, headers
        errors = []
        for index, item in enumerate(items):
            key = _key(item)
            if key is None:
                errors.append(
                    {
                        "type": "'external_id' or 'user_alias' is required",
                        "input_array": "attributes",
                        "index": index,
                    }
                )
                continue
            if key not in self.profiles:
                if item.get("_update_existing_only", False):
                    errors.append(
                        {"type": UNKNOWN_USER, "input_array": "attributes", "index": index}
                    )
                    continue
                self.profiles[key] = {}
            _apply(self.profiles[key], item)
        answer: dict[str, Any] = {
            "message": "success",
            "attributes_processed": len(items) - len(errors),
        }
        if errors:
            answer["errors"] = errors
        return 201, answer, headers


def _key(item: Any) -> tuple[str, ...] | None:
    if not isinstance(item, dict):
        return None
    if "external_id" in item:
        return ("external_id", item["external_id"])
    alias = item.get("user_alias")
    if isinstance(alias, dict):
        return ("alias", alias["alias_label"], alias["alias_name"])
    return None


def _apply(profile: Profile, item: dict[str, Any]) -> None:
    for name, value in item.items():
        if name in ("external_id", "user_alias", "_update_existing_only"):
            continue
        if isinstance(value, dict) and ("add" in value or "remove" in value):
            current = list(profile.get(name, []))
            for element in value.get("add", []):
                if element not in current:
                    current.append(element)
            current = [e for e in current if e not in value.get("remove", [])]
            profile[name] = current
        else:
            profile[name] = value
