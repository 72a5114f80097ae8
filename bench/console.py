"""Console benchmark: every list page and run page under 200 ms with a full catalog.

A fresh home's catalog is filled as a busy installation's would be: one
saved authentication (through ``catalog.auths.save_auth``, key encrypted),
1,000 saved queries (half of them scheduled, each with its export), 10
parents, 100 segments and 1,000 activations (rows built from the same
definitions ``apply`` saves), and 10,000 runs over 90 days (40% of saved
queries, 40% of activations, 20% ad-hoc exports; mostly succeeded, some
failed, interrupted or still running), each with the public spec and the
``ExportReport.to_dict()`` a real run stores, and the run shown on its page
with 250 acknowledged batches. The rows go in with bulk inserts: seeding
takes seconds, not the hours 10,000 real exports would.

Then the real console serves that home in this process
(:func:`cohortsync.console.serving.serve_in_background`), a client logs in
with ``COHORTSYNC_CONSOLE_PASSWORD`` as a person does (``POST /login``) and
GETs each page ``--requests`` times after two warm-up requests. The figure is
the server's own time for the request, from the ``Server-Timing: app;dur=``
header the web layer adds (routes, library calls and rendering; not the
client or the network), as median and p95 per page against the target.
"client ms" is the wall time the client saw, for reference only: it adds
the client's own work and, on loopback, the TCP delayed acknowledgement of
small responses (about 40 ms).

A page that answers FastAPI's own 404 (no route) is "not built yet", not a
miss. The activation page's address is read from the Audience Studio page's
links (the first that names the activation), else a few likely addresses.

    .venv/bin/python bench/console.py [--queries 1000] [--activations 1000]
        [--runs 10000] [--requests 30] [--target-ms 200]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import sqlalchemy as sa

from cohortsync.catalog import audiences
from cohortsync.catalog.auths import save_auth
from cohortsync.catalog.db import open_catalog
from cohortsync.catalog.queries import saved_queries
from cohortsync.catalog.runs import cohort_key, key_hash, run_batches, runs
from cohortsync.catalog.schedules import schedules
from cohortsync.console.accounts import CONSOLE_USER, PASSWORD_ENV
from cohortsync.console.serving import serve_in_background
from cohortsync.definitions import Activation, Authentication, Parent, QueryExport, Segment
from cohortsync.export.report import ExportReport
from cohortsync.export.spec import Destination, ExportSpec, MirrorOptions, Source
from cohortsync.settings import Settings

TARGET_MS = 200.0
PASSWORD = "bench console password"
AUTH = "braze-prod"
ENDPOINT = "https://rest.iad-01.braze.com"
DATA_IMPORT_KEY = "bench-data-import-key-0123456789"
PARENTS = 10
SEGMENTS = 100
BATCHES_OF_SHOWN_RUN = 250
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


@dataclass
class Load:
    queries: int
    activations: int
    runs: int

    def query(self, number: int) -> str:
        return f"q{number:04d}"

    def activation(self, number: int) -> str:
        return f"a{number:04d}"


# --- seeding --------------------------------------------------------------------------


def seed(settings: Settings, load: Load, rng: random.Random) -> str:
    """Fill the home's catalog; returns the id of a succeeded run of ``query:q0001``."""
    catalog = open_catalog(settings.catalog_path)
    try:
        save_auth(
            catalog,
            settings,
            Authentication(name=AUTH, endpoint=ENDPOINT, data_import_key=DATA_IMPORT_KEY),
        )
        with catalog.begin() as conn:
            seed_queries(conn, load)
            seed_audience(conn, load)
            shown = seed_runs(conn, load, rng)
            conn.execute(
                run_batches.insert(),
                [
                    {"run_id": shown, "batch_number": number, "count": 1000}
                    for number in range(BATCHES_OF_SHOWN_RUN)
                ],
            )
    finally:
        catalog.dispose()
    return shown


