"""Files written by the previous release, read by today's: plans, ack logs, snapshots.

The home under ``fixtures/files/home`` was made by the previous release
(``make_file_fixtures.py``, see the README there): a committed mirror
snapshot of cohort ``vip`` and a mirror run of cohort ``big`` killed after 3
acknowledged batches. Each test copies it into a fresh home and drives the
real ``cohortsync`` executable against a partner API server on the port the
frozen runs and snapshots name. Only the CLI reads the catalog here, so the
tests hold whether or not the catalog is migrated on open.
"""

from __future__ import annotations

import json
import shutil
import signal
import struct
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from cohortsync import __version__
from cohortsync.export import formats
from export.partner_server import PARTNER_API_KEY
from support import cohortsync_command, run_cli, wait_for
from upgrade.make_file_fixtures import PORT, FixedPortPartner, table_sql, users

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "files"
MANIFEST: dict[str, Any] = json.loads((FIXTURES / "fixture.json").read_text())
INTERRUPTED = MANIFEST["interrupted"]
MIRROR = MANIFEST["mirror"]


@pytest.fixture
def frozen_home(home: Path) -> Path:
    """A copy of the home the previous release left, as this test's ``COHORTSYNC_HOME``.

    Git keeps no file mode but the executable bit, and cohortsync refuses a
    secret key others can read: the copy gets the mode the release gave it.
    """
    shutil.copytree(FIXTURES / "home", home, dirs_exist_ok=True)
    (home / "secret.key").chmod(0o600)
    return home


@pytest.fixture
def frozen_partner(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FixedPortPartner]:
    """The partner API server, again at the endpoint the frozen state names."""
    monkeypatch.setenv("COHORTSYNC_PARTNER_API_KEY", PARTNER_API_KEY)
    monkeypatch.setenv("COHORTSYNC_HTTP_BACKOFF_BASE", "0.01")
    monkeypatch.setenv("COHORTSYNC_HTTP_BACKOFF_MAX", "0.05")
    try:
        server = FixedPortPartner(PORT).start()
    except OSError as error:
        pytest.fail(f"port {PORT}, which the frozen runs name, is taken: {error}")
    assert server.url == MANIFEST["endpoint"]
    yield server
    server.stop()


def warehouse(home: Path, sql: str) -> None:
    with duckdb.connect(str(home / "warehouse.duckdb")) as connection:
        connection.execute(sql)


def sent(server: FixedPortPartner) -> Counter[tuple[str, bool]]:
    """How many times each user id reached the server and was acknowledged, by direction."""
    return Counter((value, remove) for _, value, remove in server.identifiers())


def run_dir(home: Path) -> Path:
    return home / "runs" / INTERRUPTED["run_id"]


def run_status(run_id: str) -> str:
    shown = run_cli("runs", "show", run_id, "--json")
    assert shown.returncode == 0, shown.stderr
    return str(json.loads(shown.stdout)["status"])


def export_args(cohort: str, table: str, *more: str) -> list[str]:
    auth = MANIFEST["auth"]
    return ["export", "--auth", auth, "--cohort-id", cohort, "--table", table, *more]


def first_release_plan(path: Path) -> None:
    """Rewrite a plan as the first release wrote it: no item column, no version mark."""
    table = pq.read_table(path).select(["kind", "value", "should_remove"])
    pq.write_table(table.replace_schema_metadata(None), path)


