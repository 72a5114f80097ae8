"""``cohortsync export --operation mirror`` end to end: guards, full resync, dry run, sandbox."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from runs_helpers import export_args, membership, received, runs_json

from export.partner_server import PartnerServer
from support import cohortsync_command, run_cli, wait_for

Warehouse = Callable[[str], None]


def table_of(start: int, stop: int) -> str:
    return (
        "CREATE OR REPLACE TABLE t AS SELECT 'u' || lpad(i::VARCHAR, 5, '0') AS user_ids "
        f"FROM range({start}, {stop}) r(i)"
    )


def users(start: int, stop: int) -> set[tuple[str, str]]:
    return {("user_ids", f"u{i:05}") for i in range(start, stop)}


@pytest.fixture
def sync(partner: PartnerServer, warehouse: Warehouse) -> Callable[..., Any]:
    """Mirror table ``t`` holding ``range(start, stop)``; returns the finished process."""

    def run(start: int, stop: int, *args: str) -> subprocess.CompletedProcess[str]:
        warehouse(table_of(start, stop))
        return run_cli(*export_args(partner, *args), expect=None)

    return run


def test_later_runs_send_only_entries_and_exits(partner: PartnerServer, sync: Any) -> None:
    assert sync(0, 5_000).returncode == 0
    first = received(partner)
    done = sync(1_000, 6_000, "--json")
    assert done.returncode == 0, done.stderr
    report = orjson.loads(done.stdout)
    assert report["mirror"]["entries"] == 1_000
    assert report["mirror"]["exits"] == 1_000
    assert report["sent_total"] == 2_000
    assert sum((received(partner) - first).values()) == 2_000
    assert membership(partner) == users(1_000, 6_000)


def test_a_run_with_no_change_sends_no_membership_request(
    partner: PartnerServer, sync: Any
) -> None:
    assert sync(0, 3_000).returncode == 0
    before = len(partner.users_requests(answered=False))
    done = sync(0, 3_000, "--json")
    assert done.returncode == 0, done.stderr
    assert len(partner.users_requests(answered=False)) == before
    assert orjson.loads(done.stdout)["sent_total"] == 0


def test_empty_result_is_refused_before_any_request(partner: PartnerServer, sync: Any) -> None:
    assert sync(0, 3_000).returncode == 0
    before = len(partner.requests)
    refused = sync(0, 0)
    assert refused.returncode == 1
    assert "the query returned no identifiers" in refused.stderr
    assert "remove all 3,000 tracked members" in refused.stderr
    assert "--allow-empty" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert len(partner.requests) == before  # not even the cohort name
    latest = runs_json("list")[0]
    assert latest["status"] == "failed"
    assert "no identifiers" in latest["error"]
    allowed = sync(0, 0, "--allow-empty")
    assert allowed.returncode == 0, allowed.stderr
    assert membership(partner) == set()


def test_removing_too_many_is_refused_with_the_numbers(partner: PartnerServer, sync: Any) -> None:
    assert sync(0, 10_000).returncode == 0
    before = len(partner.requests)
    refused = sync(0, 4_000)
    assert refused.returncode == 1
    assert "remove 6,000 of its 10,000 tracked members (60.0%)" in refused.stderr
    assert "more than --max-remove-pct 50" in refused.stderr
    assert "--max-remove-pct 60 or higher" in refused.stderr
    assert len(partner.requests) == before
    raised = sync(0, 4_000, "--max-remove-pct", "60")
    assert raised.returncode == 0, raised.stderr
    assert membership(partner) == users(0, 4_000)


def test_full_resync_resends_every_member_and_every_known_exit(
    partner: PartnerServer, sync: Any
) -> None:
    assert sync(0, 2_000).returncode == 0
    assert sync(500, 2_000).returncode == 0  # 500 exits become known exits
    before = received(partner)
    done = sync(500, 2_100, "--full-resync", "--json")
    assert done.returncode == 0, done.stderr
    sent = received(partner) - before
    adds = {(kind, value) for (kind, value, remove) in sent if not remove}
    removes = {(kind, value) for (kind, value, remove) in sent if remove}
    assert adds == users(500, 2_100)
    assert removes == users(0, 500)
    assert orjson.loads(done.stdout)["mirror"]["entries"] == 100
    after = sync(500, 2_100, "--json")  # and the next plain run is back to the diff
    assert orjson.loads(after.stdout)["sent_total"] == 0


def test_dry_run_shows_the_diff_and_changes_nothing(partner: PartnerServer, sync: Any) -> None:
    assert sync(0, 1_000).returncode == 0
    before = len(partner.requests)
    shown = sync(10, 1_020, "--dry-run")
    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())
    assert "mirror (diff against the last sync)" in text
    assert "20 entries, 10 exits, 990 unchanged" in text
    assert "first adds: user_ids:u01000, user_ids:u01001" in text
    assert "first removes: user_ids:u00000, user_ids:u00001" in text
    assert len(partner.requests) == before
    assert len(runs_json("list")) == 1  # dry runs are not recorded
    as_json = orjson.loads(sync(10, 1_020, "--dry-run", "--json").stdout)
    mirror = as_json["plan"]["mirror"]
    assert (mirror["entries"], mirror["exits"]) == (20, 10)
    assert mirror["sample_removes"][0] == ["user_ids", "u00000"]
    assert sync(10, 1_020, "--json").returncode == 0  # the snapshot was not touched
    assert membership(partner) == users(10, 1_020)


@pytest.fixture
def sandbox_env(braze_sandbox: Any, home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("COHORTSYNC_PARTNER_API_KEY", braze_sandbox.partner_api_key)
    braze_sandbox.load_users({"external_id": f"u{i:05}"} for i in range(100))
    yield braze_sandbox


def test_mirror_against_the_sandbox_spares_members_another_key_added(
    sandbox_env: Any, warehouse: Warehouse
) -> None:
    """Real membership in the Braze-compatible service; a foreign key's members stay."""
    sandbox = sandbox_env
    other_key = sandbox.generate_key()

    def export(key: str, *args: str) -> None:
        command = [
            "export",
            *("--endpoint", sandbox.base_url, "--data-import-key", key),
            *("--cohort-id", "vip", "--table", "t", *args),
        ]
        done = run_cli(*command, expect=None)
        assert done.returncode == 0, done.stderr

    warehouse(table_of(90, 100))
    export(other_key, "--operation", "add")  # someone else's members of the cohort
    warehouse(table_of(0, 50))
    export(sandbox.data_import_key, "--operation", "mirror")
    assert members(sandbox) == {f"u{i:05}" for i in [*range(0, 50), *range(90, 100)]}
    warehouse(table_of(25, 75))
    export(sandbox.data_import_key, "--operation", "mirror", "--max-remove-pct", "60")
    assert members(sandbox) == {f"u{i:05}" for i in [*range(25, 75), *range(90, 100)]}
    warehouse(table_of(0, 0))
    export(sandbox.data_import_key, "--operation", "mirror", "--allow-empty")
    assert members(sandbox) == {f"u{i:05}" for i in range(90, 100)}


