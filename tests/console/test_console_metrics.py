"""``cohortsync console --metrics-port``: a real console process, its runs scraped over HTTP.

The console is started as a user starts it, with its metrics on a free port
(read from its log), and someone logs in and presses *Run now* through its
HTML forms (CSRF token and all). The runs go to the recording partner API
server; ``/metrics`` is fetched with a real HTTP client and parsed with
prometheus-client's own parser, and every value is checked exactly against
what the run history and the server saw: a succeeded mirror (one retry), a
query whose SQL fails, a run stopped from its page and resumed (which
counts only what it sent itself), an activation, and the resume of a bare
export (no saved job, counted as ``export``). Then SIGTERM: the console stops its
running launch at a checkpoint (interrupted, resumable) and exits 0.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

import duckdb
import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from catalog_helpers import save_home_auth
from cohortsync.apply import apply_file
from cohortsync.catalog import runs as run_history
from cohortsync.catalog.db import open_catalog
from cohortsync.errors import RunInterrupted
from cohortsync.export.reporting import SilentReporter
from cohortsync.export.run import run_export
from cohortsync.export.spec import Source
from cohortsync.export.stopping import StopToken
from cohortsync.jobs.metrics import ConsoleMetrics
from cohortsync.jobs.run_history import show_run_view
from cohortsync.queries import QueryExport, save_query
from cohortsync.settings import Settings
from export.conftest import partner  # noqa: F401  (the fixture)
from export.partner_server import CLIENT_SECRET, PartnerServer, spec_for
from support import cohortsync_command, run_cli, wait_for

PASSWORD = "console password for the metrics tests"
CONSOLE_ON = re.compile(r"cohortsync console on (http://\S+)")
METRICS_ON = re.compile(r"metrics on (http://\S+)")
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass
class ConsoleProcess:
    """A ``cohortsync console`` process, a client logged in to it, and its metrics' URL."""

    popen: subprocess.Popen[str]
    stderr: Path
    client: httpx.Client
    metrics_url: str

    def scrape(self) -> Samples:
        """Every sample of the console's metrics, by name and labels, as Prometheus reads them."""
        answer = httpx.get(self.metrics_url, timeout=5)
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain")
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(answer.text)
            for sample in family.samples
        }

    def post_form(self, page: str, action: str, **data: str) -> httpx.Response:
        """Post the form at ``action`` as the browser does from ``page`` (with its CSRF token)."""
        shown = self.client.get(page)
        assert shown.status_code == 200, shown.text
        token = CSRF.search(shown.text)
        assert token, f"{page} has no CSRF token"
        return self.client.post(action, data={"csrf_token": token.group(1), **data})

    def run_now(self, name: str) -> httpx.Response:
        return self.post_form(f"/queries/{name}", f"/queries/{name}/run")

    def stop(self) -> int:
        """SIGTERM, and the exit status."""
        self.client.close()
        self.popen.send_signal(signal.SIGTERM)
        return self.popen.wait(timeout=30)


@pytest.fixture
def start_console(tmp_path: Path) -> Iterator[Callable[..., ConsoleProcess]]:
    started: list[subprocess.Popen[str]] = []

    def start(*extra: str) -> ConsoleProcess:
        """The console with its metrics on a free port; ``extra`` arguments after those."""
        stderr = tmp_path / f"console{len(started)}.err"
        with stderr.open("w") as err:
            popen = subprocess.Popen(
                cohortsync_command("console", "--port", "0", "--metrics-port", "0", *extra),
                stdout=subprocess.DEVNULL, stderr=err, text=True,
                env={**os.environ, "COHORTSYNC_CONSOLE_PASSWORD": PASSWORD},
            )  # fmt: skip
        started.append(popen)
        as_json = "json" in extra

        def said(pattern: re.Pattern[str], field: str) -> str | None:
            if as_json:  # the URLs are fields of the console's JSON lines
                lines = [orjson.loads(line) for line in stderr.read_text().splitlines()]
                return next((line[field] for line in lines if field in line), None)
            found = pattern.search(stderr.read_text())
            return found.group(1) if found else None

        url = wait_for(lambda: said(CONSOLE_ON, "url"), 60, what="the console's URL", process=popen)
        metrics_url = said(METRICS_ON, "metrics_url")
        assert metrics_url is not None, stderr.read_text()  # said before the console's URL
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/metrics", metrics_url)
        client = httpx.Client(base_url=url, timeout=30)
        login = client.post("/login", data={"user": "admin", "password": PASSWORD})
        assert login.status_code == 303, login.text
        return ConsoleProcess(popen, stderr, client, metrics_url)

    yield start
    for popen in started:
        if popen.poll() is None:
            popen.kill()
        popen.wait(timeout=30)


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def when(console: ConsoleProcess, check: Callable[[Samples], bool], what: str) -> Samples:
    """The console's metrics once ``check`` holds of them."""
    return wait_for(
        lambda: (samples := console.scrape()) and check(samples) and samples,
        30,
        what=what,
        process=console.popen,
    )


