"""The in-warehouse mirror under stops, abandoned runs and SIGKILL, on PostgreSQL.

The properties are the local mirror's (tests/mirror/test_mirror_properties.py)
with the diff and the snapshot inside PostgreSQL: random result sequences with
stops, resumes and abandoned runs converge, and no foreign member is removed.
The kill test runs real ``cohortsync`` processes against a real HTTP server.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections.abc import Callable

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cohortsync.export.spec import Source
from export.partner_server import PartnerServer
from runs.runs_helpers import export_args, membership, partway, received
from support import run_cli, wait_for
from support.mirror_model import KINDS, Step, identifiers, steps
from warehouse_mirror.conftest import PostgresSource
from warehouse_mirror.sequence import play_in_warehouse

Spawn = Callable[[list[str]], "subprocess.Popen[str]"]
OURS = identifiers("v", 6)
FOREIGN = identifiers("foreign", 3)


def load_result(url: str, table: str, result: frozenset[tuple[str, str]]) -> None:
    """``table`` holds one row per identifier, in the column of its kind."""
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f"DROP TABLE IF EXISTS {table}")
        connection.execute(f"CREATE TABLE {table} (user_ids text, device_ids text, email text)")
        with connection.cursor().copy(f"COPY {table} FROM STDIN") as copy:
            for kind, value in sorted(result):
                copy.write_row([value if kind == name else None for name in KINDS])


# The schemas of ``pg`` are shared by the examples; each example is a cohort of its own.
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    foreign=st.frozensets(st.sampled_from(FOREIGN)),
    runs=st.lists(steps(OURS, batches=8), min_size=1, max_size=5),
)
def test_in_warehouse_mirror_converges_and_spares_foreign_members(
    pg: PostgresSource, foreign: frozenset[tuple[str, str]], runs: list[Step]
) -> None:
    play_in_warehouse(
        runs,
        foreign,
        warehouse_url=pg.url,
        schema=pg.snapshot_schema,
        source=Source(table=f"{pg.schema}.result"),
        load_result=lambda result: load_result(pg.url, f"{pg.schema}.result", result),
        members_of=pg.members_of,
    )


def test_sigkill_at_random_points_then_restart_converges(
    pg: PostgresSource, partner: PartnerServer, spawn: Spawn
) -> None:
    """Kill the exporter at random moments (the commit's tables included), restart, check."""
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    threads = 2
    partner.delay = 0.05
    phases = [(0, 20_000), (3_000, 23_000)]  # then 15% churn: 3,000 exits, 3,000 entries
    kills = 0
    for start, stop in phases:
        pg.users(start, stop)
        before = received(partner)
        phase_kills = 0
        for _ in range(4):
            seen = len(partner.requests)
            command = export_args(partner, "--threads", str(threads))
            command[command.index("--table") + 1] = f"{pg.schema}.t"
            process = spawn(command)
            if rng.random() < 0.3:  # while starting, staging, diffing or committing
                time.sleep(rng.uniform(0.0, 1.5))
            else:  # while sending: after a random number of requests, mid-request
                target = seen + rng.randint(1, 15)
                wait_for(partway(process, partner, target), what="a request")
                time.sleep(rng.uniform(0.0, 0.05))
            process.send_signal(signal.SIGKILL)
            process.communicate(timeout=30)
            phase_kills += process.returncode == -signal.SIGKILL
        command = export_args(partner, "--threads", str(threads), "--json")
        command[command.index("--table") + 1] = f"{pg.schema}.t"
        done = run_cli(*command, expect=None)
        assert done.returncode == 0, f"seed {seed}: {done.stderr}"
        assert membership(partner) == {("user_ids", f"u{i:05}") for i in range(start, stop)}, (
            f"seed {seed}"
        )
        assert pg.snapshot_members() == {("user_ids", f"u{i:05}") for i in range(start, stop)}
        sent = received(partner) - before
        twice = sum(count - 1 for count in sent.values() if count > 1)
        assert twice <= phase_kills * threads * 1000, f"seed {seed}: {twice} re-sent"
        kills += phase_kills
    assert kills >= 1, f"seed {seed}: no kill landed"
