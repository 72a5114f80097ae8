"""A disk that fills up under a ``cohortsync export`` process, on a real small file system.

Each case mounts a tmpfs of its own (``support.small_disk``) on the part of
the home a run writes at that moment: ``runs/`` for the plan and the ack
log, ``snapshots/`` for a mirror's new snapshot. The disk is too small from
the start (the plan, the snapshot's Parquet files), or is filled by a ballast
file while the run sends (the ack log, the snapshot's commit), when the
partner API server has answered a few requests. Every case checks:

* exit 7 and one line naming the file that could not be written, no traceback;
* nothing committed half way: the cohort's current snapshot is the one
  before, no temporary file is left, the run is recorded ``failed`` with what
  was acknowledged;
* once there is space again, the same export ends with the cohort exactly
  the query's result, resends staying within the requests that were in
  flight when the write failed.

A run whose plan is whole ends ``interrupted`` (the next export resumes it,
under the same run id); one that had no plan yet ends ``failed`` with
nothing sent.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from runs_helpers import export_args, membership, received, runs_json

from export.partner_server import PartnerServer
from support import run_cli, wait_for
from support.small_disk import BALLAST, SmallDisk

THREADS = 2
BATCH = 1_000  # identifiers per partner request


def users(start: int, stop: int) -> set[tuple[str, str]]:
    return {("user_ids", f"u{i:07}") for i in range(start, stop)}


def table_of(start: int, stop: int) -> str:
    return (
        "CREATE OR REPLACE TABLE t AS SELECT 'u' || lpad(i::VARCHAR, 7, '0') AS user_ids "
        f"FROM range({start}, {stop}) r(i)"
    )


@pytest.fixture
def small_disk(home: Path) -> Iterator[Callable[[str, str], SmallDisk]]:
    """Mount a tmpfs of a size on a directory of the home; all are unmounted at the end."""
    mounted: list[SmallDisk] = []

    def mount(directory: str, size: str) -> SmallDisk:
        disk = SmallDisk(home / directory, size)
        mounted.append(disk)
        return disk

    yield mount
    for disk in mounted:
        disk.close()


def export(partner: PartnerServer, *, expect: int) -> Any:
    """The mirror export of table ``t``: its JSON report, or the error's first line."""
    done = run_cli(
        *export_args(partner, "--threads", str(THREADS), "--max-remove-pct", "100", "--json"),
        expect=None,
        timeout=120,
    )
    assert done.returncode == expect, done.stderr
    assert "Traceback" not in done.stderr
    if expect == 0:
        report = done.json()
        return report.get("report", report)
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, done.stderr
    return lines[0]


def fill_once_sending(partner: PartnerServer, disk: SmallDisk, after: int = 3) -> threading.Thread:
    """Fill ``disk`` as soon as the server has answered ``after`` requests of the run.

    Until the disk is full the server answers slowly (50 ms a request), so the
    run is still sending when the fill ends, however busy the machine; then at
    once.
    """
    partner.delay = 0.05

    def watch() -> None:
        wait_for(
            lambda: len(partner.users_requests()) >= after,
            60,
            what=f"the server to answer {after} requests",
            interval=0.002,
        )
        disk.fill()
        partner.delay = 0.0

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    return watcher


def cohort_snapshots(home: Path) -> Path:
    """The snapshot directory of the test's one cohort."""
    (cohort,) = (p for p in (home / "snapshots").iterdir() if p.name != BALLAST)
    return cohort


def current_generation(home: Path) -> str:
    """The name of the cohort's committed snapshot generation (its ``CURRENT``)."""
    return (cohort_snapshots(home) / "CURRENT").read_text().strip()


def last_run() -> dict[str, Any]:
    run: dict[str, Any] = runs_json("list")[0]
    return run


def test_no_room_for_the_plan_sends_nothing_and_the_next_export_converges(
    home: Path, partner: PartnerServer, warehouse: Callable[[str], None], small_disk: Any
) -> None:
    warehouse(table_of(0, 2_000))
    export(partner, expect=0)
    before = current_generation(home)
    requests_before = len(partner.users_requests())

    disk = small_disk("runs", "128k")  # the plan of 300,000 changes takes about 2.5 MB
    warehouse(table_of(1_000, 301_000))
    line = export(partner, expect=7)
    assert line.startswith(f"error: cannot write a staging or plan file {disk.path}/"), line
    assert "no space left on the device" in line
    assert len(partner.users_requests()) == requests_before  # nothing sent
    assert current_generation(home) == before
    assert disk.files() == []  # the failed run's directory is gone whole
    assert last_run()["status"] == "failed"

    disk.grow("64m")
    report = export(partner, expect=0)
    assert report["status"] == "succeeded"
    assert membership(partner) == users(1_000, 301_000)


