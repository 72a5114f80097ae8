"""Errors carry their context as declared attributes: the run, its report, the numbers."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cohortsync.catalog import runs
from cohortsync.catalog.db import open_catalog
from cohortsync.errors import (
    CohortBusy,
    CohortsyncError,
    DestinationRefused,
    MirrorGuardRefused,
    RunInterrupted,
    SourceError,
)
from cohortsync.export.locks import CohortLock
from cohortsync.export.mirror import MirrorPlan, check_guards
from cohortsync.export.run import run_export
from cohortsync.export.spec import Destination, ExportSpec, MirrorOptions, Source
from cohortsync.export.stopping import StopToken
from cohortsync.identity import CohortKey
from cohortsync.settings import Settings
from export.partner_server import CLIENT_SECRET, PartnerServer

Warehouse = Callable[[str], None]


def mirror_plan(result: int, previous: int, exits: int) -> MirrorPlan:
    return MirrorPlan(
        first_run=False,
        full_resync=False,
        result_members=result,
        previous_members=previous,
        entries=0,
        exits=exits,
        adds=0,
        removes=exits,
        new_known_exits=exits,
    )


def test_for_run_names_the_run_once_and_keeps_the_innermost() -> None:
    error = SourceError("the query failed")
    assert (error.run_id, error.report) == (None, None)
    assert error.for_run("run-1", {"status": "failed"}) is error
    error.for_run("run-2")
    assert (error.run_id, error.report) == ("run-1", {"status": "failed"})


def test_a_tripped_removal_guard_is_its_own_class_with_its_numbers() -> None:
    guards = MirrorOptions(max_remove_pct=10)
    with pytest.raises(
        MirrorGuardRefused,
        match=r"^mirror of vip would remove 30 of its 100 tracked members \(30\.0%\), "
        r"more than --max-remove-pct 10 \(check the query, or rerun with --max-remove-pct 30 ",
    ) as info:
        check_guards(mirror_plan(result=70, previous=100, exits=30), guards, cohort="vip")
    error = info.value
    assert isinstance(error, CohortsyncError) and error.exit_code == 1
    assert (error.result_members, error.previous_members, error.exits) == (70, 100, 30)


def test_an_empty_result_guard_is_a_mirror_guard_refusal() -> None:
    with pytest.raises(
        MirrorGuardRefused, match=r"^mirror of vip: the query returned no identifiers, so the sync "
    ) as info:
        check_guards(mirror_plan(result=0, previous=5, exits=5), MirrorOptions(), cohort="vip")
    assert (info.value.result_members, info.value.exits) == (0, 5)


def test_a_busy_cohort_names_the_run_holding_it(home: Path) -> None:
    key = CohortKey.for_destination("https://rest.iad-01.braze.com", "dik", "treasuredata", "vip")
    holder = CohortLock(home, key)
    holder.acquire(run_id="run-holding")
    try:
        with pytest.raises(
            CohortBusy,
            match=rf"^another run of cohort 'vip' \(treasuredata at https://rest\.iad-01\.braze\.com\)"
            rf" is in progress \(run run-holding, pid {os.getpid()}, running since .*\); "
            r"waited 0\.1 s for it \(wait for it to finish, or raise --lock-timeout; "
            r"'cohortsync runs show run-holding' shows its progress\)$",
        ) as info:
            CohortLock(home, key).acquire(timeout=0.1)
        assert info.value.exit_code == 1
        assert info.value.holder_run_id == "run-holding"
        assert info.value.cohort == key.describe()
    finally:
        holder.release()


def test_a_stop_while_waiting_for_the_lock_ends_the_wait_at_once(home: Path) -> None:
    key = CohortKey.for_destination("https://rest.iad-01.braze.com", "dik", "treasuredata", "vip")
    holder = CohortLock(home, key)
    holder.acquire()
    stop = StopToken()
    threading.Timer(0.2, stop.request).start()
    started = time.monotonic()
    try:
        with pytest.raises(RunInterrupted, match=r"^waiting for cohort 'vip' .* was stopped by "):
            CohortLock(home, key).acquire(timeout=60, stop=stop)
    finally:
        holder.release()
    assert time.monotonic() - started < 5


def test_a_failed_export_names_its_run_and_report(
    partner: PartnerServer, warehouse: Warehouse, home: Path
) -> None:
    warehouse("CREATE TABLE people AS SELECT 'u' || i::VARCHAR AS user_ids FROM range(10) t(i)")
    partner.script("users", 400, "bad cohort")
    destination = Destination(
        endpoint=partner.url, data_import_key=CLIENT_SECRET, partner_api_key=partner.partner_api_key
    )
    spec = ExportSpec(source=Source(table="people"), destination=destination, cohort_id="c")
    with pytest.raises(DestinationRefused, match=r"bad cohort") as info:
        run_export(spec)
    catalog = open_catalog(Settings().catalog_path)
    try:
        [record] = runs.list_runs(catalog, limit=5)
    finally:
        catalog.dispose()
    assert info.value.run_id == record.id
    assert info.value.report is not None
    assert info.value.report == record.report
    assert info.value.report["status"] == "failed"