@pytest.mark.parametrize("plan", ["as frozen", "first release"])
def test_a_run_interrupted_by_the_previous_release_resumes_exactly(
    frozen_home: Path, frozen_partner: FixedPortPartner, plan: str
) -> None:
    plan_path = run_dir(frozen_home) / formats.PLAN_FILE
    if plan == "first release":
        first_release_plan(plan_path)
    resumed = run_cli("runs", "resume", INTERRUPTED["run_id"], "--json")
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert report["run_id"] == INTERRUPTED["run_id"]
    assert report["status"] == "succeeded"

    everyone = set(users(*INTERRUPTED["ids"], prefix=INTERRUPTED["prefix"]))
    before = set((FIXTURES / "big-acknowledged.txt").read_text().split())
    assert len(before) == 1000 * INTERRUPTED["acknowledged_batches"]
    now = sent(frozen_partner)
    assert max(now.values()) == 1  # no batch sent twice by the resumed run
    assert not any(remove for _, remove in now)
    resent = {value for value, _ in now}
    # Batches acknowledged before the kill, in the catalog or only in the old ack log,
    # are not sent again; every other one is sent once: the cohort ends exactly right.
    assert resent.isdisjoint(before)
    assert resent | before == everyone
    assert run_status(INTERRUPTED["run_id"]) == "succeeded"
    assert not run_dir(frozen_home).exists()

    # Its pending snapshot, written by the previous release, is now the committed one.
    warehouse(frozen_home, table_sql("big", *INTERRUPTED["ids"], INTERRUPTED["prefix"]))
    again = run_cli(*export_args("big", "big", "--operation", "mirror", "--json"))
    assert again.returncode == 0, again.stderr
    mirror = json.loads(again.stdout)["mirror"]
    assert (mirror["entries"], mirror["exits"], mirror["previous_members"]) == (0, 0, 5_000)
    assert sent(frozen_partner) == now  # nothing more sent


def test_the_previous_releases_snapshot_is_diffed_by_the_next_mirror_run(
    frozen_home: Path, frozen_partner: FixedPortPartner
) -> None:
    warehouse(frozen_home, table_sql("t", 1_500, 4_500))
    done = run_cli(*export_args("vip", "t", "--operation", "mirror", "--json"))
    assert done.returncode == 0, done.stderr
    mirror = json.loads(done.stdout)["mirror"]
    assert mirror["first_run"] is False
    assert mirror["previous_members"] == 3_000
    assert (mirror["entries"], mirror["exits"], mirror["unchanged"]) == (500, 500, 2_500)
    expected = {(value, False) for value in users(4_000, 4_500)}
    expected |= {(value, True) for value in users(1_000, 1_500)}
    assert sent(frozen_partner) == Counter(expected)  # only entries and exits, once each
    [meta] = [
        json.loads(path.read_text()) for path in frozen_home.glob("snapshots/vip-*/gen-*/meta.json")
    ]
    assert meta["format_version"] == 1  # a snapshot in Parquet files stays version 1
    assert meta["members"] == 3_000


def newer_plan(home: Path) -> Path:
    path = run_dir(home) / formats.PLAN_FILE
    table = pq.read_table(path)
    marks = {formats.FORMAT_KEY: formats.PLAN, formats.VERSION_KEY: str(formats.PLAN_VERSION + 1)}
    pq.write_table(table.replace_schema_metadata(marks), path)
    return path


def newer_ack_log(home: Path) -> Path:
    path = run_dir(home) / formats.ACK_LOG_FILE
    records = path.read_bytes()
    header = formats.ACK_LOG_MAGIC + struct.pack("<q", formats.ACK_LOG_VERSION + 1)
    path.write_bytes(header + records)
    return path


@pytest.mark.parametrize(
    ("make_newer", "name", "current"),
    [
        (newer_plan, "plan", formats.PLAN_VERSION),
        (newer_ack_log, "ack log", formats.ACK_LOG_VERSION),
    ],
)
def test_a_run_directory_of_a_newer_format_is_refused_naming_both_versions(
    frozen_home: Path, frozen_partner: FixedPortPartner, make_newer: Any, name: str, current: int
) -> None:
    path = make_newer(frozen_home)
    content = path.read_bytes()
    status = run_status(INTERRUPTED["run_id"])
    refused = run_cli("runs", "resume", INTERRUPTED["run_id"], expect=2)
    assert refused.returncode == 2, refused.stderr
    message = refused.stderr.strip()
    assert message == (
        f"error: {path} is in {name} format version {current + 1}, but this cohortsync "
        f"({__version__}) reads {name} format versions up to {current} (it was written by a newer "
        "cohortsync: upgrade cohortsync, then run the command again; the file and the run "
        "history were left unchanged)"
    )
    assert frozen_partner.requests == []
    assert path.read_bytes() == content
    assert run_status(INTERRUPTED["run_id"]) == status