def save_export_query(name: str, sql: str, cohort: str, **export: object) -> None:
    """A saved query exporting to the partner server, not scheduled: only *Run now* runs it."""
    save_query(name, sql, export=QueryExport(auth="partner", cohort_id=cohort, **export))


def run_of(job: str) -> run_history.RunRecord:
    catalog = open_catalog(Settings().catalog_path)
    try:
        [record] = run_history.list_runs(catalog, job=job, limit=10)
        return record
    finally:
        catalog.dispose()


def acknowledged(run_id: str) -> int:
    catalog = open_catalog(Settings().catalog_path)
    try:
        return len(run_history.acknowledged_batches(catalog, run_id))
    finally:
        catalog.dispose()


def test_the_console_serves_the_runs_it_launches_as_prometheus_metrics(
    home: Path,
    partner: PartnerServer,  # noqa: F811
    start_console: Callable[..., ConsoleProcess],
) -> None:
    with duckdb.connect(str(home / "warehouse.duckdb")) as connection:
        # 2,500 distinct members, 100 of them twice, and 10 NULLs: the result holds 2,500.
        connection.execute(
            "CREATE TABLE customers AS SELECT 'c' || (i % 2500) AS external_id "
            "FROM range(2600) t(i) UNION ALL SELECT NULL FROM range(10)"
        )
    save_home_auth("partner", partner.url, CLIENT_SECRET)
    save_export_query("vip", "SELECT external_id AS user_ids FROM customers", "vip",
                      operation="mirror", threads=2)  # fmt: skip
    save_export_query("broken", "SELECT * FROM no_such_table", "broken")
    partner.script("users", 503, "upstream unavailable")  # one retry
    console = start_console()

    before = console.scrape()
    assert value(before, "cohortsync_console_runs_in_flight") == 0
    assert not any(name.startswith("cohortsync_scheduler_") for name, _ in before)

    assert console.run_now("vip").status_code == 303
    assert console.run_now("broken").status_code == 303
    after = when(
        console,
        lambda s: (
            value(s, "cohortsync_console_runs_total", job="query:vip", status="succeeded") == 1
            and value(s, "cohortsync_console_runs_total", job="query:broken", status="failed") == 1
            and value(s, "cohortsync_console_runs_in_flight") == 0
        ),
        "both runs to be counted",
    )
    scraped_at = time.time()
    vip = run_of("query:vip")
    assert vip.status == "succeeded" and vip.finished_at is not None
    assert run_of("query:broken").status == "failed"

    expected = {
        ("cohortsync_console_identifiers_sent_total", "query:vip"): 2500,
        ("cohortsync_console_retries_total", "query:vip"): 1,
        ("cohortsync_console_cohort_members", "query:vip"): 2500,
        ("cohortsync_console_identifiers_sent_total", "query:broken"): 0,
        ("cohortsync_console_retries_total", "query:broken"): 0,
    }
    for (name, job), wanted in expected.items():
        assert value(after, name, job=job) == wanted, (name, job)
    for status in ("failed", "interrupted"):
        assert value(after, "cohortsync_console_runs_total", job="query:vip", status=status) is None
    # The job that never exported: no size, no success.
    assert value(after, "cohortsync_console_cohort_members", job="query:broken") is None
    last = "cohortsync_console_last_success_timestamp_seconds"
    assert value(after, last, job="query:broken") is None
    success = value(after, last, job="query:vip")
    assert success is not None
    assert vip.finished_at.replace(tzinfo=UTC).timestamp() <= success <= scraped_at
    assert not any(name.startswith("cohortsync_scheduler_") for name, _ in after)
    # what the server acknowledged is what the metrics say was sent
    assert sum(len(r.body["cohort_changes"][0]["user_ids"]) for r in partner.users_requests()) == (
        2500
    )
    assert console.stop() == 0, console.stderr.read_text()


