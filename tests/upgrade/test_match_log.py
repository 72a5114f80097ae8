"""The match log (``runs/<run id>/match.log``, format 1) beside runs that have none.

Releases before the match log left a ``rest-attribute`` run's directory
without one: the match report of an interrupted attempt lived only in the
run history's report. Such a run, here a real run stopped by SIGTERM whose
match log is removed (the only difference of its directory from the previous
release's), resumes with that report carried in, each error counted once. A
match log of a newer format is refused like a newer plan or ack log.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import orjson
import pytest

from cohortsync import __version__
from cohortsync.export import formats
from export.track_server import REST_API_KEY, UNKNOWN_USER, TrackServer
from support import run_cli, wait_for

Spawn = Callable[[list[str]], "subprocess.Popen[str]"]
Warehouse = Callable[[str], None]


@pytest.fixture
def track(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TrackServer]:
    monkeypatch.setenv("COHORTSYNC_REST_API_KEY", REST_API_KEY)
    server = TrackServer().start()
    yield server
    server.stop()


@pytest.fixture
def interrupted(home: Path, track: TrackServer, warehouse: Warehouse, spawn: Spawn) -> str:
    """A mirror run of 1,000 ids (half unknown to the server) stopped by SIGTERM partway."""
    track.add_users(*(f"u{i:04}" for i in range(0, 1_000, 2)))
    warehouse(
        "CREATE TABLE t AS SELECT 'u' || lpad(i::VARCHAR, 4, '0') AS user_ids FROM range(1000) r(i)"
    )
    track.delay = 0.1
    process = spawn(export_args(track))
    wait_for(lambda: len(track.answered()) >= 3, what="3 answered requests", timeout=60)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 6, stderr
    track.delay = 0
    [run] = run_cli("runs", "list", "--json").json()
    return str(run["id"])


@pytest.fixture
def warehouse(home: Path) -> Warehouse:
    def run(sql: str) -> None:
        with duckdb.connect(str(home / "warehouse.duckdb")) as connection:
            connection.execute(sql)

    return run


def export_args(track: TrackServer) -> list[str]:
    return [
        "export", "--type", "rest-attribute", "--endpoint", track.url, "--cohort-id", "vip",
        "--table", "t", "--operation", "mirror", "--threads", "2",
    ]  # fmt: skip


def test_a_run_of_the_previous_release_resumes_with_its_recorded_match_carried_in(
    home: Path, track: TrackServer, interrupted: str
) -> None:
    log = home / "runs" / interrupted / formats.MATCH_LOG_FILE
    log.unlink()  # as the previous release left it
    recorded = run_cli("runs", "show", interrupted, "--json").json()["report"]["match"]
    assert 0 < recorded["objects"] < 1_000
    done = run_cli("runs", "resume", interrupted, "--json", expect=None)
    assert done.returncode == 0, done.stderr
    match = orjson.loads(done.stdout)["match"]
    assert (match["objects"], match["errors"], match["reasons"]) == (
        1_000, 500, {UNKNOWN_USER: 500},
    )  # fmt: skip
    assert match["first_errors"][: len(recorded["first_errors"])] == recorded["first_errors"]


def test_a_match_log_of_a_newer_format_is_refused_naming_both_versions(
    home: Path, track: TrackServer, interrupted: str
) -> None:
    log = home / "runs" / interrupted / formats.MATCH_LOG_FILE
    header, rest = log.read_bytes().split(b"\n", 1)
    newer = {**orjson.loads(header), "format_version": formats.MATCH_LOG_VERSION + 1}
    log.write_bytes(orjson.dumps(newer) + b"\n" + rest)
    content = log.read_bytes()
    requests = len(track.requests)
    refused = run_cli("runs", "resume", interrupted, expect=2)
    current = formats.MATCH_LOG_VERSION
    assert refused.stderr.strip() == (
        f"error: {log} is in match log format version {current + 1}, but this cohortsync "
        f"({__version__}) reads match log format versions up to {current} (it was written by a "
        "newer cohortsync: upgrade cohortsync, then run the command again; the file and the run "
        "history were left unchanged)"
    )
    assert len(track.requests) == requests
    assert log.read_bytes() == content
    [run] = run_cli("runs", "list", "--json").json()
    assert run["status"] == "interrupted"


def test_a_torn_last_line_is_left_out(tmp_path: Path) -> None:
    path = tmp_path / formats.MATCH_LOG_FILE
    whole = formats.match_log_header(None) + b'{"batch": 0, "objects": 75}\n'
    carried, entries = formats.match_log_lines(path, whole + b'{"batch": 1, "obj')
    assert (carried, entries) == (None, [{"batch": 0, "objects": 75}])
    assert formats.match_log_lines(path, whole[:10]) == (None, [])