def seed_queries(conn: sa.Connection, load: Load) -> None:
    rows, scheduled = [], []
    for number in range(1, load.queries + 1):
        name = load.query(number)
        export = QueryExport(
            auth=AUTH,
            cohort_id=f"cohort_{name}",
            cohort_name=f"Customers of query {name}",
            operation="mirror" if number % 3 == 0 else "add",
            alias_column="email" if number % 4 == 0 else None,
        )
        rows.append(
            {
                "name": name,
                "sql": f"SELECT external_id AS user_ids, email FROM customers "
                f"WHERE segment_id = {number} AND last_seen > now() - INTERVAL 30 DAY",
                "warehouse_url": None,
                "export": orjson.dumps(export.model_dump(), option=orjson.OPT_SORT_KEYS).decode(),
                "created_at": NOW - dt.timedelta(days=120),
                "updated_at": NOW - dt.timedelta(days=number % 60),
            }
        )
        if number % 2 == 1:
            scheduled.append(schedule_row("query", name, number))
    conn.execute(saved_queries.insert(), rows)
    conn.execute(schedules.insert(), scheduled)


def schedule_row(kind: str, name: str, number: int) -> dict[str, Any]:
    return {
        "job": f"{kind}:{name}",
        "kind": kind,
        "name": name,
        "cron": f"{number % 60} {number % 24} * * *",
        "timezone": "Europe/Paris" if number % 5 == 0 else "UTC",
        "anchor": (NOW - dt.timedelta(days=90)).replace(tzinfo=None),
        "last_slot": (NOW - dt.timedelta(hours=number % 24)).replace(tzinfo=None),
        "last_run_id": None,
        "last_status": "succeeded",
        "last_error": None,
        "last_finished_at": (NOW - dt.timedelta(hours=number % 24)).replace(tzinfo=None),
    }


def seed_audience(conn: sa.Connection, load: Load) -> None:
    stamps = {"created_at": NOW - dt.timedelta(days=100), "updated_at": NOW - dt.timedelta(days=3)}
    parents = [
        Parent(name=f"customers{n}", table=f"customers_{n}", key="customer_id")
        for n in range(PARENTS)
    ]
    segments = [
        Segment(
            name=f"s{n:03d}",
            parent=f"customers{n % PARENTS}",
            rules={
                "and": [
                    {"column": "country", "op": "in", "value": ["FR", "BE", "DE"]},
                    {"column": "age", "op": "between", "value": [18 + n % 20, 65]},
                    {"not": {"column": "email", "op": "is null"}},
                ]
            },
            description=f"Segment {n}",
        )
        for n in range(SEGMENTS)
    ]
    activations = [
        Activation(
            name=load.activation(n),
            segment=f"s{n % SEGMENTS:03d}",
            auth=AUTH,
            cohort_id=f"cohort_{load.activation(n)}",
            operation="mirror" if n % 2 == 0 else "add",
            alias_column="email" if n % 3 == 0 else None,
            mapping=[
                {"attribute": "customer_id", "output": "user_ids"},
                *([{"attribute": "email", "output": "email"}] if n % 3 == 0 else []),
            ],
            schedule="0 6 * * *" if n % 2 == 0 else None,
        )
        for n in range(1, load.activations + 1)
    ]
    for kind, table, definitions in (
        (audiences.SavedParent, audiences.parents, parents),
        (audiences.SavedSegment, audiences.segments, segments),
        (audiences.SavedActivation, audiences.activations, activations),
    ):
        conn.execute(
            table.insert(), [{**audiences.columns(d, kind), **stamps} for d in definitions]
        )
    conn.execute(
        schedules.insert(),
        [
            schedule_row("activation", a.name, n)
            for n, a in enumerate(activations, start=1)
            if a.schedule
        ],
    )


def seed_runs(conn: sa.Connection, load: Load, rng: random.Random) -> str:
    """``load.runs`` runs over the last 90 days; q0001 gets 200 of them (its charts)."""
    start = NOW - dt.timedelta(days=90)
    step = dt.timedelta(days=90) / load.runs
    rows = []
    shown = ""
    for number in range(load.runs):
        started = start + step * number
        draw = rng.random()
        if number % 50 == 0:
            job: str | None = "query:q0001"
        elif draw < 0.4:
            job = f"query:{load.query(rng.randint(1, load.queries))}"
        elif draw < 0.8:
            job = f"activation:{load.activation(rng.randint(1, load.activations))}"
        else:
            job = None
        status = rng.choices(
            ["succeeded", "failed", "interrupted", "running"], weights=[90, 6, 3, 1]
        )[0]
        if number > load.runs - 5:
            status = "succeeded"  # the latest run of q0001 below is a finished one
        row = run_row(started, number, job, status, rng)
        if job == "query:q0001" and status == "succeeded":
            shown = row["id"]
        rows.append(row)
    conn.execute(runs.insert(), rows)
    return shown


