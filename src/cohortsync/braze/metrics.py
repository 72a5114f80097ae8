"""Prometheus metrics of the receiving service, served at ``GET /metrics``.

Every app has its own :class:`ServiceMetrics` over its own
``CollectorRegistry`` (never the process-wide default one), so several
apps in one process (the test suite, a program embedding two sandboxes)
count apart. What is counted, and where:

* every request, by route *template* (``/partners/{partner}/cohorts/users``,
  never the raw path, so the series stay few) with its method and status,
  and its latency: :class:`MetricsMiddleware`, a plain ASGI layer around
  the app;
* identifiers received, matched and dropped by kind, and cohort members
  added and removed: the partner route hands each import's
  :class:`~cohortsync.braze.matching.ChangeReport` to
  :meth:`ServiceMetrics.count_import` once its write has committed;
* requests refused by the rate limit (429): the dependency that charges the
  budget (:mod:`.dependencies`).

The request path is hot (``/users/track`` is benchmarked): the middleware
does one clock read at each end and two increments on label children
looked up once per (route, method, status) and kept in a dict.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import choose_encoder
from starlette.requests import Request
from starlette.responses import Response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

METRICS_PATH = "/metrics"
UNMATCHED = "unmatched"
"""The route label of a request no route answered (404, 405): raw paths are never labels."""

# Any other method a client sends is labelled OTHER_METHOD: methods are the client's to write.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "other"

# The store's identifier kinds under the names the partner API gives them.
KIND_LABELS = {"external_id": "user_ids", "alias": "aliases", "device_id": "device_ids"}

# Latency buckets in seconds, from a cached read to a 1,000-identifier import on a busy store.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServiceMetrics:
    """The service's metrics, registered in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "cohortsync_braze_requests",
            "Requests answered, by route template, method and status.",
            ("route", "method", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "cohortsync_braze_request_duration_seconds",
            "Time from a request's arrival to the end of its answer, by route template.",
            ("route", "method"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.received = Counter(
            "cohortsync_braze_identifiers_received",
            "Identifiers received by partner cohort imports, by kind.",
            ("kind",),
            registry=self.registry,
        )
        self.matched = Counter(
            "cohortsync_braze_identifiers_matched",
            "Identifiers received that found a user of the workspace, by kind.",
            ("kind",),
            registry=self.registry,
        )
        self.dropped = Counter(
            "cohortsync_braze_identifiers_dropped",
            "Identifiers received that matched nobody (unknown, or a device id of an "
            "identified user), by kind.",
            ("kind",),
            registry=self.registry,
        )
        self.members = Counter(
            "cohortsync_braze_cohort_members_changed",
            "Cohort memberships the imports changed: added or removed.",
            ("change",),
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "cohortsync_braze_rate_limited",
            "Requests refused with 429 by the rate limit, by API (partner or rest).",
            ("api",),
            registry=self.registry,
        )
        # Every label value is known in advance: the series exist (at 0) from the start.
        for kind in KIND_LABELS.values():
            for counter in (self.received, self.matched, self.dropped):
                counter.labels(kind)
        for change in ("added", "removed"):
            self.members.labels(change)
        for api in ("partner", "rest"):
            self.rate_limited.labels(api)
        self._answered: dict[tuple[str, str, int], Any] = {}
        self._timed: dict[tuple[str, str], Any] = {}

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency (label children looked up once)."""
        key = (route, method, status)
        answered = self._answered.get(key)
        if answered is None:
            answered = self._answered[key] = self.requests.labels(route, method, str(status))
        answered.inc()
        timed = self._timed.get(key[:2])
        if timed is None:
            timed = self._timed[key[:2]] = self.latency.labels(route, method)
        timed.observe(seconds)

    def count_import(self, counts: dict[str, tuple[int, int]], added: int, removed: int) -> None:
        """One committed cohort import: ``counts`` maps a store kind to (received, matched)."""
        for kind, (received, matched) in counts.items():
            label = KIND_LABELS[kind]
            if received:
                self.received.labels(label).inc(received)
                self.dropped.labels(label).inc(received - matched)
            if matched:
                self.matched.labels(label).inc(matched)
        if added:
            self.members.labels("added").inc(added)
        if removed:
            self.members.labels("removed").inc(removed)

    def count_rate_limited(self, api: str) -> None:
        self.rate_limited.labels(api).inc()

    def exposition(self, accept: str | None = None) -> tuple[bytes, str]:
        """Every metric, and its content type: the Prometheus text format, or OpenMetrics
        when the ``Accept`` header asks for it (as a Prometheus server does)."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


def route_label(scope: Scope, root_path: str = "") -> str:
    """The template of the route that answered, with its mount's prefix, else UNMATCHED.

    FastAPI's routes put themselves in ``scope["route"]``; a mount that answered
    by itself (static files, or no route of the mounted app matched) leaves
    none but has moved ``root_path`` (from ``root_path`` at the start) to its
    own path: that is ``PREFIX/*``.
    """
    path = getattr(scope.get("route"), "path", None)
    mounted = scope.get("root_path", "")
    if path is not None:
        return f"{mounted}{path}"
    if mounted != root_path:
        return f"{mounted}/*"
    return UNMATCHED


class MetricsMiddleware:
    """Counts and times every HTTP request of the app it wraps."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        root_path = scope.get("root_path", "")
        status = 500  # what the client gets when the app raises before answering

        async def send_counting(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_counting)
        finally:
            method = scope["method"]
            self.metrics.observe_request(
                route_label(scope, root_path),
                method if method in METHODS else OTHER_METHOD,
                status,
                time.perf_counter() - started,
            )


def metrics_endpoint(metrics: ServiceMetrics) -> Callable[[Request], Awaitable[Response]]:
    """The ``GET /metrics`` handler over ``metrics``."""

    async def serve_metrics(request: Request) -> Response:
        body, content_type = metrics.exposition(request.headers.get("accept"))
        return Response(body, headers={"Content-Type": content_type})

    return serve_metrics
