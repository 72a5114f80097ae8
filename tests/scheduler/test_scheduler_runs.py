"""The scheduler over a real catalog, with a controlled clock and the probe job kind."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import timedelta

import pytest
from scheduler_helpers import Clock, Probe, WebhookReceiver

from cohortsync.catalog import leases, schedules
from cohortsync.catalog import runs as run_history
from cohortsync.catalog.db import open_catalog
from cohortsync.jobs.kinds import JobContext, JobResult
from cohortsync.scheduler import Scheduler, register_job_kind
from cohortsync.settings import Settings
from support import unused_port, wait_for

TTL = timedelta(minutes=10)


def schedule(settings: Settings, name: str, cron: str, clock: Clock, tz: str = "UTC") -> None:
    catalog = open_catalog(settings.catalog_path)
    schedules.set_schedule(catalog, "probe", name, cron, tz, now=clock())
    catalog.dispose()


def test_due_and_not_due(settings: Settings, clock: Clock, probe: Probe) -> None:
    schedule(settings, "daily", "0 6 * * *", clock)
    with Scheduler(settings, clock=clock) as scheduler:
        assert scheduler.run_once() == []  # scheduled at 12:00: today's 06:00 is not owed
        clock.set("2026-03-03T05:59:59")
        assert scheduler.run_once() == []
        clock.set("2026-03-03T06:00:00")
        [outcome] = scheduler.run_once()
        assert outcome.job == "probe:daily"
        assert outcome.result.status == "succeeded"
        clock.set("2026-03-03T06:30:00")
        assert scheduler.run_once() == []
    assert probe.count("daily") == 1
    stored = schedules.get_schedule(open_catalog(settings.catalog_path), "probe", "daily")
    assert stored is not None
    assert stored.last_slot == clock.now.replace(minute=0)
    assert stored.last_status == "succeeded"


def test_missed_while_down_runs_once(settings: Settings, clock: Clock, probe: Probe) -> None:
    schedule(settings, "hourly", "0 * * * *", clock)
    with Scheduler(settings, clock=clock) as scheduler:
        clock.advance(days=3, minutes=17)  # 72 slots missed while the scheduler was down
        [outcome] = scheduler.run_once()
        assert outcome.slot == clock.now.replace(minute=0)
        assert scheduler.run_once() == []
        clock.advance(hours=1)
        assert len(scheduler.run_once()) == 1
    assert probe.count("hourly") == 2


def test_time_zone_of_a_schedule(settings: Settings, clock: Clock, probe: Probe) -> None:
    schedule(settings, "paris", "30 9 * * *", clock, tz="Europe/Paris")  # 08:30 UTC in March
    clock.set("2026-03-03T08:29:00")
    with Scheduler(settings, clock=clock) as scheduler:
        assert scheduler.run_once() == []
        clock.set("2026-03-03T08:30:00")
        assert len(scheduler.run_once()) == 1


def test_a_held_lease_blocks_the_job_until_released(
    settings: Settings, clock: Clock, probe: Probe
) -> None:
    schedule(settings, "q", "*/5 * * * *", clock)
    catalog = open_catalog(settings.catalog_path)
    other = leases.acquire_lease(catalog, "probe:q", "manual-run", now=clock(), ttl=TTL)
    assert other is not None
    clock.advance(minutes=5)
    with Scheduler(settings, clock=clock) as scheduler:
        assert scheduler.run_once() == []  # someone else runs it: left due, not consumed
        assert probe.count("q") == 0
        leases.release_lease(catalog, other)
        [outcome] = scheduler.run_once()
        assert outcome.result.status == "succeeded"
    assert probe.count("q") == 1
    assert leases.get_lease(catalog, "probe:q") is None  # released after the run


def test_an_expired_lease_or_a_dead_holder_is_taken_over(
    settings: Settings, clock: Clock, probe: Probe
) -> None:
    schedule(settings, "a", "*/5 * * * *", clock)
    schedule(settings, "b", "*/5 * * * *", clock)
    catalog = open_catalog(settings.catalog_path)
    leases.acquire_lease(catalog, "probe:a", "crashed", now=clock() - TTL * 2, ttl=TTL)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    leases.acquire_lease(catalog, "probe:b", "killed", now=clock(), ttl=TTL)
    with catalog.begin() as conn:
        conn.execute(
            leases.job_leases.update()
            .where(leases.job_leases.c.job == "probe:b")
            .values(pid=int(dead.stdout))
        )
    clock.advance(minutes=5)
    with Scheduler(settings, clock=clock) as scheduler:
        assert sorted(o.job for o in scheduler.run_once()) == ["probe:a", "probe:b"]


def test_a_job_a_dead_scheduler_left_runs_again_at_once_and_only_once(
    settings: Settings, clock: Clock, probe: Probe
) -> None:
    """Its slot was consumed by the dead scheduler: it is due again without a new slot,
    once for the first live scheduler that takes the lease over, and never for a second."""
    schedule(settings, "left", "*/5 * * * *", clock)
    schedule(settings, "manual", "*/5 * * * *", clock)
    clock.advance(minutes=5)
    catalog = open_catalog(settings.catalog_path)
    for job in ("probe:left", "probe:manual"):
        [due] = [s for s in schedules.list_schedules(catalog) if s.job == job]
        assert schedules.consume_slot(catalog, job, clock(), seen=due.last_slot)
    # Both holders died mid-run (expired leases); only a scheduler's run is continued.
    past = clock() - TTL * 2
    leases.acquire_lease(catalog, "probe:left", "scheduler@gone:1/x", now=past, ttl=TTL)
    leases.acquire_lease(catalog, "probe:manual", "query-run@gone:2/y", now=past, ttl=TTL)
    [abandoned] = leases.abandoned_leases(catalog, "scheduler", now=clock())
    assert abandoned.job == "probe:left"

    with Scheduler(settings, clock=clock) as scheduler:
        assert [o.job for o in scheduler.run_once()] == ["probe:left"]
        assert scheduler.run_once() == []  # done: not due again until its next slot
    assert probe.count("left") == 1 and probe.count("manual") == 0
    assert leases.get_lease(catalog, "probe:left") is None
    # A scheduler that read the abandoned lease before another took it over and finished
    # does not run the job a second time.
    assert (
        leases.acquire_lease(
            catalog, "probe:left", "late", now=clock(), ttl=TTL, replacing=abandoned
        )
        is None
    )


def test_two_schedulers_never_run_the_same_job_at_once(
    settings: Settings, clock: Clock, probe: Probe
) -> None:
    schedule(settings, "slow", "*/5 * * * *", clock)
    clock.advance(minutes=5)
    first, second = Scheduler(settings, clock=clock), Scheduler(settings, clock=clock)
    barrier = threading.Barrier(2)
    started: list[int] = []

    def tick(scheduler: Scheduler) -> None:
        barrier.wait()
        started.append(len(scheduler.tick()))

    threads = [threading.Thread(target=tick, args=(s,)) for s in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(started) == [0, 1]
    wait_for(lambda: probe.count("slow") == 1, 5, what="the slow job to start")
    clock.advance(minutes=5)  # the next slot comes while the first run still works
    assert first.tick() == [] and second.tick() == []
    probe.release.set()
    first.drain()
    second.drain()
    # the slot that came during the run is owed once, now that the job is free
    assert len(first.run_once()) + len(second.run_once()) == 1
    first.close()
    second.close()
    assert probe.count("slow") == 2
    assert probe.max_active["slow"] == 1


def test_a_failure_is_recorded_in_the_run_history(
    settings: Settings, clock: Clock, probe: Probe
) -> None:
    schedule(settings, "fail-nightly", "0 2 * * *", clock)
    clock.set("2026-03-03T02:00:00")
    with Scheduler(settings, clock=clock) as scheduler:
        [outcome] = scheduler.run_once()
    assert outcome.result.status == "failed"
    assert outcome.result.error is not None and "table missing" in outcome.result.error
    catalog = open_catalog(settings.catalog_path)
    record = run_history.get_run(catalog, outcome.result.run_id or "")
    assert record.status == "failed"
    assert record.job["job"] == "probe:fail-nightly"
    assert "the query of fail-nightly failed: table missing" in (record.error or "")
    stored = schedules.get_schedule(catalog, "probe", "fail-nightly")
    assert stored is not None and stored.last_status == "failed"
    assert stored.last_run_id == record.id


def test_a_failure_posts_the_report_to_the_webhook(
    settings: Settings, clock: Clock, probe: Probe, webhook: WebhookReceiver
) -> None:
    schedule(settings, "fail-hook", "0 * * * *", clock)
    schedule(settings, "fine", "0 * * * *", clock)
    clock.advance(hours=1)
    with Scheduler(settings, clock=clock, webhook_url=webhook.url) as scheduler:
        outcomes = {o.job: o for o in scheduler.run_once()}
    assert outcomes["probe:fail-hook"].webhook_sent is True
    assert outcomes["probe:fine"].webhook_sent is None  # successes are not posted
    [body] = webhook.bodies
    assert body["event"] == "run.failed"
    assert body["job"] == "probe:fail-hook"
    assert body["status"] == "failed"
    assert body["run_id"] == outcomes["probe:fail-hook"].result.run_id
    assert "table missing" in str(body["error"])


@pytest.mark.parametrize("status", [500, None])
def test_a_failing_webhook_is_logged_not_fatal(
    settings: Settings,
    clock: Clock,
    probe: Probe,
    caplog: pytest.LogCaptureFixture,
    status: int | None,
) -> None:
    receiver = WebhookReceiver(status=status or 200)
    url = receiver.url
    with ExitStack() as held:
        if status is None:  # nothing listens there at all, for as long as the run lasts
            receiver.close()
            url = f"http://127.0.0.1:{held.enter_context(unused_port())}/hook"
        schedule(settings, "fail-x", "0 * * * *", clock)
        clock.advance(hours=1)
        with Scheduler(settings, clock=clock, webhook_url=url, webhook_timeout=2) as scheduler:
            [outcome] = scheduler.run_once()
    if status is not None:
        receiver.close()
        assert len(receiver.bodies) == 1
    assert outcome.result.status == "failed"
    assert outcome.webhook_sent is False
    assert "webhook" in caplog.text
    catalog = open_catalog(settings.catalog_path)
    assert run_history.get_run(catalog, outcome.result.run_id or "").status == "failed"


class StoppableProbe(Probe):
    """The probe whose slow jobs honour their stop token, as every job runner must.

    The scheduler's stop raises nothing into a job's thread: a job ends where it
    looks at its token (an export does at every stage and batch).
    """

    def __call__(self, context: JobContext) -> JobResult:
        if not context.name.startswith("slow"):
            return super().__call__(context)
        with self.lock:
            self.calls.append(context.name)
        while not self.release.wait(0.01):
            context.stop.check()
        return JobResult("succeeded", None, None, {"job": context.job})


@pytest.fixture
def stoppable_probe() -> Iterator[StoppableProbe]:
    probe = StoppableProbe()
    register_job_kind("probe", probe)
    yield probe
    probe.release.set()


def test_stop_takes_no_new_jobs_and_interrupts_running_ones(
    settings: Settings, clock: Clock, stoppable_probe: StoppableProbe
) -> None:
    probe = stoppable_probe
    schedule(settings, "slow-stop", "*/5 * * * *", clock)
    schedule(settings, "later", "0 * * * *", clock)
    clock.advance(minutes=5)
    scheduler = Scheduler(settings, clock=clock)
    [future] = scheduler.tick()
    wait_for(lambda: probe.count("slow-stop") == 1, 5, what="the slow job to start")
    scheduler.stop()
    clock.advance(hours=1)
    assert scheduler.tick() == []  # stopping: "later" is due but not taken
    [outcome] = scheduler.drain()
    scheduler.close()
    assert future.result() is outcome
    assert outcome.result.status == "interrupted"
    assert probe.count("later") == 0
    catalog = open_catalog(settings.catalog_path)
    assert leases.get_lease(catalog, "probe:slow-stop") is None
    record = run_history.get_run(catalog, outcome.result.run_id or "")
    assert record.status == "interrupted"
    # the interrupted slot was handed back: the next scheduler runs it (once) with "later"
    probe.release.set()
    with Scheduler(settings, clock=clock) as restarted:
        outcomes = restarted.run_once()
    assert sorted(o.job for o in outcomes) == ["probe:later", "probe:slow-stop"]
    assert all(o.result.status == "succeeded" for o in outcomes)


def test_once_runs_every_due_job_within_the_parallel_limit(
    settings: Settings, clock: Clock, probe: Probe
) -> None:
    for name in ("a", "b", "c"):
        schedule(settings, name, "0 * * * *", clock)
    clock.advance(hours=1)
    with Scheduler(settings, clock=clock, max_parallel=1) as scheduler:
        outcomes = scheduler.run_once()
    assert sorted(o.job for o in outcomes) == ["probe:a", "probe:b", "probe:c"]
    assert probe.max_total == 1
    with Scheduler(settings, clock=clock, max_parallel=3) as scheduler:
        clock.advance(hours=1)
        assert len(scheduler.run_once()) == 3
    assert probe.max_total > 1


def test_a_held_lease_is_renewed_while_its_run_works(settings: Settings) -> None:
    from cohortsync.errors import ConfigError
    from cohortsync.scheduler import held_lease, utc_now

    catalog = open_catalog(settings.catalog_path)
    # Renewed every third of the TTL: a renewal may come 2/3 s late (a loaded machine, a slow
    # fsync) before the lease lapses, and the sleep still outlasts two TTLs.
    ttl = timedelta(seconds=1)
    with held_lease(catalog, "probe:long", "runner-1", ttl=ttl) as lease:
        time.sleep(2.5)  # well past the first expiry: only renewal keeps it
        current = leases.get_lease(catalog, "probe:long")
        assert current is not None and current.owner == "runner-1"
        assert current.expires_at > lease.expires_at
        assert (
            leases.acquire_lease(catalog, "probe:long", "runner-2", now=utc_now(), ttl=ttl) is None
        )
        with (
            pytest.raises(ConfigError, match=r"job probe:long is already running \(runner-1"),
            held_lease(catalog, "probe:long", "runner-3"),
        ):
            pass
    assert leases.get_lease(catalog, "probe:long") is None


def test_a_hanging_webhook_is_cut_short(settings: Settings, clock: Clock, probe: Probe) -> None:
    receiver = WebhookReceiver(delay=5)
    schedule(settings, "fail-slow-hook", "0 * * * *", clock)
    clock.advance(hours=1)
    started = time.monotonic()
    with Scheduler(settings, clock=clock, webhook_url=receiver.url, webhook_timeout=0.5) as sched:
        [outcome] = sched.run_once()
    assert time.monotonic() - started < 4
    assert outcome.result.status == "failed"
    assert outcome.webhook_sent is False
    receiver.close()


RACE = """
import sys, time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from cohortsync.catalog import leases
from cohortsync.catalog.db import open_catalog
catalog = open_catalog(Path(sys.argv[1]))
start = float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))
lease = leases.acquire_lease(
    catalog, "probe:race", sys.argv[3], now=datetime.now(UTC), ttl=timedelta(minutes=5)
)
print("won" if lease else "lost")
time.sleep(0.5)  # keep the pid alive while the others try
"""


def test_racing_processes_get_one_lease(settings: Settings) -> None:
    open_catalog(settings.catalog_path).dispose()  # create the tables first
    start = time.time() + 1.5
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACE, str(settings.catalog_path), str(start), f"racer-{n}"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(6)
    ]
    results = sorted(racer.communicate(timeout=60)[0].strip() for racer in racers)
    assert results == ["lost"] * 5 + ["won"]
