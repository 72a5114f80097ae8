"""Campaign benchmark: reachable users of a segment, and a launch's messages per second.

Builds a SQLite store with 1,000,000 users (each with a ``first_name``
profile field) and one cohort holding all of them, by bulk inserts through the
store's tables (the partner API is measured by bench/receiver.py), and a
segment on that cohort. Then measures, as the dashboard and the scheduler
run them:

(a) the segment's reachable-users count (``campaigns.audience_count``),
    target under 1 s;
(b) launching a campaign to it whose message has a ``{{${first_name}}}``
    placeholder (``campaigns.launch_campaign``): messages written to the
    outbox per second, target 50,000 or more.

Prints both with PASS/FAIL, and the process's peak memory before and after
the launch (``VmHWM``: the launch must not grow with the audience).

    .venv/bin/python bench/dashboard.py [--users 1000000] [--db URL]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).parent))

from cohortsync.braze import admin, campaigns
from cohortsync.braze.sandbox import provision
from cohortsync.braze.store import (
    Store,
    campaign_sends,
    cohort_members,
    cohorts,
    id_counters,
    open_store,
    users,
    utc_now,
)
from measured import high_water_mb

COUNT_TARGET_SECONDS = 1.0
LAUNCH_TARGET_PER_SECOND = 50_000
CHUNK = 50_000
NAMES = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken")


def _chunks(count: int, make: object) -> Iterator[list[dict[str, object]]]:
    for start in range(1, count + 1, CHUNK):
        yield [make(i) for i in range(start, min(start + CHUNK, count + 1))]  # type: ignore[operator]


def build(store: Store, count: int) -> tuple[int, float]:
    """A workspace of ``count`` users, all in cohort ``everyone``; its id and seconds taken."""
    started = time.perf_counter()
    sandbox = provision(store, workspace_name=f"bench-{os.getpid()}")
    workspace = sandbox.workspace
    now = utc_now()
    with store.write() as conn:
        for rows in _chunks(
            count,
            lambda i: {
                "id": i,
                "workspace_id": workspace,
                "external_id": f"user-{i}",
                # first_name is a Braze profile field, kept apart from custom attributes.
                "standard": orjson.dumps({"first_name": NAMES[i % len(NAMES)]}).decode(),
                "created_at": now,
            },
        ):
            conn.execute(sa.insert(users), rows)
        conn.execute(
            sa.update(id_counters).where(id_counters.c.name == "users").values(next_value=count + 1)
        )
        partner_id = conn.execute(sa.text("SELECT id FROM braze_partners")).scalar_one()
        cohort_pk = conn.execute(
            sa.insert(cohorts)
            .values(
                workspace_id=workspace,
                partner_id=partner_id,
                cohort_id="everyone",
                name="Everyone",
                created_at=now,
                updated_at=now,
                locked=False,
            )
            .returning(cohorts.c.id)
        ).scalar_one()
        for rows in _chunks(count, lambda i: {"cohort_pk": cohort_pk, "user_id": i}):
            conn.execute(sa.insert(cohort_members), rows)
    admin.create_segment(store, "Everyone", workspace=workspace, includes_cohorts=["everyone"])
    return workspace, time.perf_counter() - started


def verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--db", help="store URL (default: a fresh SQLite file)")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(options.db or f"sqlite:///{tmp}/braze.db")
        workspace, build_seconds = build(store, options.users)
        print(f"store: {options.users:,} users in one cohort, built in {build_seconds:.1f} s")

        started = time.perf_counter()
        reachable = campaigns.audience_count(store, workspace=workspace, segments=["Everyone"])
        count_seconds = time.perf_counter() - started
        started = time.perf_counter()
        campaigns.audience_count(store, workspace=workspace, segments=["Everyone"])
        warm_seconds = time.perf_counter() - started
        assert reachable == options.users, reachable
        print(
            f"(a) reachable users of the segment: {reachable:,} in {count_seconds:.3f} s "
            f"(again: {warm_seconds:.3f} s; target under {COUNT_TARGET_SECONDS:g} s): "
            f"{verdict(max(count_seconds, warm_seconds) < COUNT_TARGET_SECONDS)}"
        )

        campaigns.create_campaign(
            store,
            "Hello",
            workspace=workspace,
            channel="email",
            message="Hi {{${first_name} | default: 'there'}}, your December picks are here.",
            segments=["Everyone"],
        )
        before_mb = high_water_mb(os.getpid())
        started = time.perf_counter()
        launched = campaigns.launch_campaign(store, "Hello", workspace=workspace)
        launch_seconds = time.perf_counter() - started
        after_mb = high_water_mb(os.getpid())
        rate = launched["messages"] / launch_seconds
        with store.read() as conn:
            written = conn.execute(
                sa.select(sa.func.count()).where(
                    campaign_sends.c.launch_id == launched["launch_id"]
                )
            ).scalar_one()
            sample = conn.execute(
                sa.select(campaign_sends.c.message)
                .where(campaign_sends.c.launch_id == launched["launch_id"])
                .limit(1)
            ).scalar_one()
        assert written == options.users, written
        print(
            f"(b) launch: {launched['messages']:,} messages into the outbox in "
            f"{launch_seconds:.2f} s: {rate:,.0f} messages/s "
            f"(target {LAUNCH_TARGET_PER_SECOND:,}/s): {verdict(rate >= LAUNCH_TARGET_PER_SECOND)}"
        )
        print(f"    first message: {sample!r}")
        print(
            f"peak memory (VmHWM) of this process: {before_mb:,.0f} MB before the launch, "
            f"{after_mb:,.0f} MB after it"
        )
        store.close()


if __name__ == "__main__":
    main()