def members(sandbox: Any) -> set[str]:
    if not any(cohort["cohort_id"] == "vip" for cohort in sandbox.cohorts()):
        return set()
    return {member["external_id"] for member in sandbox.members("vip")}


@pytest.fixture
def paced_sandbox(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A sandbox answering 3 requests a second: a run of 7 requests takes 2 s or more.

    Served as fast as it can, the sandbox takes the whole run before a test
    can see its first batch land; paced by the rate limit (which the exporter
    follows), the kill lands part-way however fast the machine is.
    """
    from cohortsync.braze.sandbox import running_sandbox

    with running_sandbox(f"sqlite:///{tmp_path / 'paced.db'}", rate_limit="3/second") as sandbox:
        monkeypatch.setenv("COHORTSYNC_PARTNER_API_KEY", sandbox.partner_api_key)
        sandbox.load_users({"external_id": f"u{i:05}"} for i in range(6_000))
        yield sandbox


def test_a_run_killed_mid_way_converges_in_the_sandbox(
    paced_sandbox: Any, warehouse: Warehouse, home: Path
) -> None:
    """SIGKILL while sending to the real Braze-compatible service, restart, real membership."""
    sandbox = paced_sandbox
    command = [
        "export",
        *("--endpoint", sandbox.base_url, "--data-import-key", sandbox.data_import_key),
        *("--cohort-id", "vip", "--table", "t", "--operation", "mirror", "--threads", "1"),
    ]
    warehouse(table_of(0, 6_000))
    process = subprocess.Popen(cohortsync_command(*command), stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: len(members(sandbox)) >= 1_000, what="a first batch in the cohort")
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL
    assert len(members(sandbox)) < 6_000  # killed part-way
    done = run_cli(*command, expect=None)
    assert done.returncode == 0, done.stderr
    assert members(sandbox) == {f"u{i:05}" for i in range(6_000)}
    assert [run["status"] for run in runs_json("list")] == ["succeeded"]