def test_a_run_stopped_then_resumed_from_the_console_counts_each_identifier_once(
    home: Path,
    partner: PartnerServer,  # noqa: F811
    start_console: Callable[..., ConsoleProcess],
) -> None:
    with duckdb.connect(str(home / "warehouse.duckdb")) as connection:
        connection.execute("CREATE TABLE t AS SELECT 'u' || i AS user_ids FROM range(12000) r(i)")
    save_home_auth("partner", partner.url, CLIENT_SECRET)
    save_export_query("big", "SELECT user_ids FROM t", "big", operation="mirror", threads=1)
    partner.delay = 0.15  # 12 batches, one at a time
    console = start_console()

    started = console.run_now("big")
    assert started.status_code == 303
    run_id = started.headers["location"].rsplit("/", 1)[1]
    wait_for(lambda: len(partner.users_requests()) >= 3, 30, what="3 batches")
    stopped = console.post_form(f"/runs/{run_id}", f"/runs/{run_id}/stop")
    assert stopped.status_code == 303
    job = "query:big"
    interrupted = when(
        console,
        lambda s: (
            value(s, "cohortsync_console_runs_total", job=job, status="interrupted") == 1
            and value(s, "cohortsync_console_runs_in_flight") == 0
        ),
        "the stopped run to be counted",
    )
    assert run_of(job).status == "interrupted"
    first = acknowledged(run_id)
    assert 3 <= first < 12
    sent = "cohortsync_console_identifiers_sent_total"
    assert value(interrupted, sent, job=job) == 1000 * first  # what it got in before it stopped
    assert value(interrupted, "cohortsync_console_cohort_members", job=job) is None
    assert value(interrupted, "cohortsync_console_last_success_timestamp_seconds", job=job) is None

    partner.delay = 0
    resumed = console.post_form(f"/runs/{run_id}", f"/runs/{run_id}/resume", data_import_key="")
    assert resumed.status_code == 303, resumed.text
    after = when(
        console,
        lambda s: (
            value(s, "cohortsync_console_runs_total", job=job, status="succeeded") == 1
            and value(s, "cohortsync_console_runs_in_flight") == 0
        ),
        "the resumed run to be counted",
    )
    assert run_of(job).id == run_id and run_of(job).status == "succeeded"
    # the resume counted only its own batches: both attempts together sent each identifier once
    assert value(after, sent, job=job) == 12_000
    assert value(after, "cohortsync_console_runs_total", job=job, status="interrupted") == 1
    assert value(after, "cohortsync_console_cohort_members", job=job) == 12_000
    assert len(partner.users_requests()) == 12  # and the server got nothing twice
    assert console.stop() == 0, console.stderr.read_text()


ACTIVATION = """\
parents:
  - name: members
    table: members
    key: external_id
segments:
  - name: gold
    parent: members
    rules: {column: tier, op: "=", value: gold}
activations:
  - name: gold_now
    segment: gold
    auth: partner
    cohort_id: gold
    operation: mirror
    mapping: [external_id=user_ids]
"""


class StopAfterFirstBatch(SilentReporter):
    def __init__(self, stop: StopToken) -> None:
        self.stop = stop

    def batches_sent(self, batches: int, identifiers: int) -> None:
        self.stop.request("the test")


