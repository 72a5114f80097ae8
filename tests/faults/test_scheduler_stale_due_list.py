"""Two schedulers: one reads the due jobs, the other runs one of them meanwhile.

A scheduler reads the due jobs once per tick, then takes each job's lease in
turn. Another scheduler may take, run and release one of those jobs in
between: the lease is free again when the first one reaches it, yet the
slot it read as due has been consumed since. Both schedulers are real
(:class:`~cohortsync.scheduler.Scheduler` over one catalog); the interleaving
is made exact by a SQLAlchemy event on the first scheduler's engine, which
runs the second scheduler's whole tick just before the first one takes the
lease. No part is replaced.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scheduler"))

from scheduler_helpers import Clock, Probe

from cohortsync.catalog import leases, schedules
from cohortsync.catalog.db import open_catalog
from cohortsync.scheduler import Scheduler, register_job_kind
from cohortsync.settings import Settings

TAKES_THE_LEASE = "UPDATE job_leases SET job = job WHERE 0"


def test_a_job_run_elsewhere_since_the_due_list_was_read_is_not_run_again(home: Path) -> None:
    probe = Probe()
    register_job_kind("probe", probe)
    clock = Clock("2026-03-02T12:00:00")
    settings = Settings()
    catalog = open_catalog(settings.catalog_path)
    schedules.set_schedule(catalog, "probe", "nightly", "0 3 * * *", now=clock())
    clock.set("2026-03-03T03:00:05")  # one slot due

    first, second = Scheduler(settings, clock=clock), Scheduler(settings, clock=clock)
    second_ran: list[Any] = []

    def meanwhile(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith(TAKES_THE_LEASE) and not second_ran:
            second_ran.extend(second.run_once())  # take, run, release: all before `first` goes on

    sa.event.listen(first.engine, "before_cursor_execute", meanwhile)
    try:
        started = first.tick()
        for future in started:
            future.result(timeout=10)
    finally:
        sa.event.remove(first.engine, "before_cursor_execute", meanwhile)
        first.close()
        second.close()
    assert [outcome.job for outcome in second_ran] == ["probe:nightly"]
    assert started == []  # the slot was consumed since the list was read
    assert probe.count("nightly") == 1
    assert leases.get_lease(catalog, "probe:nightly") is None
    stored = schedules.get_schedule(catalog, "probe", "nightly")
    assert stored is not None and stored.last_slot == datetime(2026, 3, 3, 3, tzinfo=UTC)
    catalog.dispose()