def run_row(
    started: dt.datetime, number: int, job: str | None, status: str, rng: random.Random
) -> dict[str, Any]:
    cohort_id = f"cohort_{job.split(':', 1)[1]}" if job else f"adhoc_{number % 40}"
    operation = rng.choice(["add", "add", "mirror", "remove"])
    spec = ExportSpec(
        source=Source(sql="SELECT external_id AS user_ids, email FROM customers WHERE vip"),
        destination=Destination(
            endpoint=ENDPOINT,
            data_import_key=DATA_IMPORT_KEY,
            partner_api_key="partner-key",
            auth_name=AUTH,
        ),
        cohort_id=cohort_id,
        cohort_name=f"Cohort {cohort_id}",
        operation=operation,
        alias_column="email",
        mirror=MirrorOptions(),
        job=job,
    )
    rows_read = rng.randint(1_000, 2_000_000)
    sent = {"user_ids": int(rows_read * 0.9), "email": int(rows_read * 0.05)}
    duration = max(0.5, rows_read / rng.uniform(200_000, 1_200_000))
    report = ExportReport(
        run_id=None,
        cohort_id=cohort_id,
        operation=operation,
        status=status,
        rows_read=rows_read,
        sent=sent if status == "succeeded" else {k: v // 2 for k, v in sent.items()},
        skipped={"null": rows_read // 50, "empty": 3, "invalid": 0, "duplicate": rows_read // 40},
        skipped_by_kind={"user_ids": {"null": rows_read // 50, "empty": 3, "duplicate": 11}},
        ignored_columns=["signup_date"] if number % 7 == 0 else [],
        batches=rows_read // 1000 + 1,
        requests=rows_read // 1000 + 2,
        retries=rng.randint(0, 3),
        duration_s=round(duration, 2),
        identifiers_per_second=round(sum(sent.values()) / duration, 1),
        mirror={"entered": rows_read // 100, "left": rows_read // 200, "unchanged": rows_read}
        if operation == "mirror"
        else None,
    ).to_dict()
    run_id = started.strftime("%Y%m%dT%H%M%S") + f"-{number % 65536:04x}"
    report["run_id"] = run_id
    finished = started + dt.timedelta(seconds=duration)
    error = {
        "failed": "the destination refused the request (HTTP 401): invalid data import key",
        "interrupted": "interrupted (SIGTERM) after 12 acknowledged batches",
    }.get(status)
    return {
        "id": run_id,
        "job": orjson.dumps(spec.to_public_dict()).decode(),
        "job_name": job,
        "cohort_key": cohort_key(ENDPOINT, spec.destination.partner, cohort_id, DATA_IMPORT_KEY),
        "endpoint": ENDPOINT,
        "partner": spec.destination.partner,
        "cohort_id": cohort_id,
        "key_hash": key_hash(DATA_IMPORT_KEY),
        "operation": operation,
        "status": status,
        "started_at": started,
        "finished_at": None if status == "running" else finished,
        "report": None if status == "running" else orjson.dumps(report).decode(),
        "error": error,
    }


# --- measuring ------------------------------------------------------------------------


@dataclass
class Figure:
    page: str
    outcome: str  # "measured", "not built yet", or what went wrong
    server_ms: list[float]
    client_ms: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.server_ms)

    @property
    def p95(self) -> float:
        ordered = sorted(self.server_ms)
        return ordered[max(0, -(-len(ordered) * 95 // 100) - 1)]


def server_ms(response: httpx.Response) -> float:
    match = re.search(r"app;dur=([0-9.]+)", response.headers.get("server-timing", ""))
    if match is None:
        raise SystemExit(
            "the console sent no Server-Timing header: is src/cohortsync/web/app.py current?"
        )
    return float(match.group(1))


def log_in(client: httpx.Client) -> None:
    response = client.post(
        "/login", data={"user": CONSOLE_USER, "password": PASSWORD, "next": "/hub"}
    )
    if response.status_code != 303 or not client.cookies:
        raise SystemExit(f"logging in failed: HTTP {response.status_code}")


def unrouted(response: httpx.Response) -> bool:
    """FastAPI's own 404 (no route matches), as opposed to a page saying a name is unknown."""
    return response.status_code == 404 and response.headers.get("content-type", "").startswith(
        "application/json"
    )


def measure(client: httpx.Client, page: str, requests: int) -> Figure:
    for _ in range(2):  # warm-up: templates compiled, pools and caches filled
        first = client.get(page)
    if unrouted(first):
        return Figure(page, "not built yet", [], [])
    if first.status_code != 200:
        return Figure(page, f"HTTP {first.status_code}", [], [])
    server, client_side = [], []
    for _ in range(requests):
        began = time.perf_counter()
        response = client.get(page)
        client_side.append((time.perf_counter() - began) * 1000)
        if response.status_code != 200:
            return Figure(page, f"HTTP {response.status_code}", [], [])
        server.append(server_ms(response))
    return Figure(page, "measured", server, client_side)


def activation_page(client: httpx.Client, name: str) -> str:
    """The activation's page: the Audience Studio's link to it, else a likely address."""
    listing = client.get("/audience")
    for href in re.findall(r'href="([^"]+)"', listing.text if listing.status_code == 200 else ""):
        if re.search(rf"/{name}(/|$|\?)", href):
            return href
    for candidate in (f"/audience/activations/{name}", f"/audience/activation/{name}"):
        if not unrouted(client.get(candidate)):
            return candidate
    return f"/audience/activations/{name}"


def pages(client: httpx.Client, run_id: str) -> Iterator[str]:
    yield from ("/hub", "/hub/braze", "/queries", "/audience", "/runs")
    yield from ("/runs?status=failed", "/runs?job=query:q0001", f"/runs/{run_id}")
    yield "/queries/q0001"
    yield activation_page(client, "a0001")
    yield "/runs/charts?job=query:q0001"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--activations", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=30, help="timed GETs per page")
    parser.add_argument("--target-ms", type=float, default=TARGET_MS)
    args = parser.parse_args()
    load = Load(args.queries, args.activations, args.runs)

    with tempfile.TemporaryDirectory(prefix="cohortsync-console-bench-") as home:
        os.environ["COHORTSYNC_HOME"] = home
        os.environ[PASSWORD_ENV] = PASSWORD
        os.environ.pop("COHORTSYNC_WAREHOUSE", None)
        settings = Settings()
        began = time.perf_counter()
        run_id = seed(settings, load, random.Random(7))
        seeded = time.perf_counter() - began
        print(
            f"catalog: {load.queries:,} saved queries, {PARENTS} parents, {SEGMENTS} segments, "
            f"{load.activations:,} activations, {load.runs:,} runs, 1 authentication "
            f"(seeded in {seeded:.1f} s)",
            flush=True,
        )
        with serve_in_background(settings) as url, httpx.Client(base_url=url, timeout=60) as client:
            log_in(client)
            figures = [measure(client, page, args.requests) for page in pages(client, run_id)]
        loadavg = Path("/proc/loadavg").read_text().split()[:3]

    print(
        f"\n{args.requests} GETs per page after 2 warm-up; server time from Server-Timing; "
        f"target: median under {args.target_ms:.0f} ms"
    )
    width = max(len(figure.page) for figure in figures)
    print(f"{'page':<{width}}  {'median ms':>9}  {'p95 ms':>7}  {'client ms':>9}  result")
    misses = 0
    for figure in figures:
        if figure.outcome != "measured":
            print(f"{figure.page:<{width}}  {'-':>9}  {'-':>7}  {'-':>9}  {figure.outcome}")
            continue
        verdict = "PASS" if figure.median < args.target_ms else "MISS"
        misses += verdict == "MISS"
        client_median = statistics.median(figure.client_ms)
        print(
            f"{figure.page:<{width}}  {figure.median:>9.1f}  {figure.p95:>7.1f}  "
            f"{client_median:>9.1f}  {verdict}"
        )
    print(f"load average (1, 5, 15 min): {' '.join(loadavg)} on {os.cpu_count()} cores")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    if misses:
        sys.exit(1)


if __name__ == "__main__":
    main()
