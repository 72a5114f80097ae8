"""A run's stop token, requested from another thread: a cooperative stop at the next boundary.

Nothing is raised into the run's thread: reading stops at the next Arrow batch
(or its DuckDB statement is interrupted), sending stops handing out batches,
and a second request cancels the requests in flight. Each case is a real run
against the partner API server, on the real DuckDB warehouse file.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from cohortsync.catalog import runs
from cohortsync.catalog.db import open_catalog
from cohortsync.errors import RunInterrupted
from cohortsync.export.run import run_export
from cohortsync.export.spec import Source
from cohortsync.export.stopping import StopToken
from cohortsync.settings import Settings
from export.partner_server import PartnerServer, spec_for
from support import wait_for

Warehouse = Callable[[str], None]

# Far more rows than a test could wait for: only a stop ends reading them.
ENDLESS = "SELECT 'u' || i::VARCHAR AS user_ids FROM range(2000000000) t(i)"


@contextmanager
def requested_when(
    condition: Callable[[], bool], stop: StopToken, times: int = 1
) -> Iterator[list[float]]:
    """Request ``stop`` (``times`` times) from another thread once ``condition`` holds.

    Yields a list that gets the monotonic time of the last request.
    """
    when: list[float] = []

    def watch() -> None:
        # The test's own assertions say what went wrong if the condition never
        # came: the stop is requested regardless, so the run still ends.
        with suppress(AssertionError):
            wait_for(condition, 60, what="the moment to stop", interval=0.01)
        for _ in range(times):
            stop.request()
        when.append(time.monotonic())

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield when
    finally:
        watcher.join(70)


def the_run(home: Path) -> runs.RunRecord:
    catalog = open_catalog(Settings().catalog_path)
    try:
        [record] = runs.list_runs(catalog, limit=5)
        return record
    finally:
        catalog.dispose()


def staging_started(home: Path) -> Callable[[], bool]:
    """True once a run's staging database exists: the source is being read."""
    return lambda: any((home / "runs").glob("*/staging.duckdb"))


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(Source(sql=ENDLESS), id="read-inside-the-staging-database"),
        pytest.param(Source(sql=ENDLESS + " WHERE i >= ?", params=(0,)), id="arrow-stream"),
    ],
)
def test_a_run_stopped_while_reading_ends_interrupted_at_once_and_sends_nothing(
    partner: PartnerServer, warehouse: Warehouse, home: Path, source: Source
) -> None:
    warehouse("CREATE TABLE present AS SELECT 1 AS x")  # the warehouse file exists
    stop = StopToken()
    with (
        requested_when(staging_started(home), stop) as when,
        pytest.raises(
            RunInterrupted, match=r"^export run \S+ was interrupted by SIGTERM; "
        ) as info,
    ):
        run_export(spec_for(partner, source), stop=stop)
    stopped_after = time.monotonic() - when[0]
    assert stopped_after < 3, f"the run took {stopped_after:.1f} s to stop"
    assert partner.requests == []  # not even the cohort's name
    record = the_run(home)
    assert (record.status, record.error) == ("interrupted", "interrupted by SIGTERM")
    assert info.value.run_id == record.id  # the error names its run, as a declared attribute
    assert info.value.report is not None and info.value.report["status"] == "interrupted"


def test_a_stop_while_sending_finishes_the_batches_in_flight_and_resumes(
    partner: PartnerServer, warehouse: Warehouse, home: Path
) -> None:
    warehouse("CREATE TABLE people AS SELECT 'u' || i::VARCHAR AS user_ids FROM range(20000) t(i)")
    partner.delay = 0.05
    spec = spec_for(partner, Source(table="people"), threads=2)
    stop = StopToken()
    with (
        requested_when(lambda: len(partner.users_requests()) >= 3, stop),
        pytest.raises(RunInterrupted, match=r"acknowledged batches are recorded"),
    ):
        run_export(spec, stop=stop)
    record = the_run(home)
    assert record.status == "interrupted"
    catalog = open_catalog(Settings().catalog_path)
    try:
        acknowledged = runs.acknowledged_batches(catalog, record.id)
    finally:
        catalog.dispose()
    answered = len(partner.users_requests())
    assert len(acknowledged) == answered < 20  # every answered batch was recorded
    assert len(partner.users_requests(answered=False)) == answered  # none left unanswered
    report = run_export(spec)  # resumes the stopped run
    assert (report.run_id, report.status) == (record.id, "succeeded")
    values = [value for _kind, value, _remove in partner.identifiers()]
    assert len(values) == len(set(values)) == 20000  # each identifier sent once


def test_a_second_request_while_sending_cancels_the_requests_in_flight(
    partner: PartnerServer, warehouse: Warehouse, home: Path
) -> None:
    warehouse("CREATE TABLE people AS SELECT 'u' || i::VARCHAR AS user_ids FROM range(5000) t(i)")
    partner.delay = 20  # an answer that would never come in time
    stop = StopToken()
    with (
        requested_when(
            lambda: len(partner.users_requests(answered=False)) >= 1, stop, times=2
        ) as when,
        pytest.raises(RunInterrupted, match=r"was interrupted by SIGTERM"),
    ):
        run_export(spec_for(partner, Source(table="people")), stop=stop)
    assert time.monotonic() - when[0] < 5  # not after the 20 s answer
    record = the_run(home)
    assert record.status == "interrupted"
    catalog = open_catalog(Settings().catalog_path)
    try:
        assert runs.acknowledged_batches(catalog, record.id) == set()  # nothing was answered
    finally:
        catalog.dispose()