def test_an_activation_and_a_resumed_bare_export_are_counted_under_their_job_names(
    home: Path,
    partner: PartnerServer,  # noqa: F811
    tmp_path: Path,
    start_console: Callable[..., ConsoleProcess],
) -> None:
    with duckdb.connect(str(home / "warehouse.duckdb")) as connection:
        connection.execute(
            "CREATE TABLE members AS SELECT 'm' || i AS external_id, "
            "CASE WHEN i % 3 = 0 THEN 'gold' ELSE 'silver' END AS tier FROM range(1500) r(i)"
        )
        connection.execute("CREATE TABLE t AS SELECT 'u' || i AS user_ids FROM range(3000) r(i)")
    save_home_auth("partner", partner.url, CLIENT_SECRET)
    definitions = tmp_path / "cohortsync.yaml"
    definitions.write_text(ACTIVATION)
    assert apply_file(definitions).changed
    # A bare export (no saved job), given its key, stopped after its first batch.
    stop = StopToken()
    spec = spec_for(partner, Source(table="t"), threads=1)
    with pytest.raises(RunInterrupted) as interrupted:
        run_export(spec, settings=Settings(), reporter=StopAfterFirstBatch(stop), stop=stop)
    bare = str(interrupted.value.run_id)
    first = acknowledged(bare)
    assert 1 <= first < 3
    console = start_console("--log-format", "json")

    page = "/audience/activations/gold_now"
    assert console.post_form(page, f"{page}/run").status_code == 303
    resumed = console.post_form(
        f"/runs/{bare}", f"/runs/{bare}/resume", data_import_key=CLIENT_SECRET
    )
    assert resumed.status_code == 303, resumed.text
    job = "activation:gold_now"
    runs = "cohortsync_console_runs_total"
    after = when(
        console,
        lambda s: (
            value(s, runs, job=job, status="succeeded") == 1
            and value(s, runs, job="export", status="succeeded") == 1
            and value(s, "cohortsync_console_runs_in_flight") == 0
        ),
        "both runs to be counted",
    )
    assert value(after, "cohortsync_console_identifiers_sent_total", job=job) == 500
    assert value(after, "cohortsync_console_cohort_members", job=job) == 500
    assert value(after, "cohortsync_console_retries_total", job=job) == 0
    # the resume sent, and counted, only what the interrupted attempt had not got in
    assert value(after, "cohortsync_console_identifiers_sent_total", job="export") == (
        3000 - 1000 * first
    )
    assert value(after, "cohortsync_console_cohort_members", job="export") == 3000
    assert console.stop() == 0, console.stderr.read_text()
    for line in console.stderr.read_text().splitlines():
        orjson.loads(line)  # every line JSON, the metrics' too


def test_sigterm_stops_the_running_launch_at_a_checkpoint_and_exits_0(
    home: Path,
    partner: PartnerServer,  # noqa: F811
    start_console: Callable[..., ConsoleProcess],
) -> None:
    with duckdb.connect(str(home / "warehouse.duckdb")) as connection:
        connection.execute("CREATE TABLE t AS SELECT 'u' || i AS user_ids FROM range(20000) r(i)")
    save_home_auth("partner", partner.url, CLIENT_SECRET)
    save_export_query("big", "SELECT user_ids FROM t", "big", operation="mirror", threads=1)
    partner.delay = 0.15  # 20 batches, one at a time: about 3 s of sending
    console = start_console()

    started = console.run_now("big")
    assert started.status_code == 303
    run_id = started.headers["location"].rsplit("/", 1)[1]
    wait_for(lambda: len(partner.users_requests()) >= 2, 30, what="2 batches")
    sent_at = time.monotonic()
    assert console.stop() == 0, console.stderr.read_text()
    assert time.monotonic() - sent_at < 10  # stopped at the next checkpoint, not at the end
    assert console.stderr.read_text().splitlines()[-1] == "console stopped"
    assert "Traceback" not in console.stderr.read_text()
    view = show_run_view(Settings(), run_id)
    assert view["status"] == "interrupted"
    assert view["resumable"]
    assert 2 <= acknowledged(run_id) < 20


def test_a_busy_metrics_port_is_one_line_and_exit_2(home: Path) -> None:
    held = ConsoleMetrics().serve("127.0.0.1", 0)
    port = held.url.rsplit(":", 1)[1].split("/")[0]
    try:
        result = run_cli("console", "--port", "0", "--metrics-port", port, expect=2)
    finally:
        held.close()
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: cannot serve the metrics on 127.0.0.1:{port}")
    assert "--metrics-port" in line


def test_without_a_metrics_port_nothing_else_listens(home: Path, tmp_path: Path) -> None:
    stderr = tmp_path / "console.err"
    with stderr.open("w") as err:
        popen = subprocess.Popen(
            cohortsync_command("console", "--port", "0"),
            stdout=subprocess.DEVNULL, stderr=err, text=True,
            env={**os.environ, "COHORTSYNC_CONSOLE_PASSWORD": PASSWORD},
        )  # fmt: skip
    try:
        wait_for(lambda: CONSOLE_ON.search(stderr.read_text()), 60, what="the console's URL",
                 process=popen)  # fmt: skip
        assert "metrics" not in stderr.read_text()
        listening = listening_ports(popen.pid)
        assert len(listening) == 1, listening  # the console's own port only
    finally:
        popen.send_signal(signal.SIGTERM)
        assert popen.wait(timeout=30) == 0


def listening_ports(pid: int) -> list[int]:
    """The TCP ports the process ``pid`` listens on, from /proc (its sockets' inodes)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.append(int(fields[1].rsplit(":", 1)[1], 16))
    return ports
