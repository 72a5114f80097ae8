"""One cohort identity: the lock, the snapshots and the run history key a cohort alike.

Two spellings of one endpoint (case, trailing slash, default port) are one
cohort: they share one lock, one snapshot directory and one run history, so an
export through one spelling sees (and continues) the unfinished run of the other.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from runs_helpers import membership, received, runs_json

from cohortsync.catalog import runs as history
from cohortsync.catalog.db import open_catalog
from cohortsync.errors import CohortsyncError
from cohortsync.export.locks import CohortLock
from cohortsync.export.resume import choose_run
from cohortsync.export.snapshots import SnapshotStore
from cohortsync.export.spec import Destination, ExportSpec, Source
from cohortsync.identity import CohortKey, normalize_endpoint
from cohortsync.settings import Settings
from export.partner_server import CLIENT_SECRET, PARTNER_API_KEY, PartnerServer
from support import run_cli, wait_for

Spawn = Callable[[list[str]], "subprocess.Popen[str]"]


@pytest.mark.parametrize(
    ("spelled", "canonical"),
    [
        ("https://REST.iad-01.braze.com", "https://rest.iad-01.braze.com"),
        ("HTTPS://rest.iad-01.braze.com/", "https://rest.iad-01.braze.com"),
        ("https://rest.iad-01.braze.com:443", "https://rest.iad-01.braze.com"),
        ("http://Braze.local:80/", "http://braze.local"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("https://rest.iad-01.braze.com:80", "https://rest.iad-01.braze.com:80"),
        ("https://proxy.example/Braze/", "https://proxy.example/Braze"),
        ("http://[::1]:80/", "http://[::1]"),
        (" https://rest.iad-01.braze.com// ", "https://rest.iad-01.braze.com"),
    ],
)
def test_endpoint_normalisation_rules(spelled: str, canonical: str) -> None:
    assert normalize_endpoint(spelled) == canonical


def test_spellings_of_one_endpoint_are_one_key_everywhere(tmp_path: Path) -> None:
    one = CohortKey.for_destination("https://REST.iad-01.braze.com/", "k", "td", "vip")
    other = CohortKey.for_destination("https://rest.iad-01.braze.com:443", "k", "td", "vip")
    assert one == other
    assert one.slug == other.slug and one.history_key == other.history_key
    assert history.cohort_key("https://REST.iad-01.braze.com", "td", "vip", "k") == (
        one.history_key
    )
    assert SnapshotStore(tmp_path, one).directory == SnapshotStore(tmp_path, other).directory
    assert CohortLock(tmp_path, one).path == CohortLock(tmp_path, other).path
    # The partner, the cohort id and the key are exact: each of these is another cohort.
    assert (
        len(
            {
                one,
                CohortKey.for_destination("https://rest.iad-01.braze.com", "k", "td", "VIP"),
                CohortKey.for_destination("https://rest.iad-01.braze.com", "k", "TD", "vip"),
                CohortKey.for_destination("https://rest.iad-01.braze.com", "K", "td", "vip"),
            }
        )
        == 4
    )


def test_one_spelling_waits_for_the_lock_of_the_other(tmp_path: Path) -> None:
    held = CohortLock(tmp_path, CohortKey.for_destination("https://REST.x.com", "k", "td", "vip"))
    held.acquire(timeout=0, run_id="20261201T000000-aaaa")
    try:
        other = CohortLock(
            tmp_path, CohortKey.for_destination("https://rest.x.com/", "k", "td", "vip")
        )
        with pytest.raises(CohortsyncError, match="another run of cohort 'vip'"):
            other.acquire(timeout=0)
    finally:
        held.release()


def test_a_snapshot_kept_under_the_default_port_is_moved_to_the_one_key(tmp_path: Path) -> None:
    key = CohortKey.for_destination("https://rest.x.com", "k", "td", "vip")
    [legacy] = key.legacy_slugs  # what releases before one identity named it
    old = tmp_path / "snapshots" / legacy
    (old / "gen-1").mkdir(parents=True)
    (old / "CURRENT").write_text("gen-1")
    store = SnapshotStore(
        tmp_path, CohortKey.for_destination("https://REST.x.com:443/", "k", "td", "vip")
    )
    assert store.directory.name == key.slug
    assert (store.directory / "CURRENT").read_text() == "gen-1"
    assert not old.exists()


def spec_for(endpoint: str, **extra: str) -> ExportSpec:
    destination = Destination(
        endpoint=endpoint, data_import_key=CLIENT_SECRET, partner_api_key=PARTNER_API_KEY
    )
    return ExportSpec(
        source=Source(table="t"),
        destination=destination,
        cohort_id="vip",
        operation="mirror",
        threads=1,
        **extra,  # type: ignore[arg-type]
    )


def export_through(endpoint: str, *args: str) -> list[str]:
    return [
        "export",
        "--endpoint",
        endpoint,
        "--data-import-key",
        CLIENT_SECRET,
        "--cohort-id",
        "vip",
        "--table",
        "t",
        "--operation",
        "mirror",
        *args,
    ]


def test_exports_through_two_spellings_share_one_lock_snapshot_and_run_history(
    home: Path,
    partner: PartnerServer,
    warehouse: Callable[[str], None],
    spawn: Spawn,
) -> None:
    # Only the host's case and a trailing slash differ (the scheme must be written lower-case).
    lower = partner.url.replace("127.0.0.1", "localhost")
    shouted = lower.replace("localhost", "LocalHost") + "/"
    warehouse(
        "CREATE TABLE t AS SELECT 'u' || lpad(i::VARCHAR, 6, '0') AS user_ids "
        "FROM range(12000) r(i)"
    )
    partner.delay = 0.15
    process = spawn(export_through(shouted, "--threads", "1"))
    wait_for(lambda: len(partner.users_requests()) >= 2, what="2 acknowledged requests")
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 6, stderr
    [stopped] = runs_json("list", "--cohort", "vip")
    assert stopped["status"] == "interrupted"

    # The other spelling's export sees that run: as abandoned when its job differs,
    # as the one to resume when named or when the job is the same.
    catalog = open_catalog(Settings().catalog_path)
    try:
        changed = choose_run(catalog, home, spec_for(lower, cohort_name="VIP"))
        assert [run.id for run in changed.abandoned] == [stopped["id"]]
        assert changed.resume is None
        named = choose_run(catalog, home, spec_for(lower), resume_run_id=stopped["id"])
        assert named.resume is not None and named.resume.id == stopped["id"]
        same = choose_run(catalog, home, spec_for(lower))
        assert same.resume is not None and same.resume.id == stopped["id"]
    finally:
        catalog.dispose()

    partner.delay = 0
    done = run_cli(*export_through(lower, "--json"), expect=None)
    assert done.returncode == 0, done.stderr
    [run] = runs_json("list", "--cohort", "vip")
    assert run["id"] == stopped["id"] and run["status"] == "succeeded"  # one history, continued
    assert membership(partner) == {("user_ids", f"u{i:06}") for i in range(12000)}
    assert max(received(partner).values()) == 1  # no acknowledged batch was sent again
    assert len(list((home / "snapshots").iterdir())) == 1
    assert len(list((home / "locks").glob("*.lock"))) == 1

    # A later mirror run through the first spelling diffs against that one snapshot.
    again = run_cli(*export_through(shouted, "--json"), expect=None)
    assert again.returncode == 0, again.stderr
    assert orjson.loads(again.stdout)["mirror"]["entries"] == 0
    assert len(runs_json("list", "--cohort", "vip")) == 2
    assert len(list((home / "snapshots").iterdir())) == 1