def test_no_room_for_the_new_snapshot_keeps_the_old_one(
    home: Path, partner: PartnerServer, warehouse: Callable[[str], None], small_disk: Any
) -> None:
    disk = small_disk("snapshots", "256k")
    warehouse(table_of(0, 2_000))
    export(partner, expect=0)
    before = current_generation(home)
    requests_before = len(partner.users_requests())

    warehouse(table_of(1_000, 301_000))  # its members' Parquet file takes about 850 kB
    line = export(partner, expect=7)
    assert line.startswith(f"error: cannot write a staging or plan file {disk.path}/"), line
    assert len(partner.users_requests()) == requests_before  # nothing sent
    assert current_generation(home) == before
    assert not [f for f in disk.files() if "pending-" in str(f) or f.name.startswith(".")]
    assert not (home / "runs" / last_run()["id"]).exists()

    disk.grow("64m")
    export(partner, expect=0)
    assert membership(partner) == users(1_000, 301_000)
    assert current_generation(home) != before


def test_the_ack_log_filling_up_mid_send_fails_the_run_and_the_next_export_resumes_it(
    home: Path, partner: PartnerServer, warehouse: Callable[[str], None], small_disk: Any
) -> None:
    disk = small_disk("runs", "16m")
    # 300 batches: the ack log's 16-byte records outgrow its first 4 kB page at batch 255.
    warehouse(table_of(0, 300_000))
    watcher = fill_once_sending(partner, disk)
    line = export(partner, expect=7)
    watcher.join(timeout=10)
    run = last_run()
    assert line == (
        f"error: cannot write the run's ack log {disk.path}/{run['id']}/acks.log: "
        "no space left on the device (free space on that file system (df -h shows it), "
        "then run the same export again: it goes on where this run stopped)"
    )
    assert run["status"] == "interrupted"
    acknowledged = run["report"]["sent_total"]
    answered = sum(len(r.body["cohort_changes"][0]["user_ids"]) for r in partner.users_requests())
    assert 200_000 < acknowledged < 300_000
    # Recorded acks are a subset of what the server answered; the rest was in flight.
    assert 0 <= answered - acknowledged <= (THREADS + 1) * BATCH

    disk.free()
    report = export(partner, expect=0)
    assert report["run_id"] == run["id"]  # the failed run was resumed, not planned again
    assert membership(partner) == users(0, 300_000)
    resent = sum(count - 1 for count in received(partner).values())
    assert resent <= (THREADS + 1) * BATCH


def test_a_full_disk_at_the_snapshot_commit_keeps_the_old_snapshot_until_the_rerun_commits(
    home: Path, partner: PartnerServer, warehouse: Callable[[str], None], small_disk: Any
) -> None:
    disk = small_disk("snapshots", "16m")
    warehouse(table_of(0, 2_000))
    export(partner, expect=0)
    before = current_generation(home)

    warehouse(table_of(1_000, 41_000))
    watcher = fill_once_sending(partner, disk, after=len(partner.users_requests()) + 3)
    line = export(partner, expect=7)
    watcher.join(timeout=10)
    run = last_run()
    pending = cohort_snapshots(home) / f"pending-{run['id']}"
    assert line.startswith(f"error: cannot write the cohort's new snapshot {pending}/meta.json:")
    assert run["status"] == "interrupted"
    assert current_generation(home) == before
    assert not [f for f in disk.files() if f.name.startswith(".")]  # no temporary file left
    assert membership(partner) == users(1_000, 41_000)  # everything was acknowledged
    requests_sent = len(partner.users_requests())

    disk.free()
    report = export(partner, expect=0)
    assert report["run_id"] == run["id"]
    assert len(partner.users_requests()) == requests_sent  # only the commit was left to do
    assert current_generation(home) == f"gen-{run['id']}"
    assert membership(partner) == users(1_000, 41_000)