def test_a_snapshot_of_a_newer_format_is_refused_naming_both_versions(
    frozen_home: Path, frozen_partner: FixedPortPartner
) -> None:
    [path] = frozen_home.glob("snapshots/vip-*/gen-*/meta.json")
    meta = json.loads(path.read_text())
    meta["format_version"] = formats.SNAPSHOT_VERSION + 1
    path.write_text(json.dumps(meta))
    runs_before = run_cli("runs", "list", "--json").stdout
    warehouse(frozen_home, table_sql("t", 1_500, 4_500))
    refused = run_cli(*export_args("vip", "t", "--operation", "mirror"), expect=2)
    assert refused.returncode == 2, refused.stderr
    newer, ours = formats.SNAPSHOT_VERSION + 1, formats.SNAPSHOT_VERSION
    assert f"{path.parent} is in snapshot format version {newer}" in refused.stderr
    assert f"reads snapshot format versions up to {ours}" in refused.stderr
    assert "upgrade cohortsync" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert frozen_partner.requests == []
    assert run_cli("runs", "list", "--json").stdout == runs_before  # no run recorded


def test_fresh_runs_write_the_current_formats(home: Path, frozen_partner: FixedPortPartner) -> None:
    warehouse(home, table_sql("t", 0, 3_000))
    frozen_partner.delay = 0.3
    args = [
        "export",
        "--endpoint",
        frozen_partner.url,
        "--data-import-key",
        frozen_partner.client_secret,
        "--cohort-id",
        "fresh",
        "--table",
        "t",
        "--operation",
        "mirror",
        "--threads",
        "1",
    ]
    process = subprocess.Popen(
        cohortsync_command(*args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        # One thread: a second batch is taken only once the first ack is in the log.
        wait_for(
            lambda: len(frozen_partner.users_requests(answered=False)) >= 2,
            60,
            what="a second batch, sent once the first is acknowledged",
            process=process,
        )
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
    [directory] = (home / "runs").iterdir()
    marks = pq.read_metadata(directory / formats.PLAN_FILE).metadata
    assert marks[b"cohortsync.format"] == b"plan"
    assert marks[b"cohortsync.format_version"] == b"2"
    log = (directory / formats.ACK_LOG_FILE).read_bytes()
    assert log[:16] == b"CSACKLOG" + struct.pack("<q", 2)
    assert len(log) >= 32  # the header, then at least the acknowledged batch
    [pending] = home.glob(f"snapshots/fresh-*/pending-{directory.name}/meta.json")
    assert json.loads(pending.read_text())["format_version"] == 1

    frozen_partner.delay = 0
    done = run_cli(*args)
    assert done.returncode == 0, done.stderr
    [committed] = home.glob(f"snapshots/fresh-*/gen-{directory.name}/meta.json")
    assert json.loads(committed.read_text())["format_version"] == 1
    assert {value for value, _ in sent(frozen_partner)} == set(users(0, 3_000))


@pytest.mark.parametrize("header", [b"", formats.ACK_HEADER], ids=["version 1", "version 2"])
def test_ack_logs_of_both_versions_read_the_same_records(tmp_path: Path, header: bytes) -> None:
    path = tmp_path / formats.ACK_LOG_FILE
    records = formats.ACK_RECORD.pack(0, 1000) + formats.ACK_RECORD.pack(7, 12)
    torn = formats.ACK_RECORD.pack(9, 1000)[:5]  # the process died inside the write
    assert formats.ack_log_records(path, header + records + torn) == records
    assert formats.ack_log_records(path, header[:5]) == b""  # died inside the header
