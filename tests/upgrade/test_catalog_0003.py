"""Catalog revision 0003: the run history's job column and the activations' skip_invalid.

The catalogs frozen by earlier releases kept a run's job only inside its
JSON. Upgraded by today's code, on SQLite (the real executable) and on the
real PostgreSQL (the frozen catalog's rows copied into a fresh database at
revision 0002), every run gets its job's name backfilled from that JSON, an
ad-hoc export's stays null, and every activation gets ``skip_invalid`` false.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from cohortsync import dbschema
from cohortsync.catalog import runs as history
from cohortsync.catalog.db import catalog_schema, open_catalog
from services import fresh_postgres_database

Cli = Callable[..., subprocess.CompletedProcess[str]]
FIXTURES = Path(__file__).parent / "fixtures"
SCHEMA = catalog_schema()

# The runs of the frozen catalog (fixtures/databases/README.md) and the job each belongs to.
FROZEN_JOBS: dict[str, str | None] = {
    "20261201T222536-5d43": None,  # cohortsync export: no saved job
    "20261201T222539-5599": "query:germans",
    "20261201T222541-1ea2": "query:devices",
    "20261201T222546-b598": "activation:french_emails",
}
# Runs as the previous release also wrote them (jobs/history.py record_failed_run, a query
# run without export), and runs whose JSON names no job.
ADDED_RUNS: dict[str, tuple[str, str | None]] = {
    "20261201T230000-f001": ('{"job": "query:broken"}', "query:broken"),
    "20261201T230001-f002": (
        '{"job": "query:germans", "source": {"sql": "SELECT 1", "warehouse_url": null}}',
        "query:germans",
    ),
    "20261201T230002-f003": ('{"job": null, "cohort_id": "adhoc"}', None),
    "20261201T230003-f004": ('{"job": 7}', None),
}
EXPECTED_JOBS = {**FROZEN_JOBS, **{run_id: name for run_id, (_, name) in ADDED_RUNS.items()}}


def add_previous_release_runs(conn: sa.Connection) -> None:
    """Runs with the columns of revision 0002, written as the previous release did."""
    for run_id, (job, _) in ADDED_RUNS.items():
        conn.execute(
            sa.text(
                "INSERT INTO runs (id, job, cohort_key, endpoint, partner, cohort_id, key_hash,"
                " operation, status, started_at, finished_at, error) VALUES (:id, :job, '||||',"
                " '', '', '', '', 'query', 'failed', :at, :at, 'it failed')"
            ),
            {"id": run_id, "job": job, "at": f"2026-12-01 23:00:0{run_id[-1]}.000000"},
        )


def stored_job_names(conn: sa.Connection) -> dict[str, str | None]:
    return dict(conn.execute(sa.text("SELECT id, job_name FROM runs")).all())


def stored_skip_invalid(conn: sa.Connection) -> dict[str, Any]:
    rows = conn.execute(sa.text("SELECT name, skip_invalid FROM audience_activations"))
    return dict(rows.all())


def job_index_columns(conn: sa.Connection) -> list[list[str | None]]:
    return [index["column_names"] for index in sa.inspect(conn).get_indexes("runs")]


def schema_differences(conn: sa.Connection) -> list[Any]:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    context = MigrationContext.configure(conn, opts={"version_table": SCHEMA.version_table})
    return list(compare_metadata(context, SCHEMA.metadata))


# -- SQLite, through the executable -----------------------------------------------------------


def test_previous_catalog_runs_get_their_job_backfilled(old_home: Path, cli: Cli) -> None:
    catalog = old_home / "catalog.db"
    engine = sa.create_engine(f"sqlite:///{catalog}")
    with engine.begin() as conn:
        add_previous_release_runs(conn)
    engine.dispose()

    upgraded = json.loads(cli("db", "upgrade", "--json").stdout)
    assert upgraded["action"] == "upgraded" and upgraded["after"] == dbschema.head(SCHEMA)
    assert dbschema.head(SCHEMA) >= "0003"

    engine = sa.create_engine(f"sqlite:///{catalog}")
    try:
        with engine.connect() as conn:
            assert stored_job_names(conn) == EXPECTED_JOBS
            assert stored_skip_invalid(conn) == {"french_emails": 0}
            assert ["job_name", "started_at"] in job_index_columns(conn)
            assert schema_differences(conn) == []
    finally:
        engine.dispose()
    # The backup keeps the runs as the previous release wrote them, without the column.
    [backup] = old_home.glob("catalog.db.bak-*")
    with sqlite3.connect(backup) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
    assert "job" in columns and "job_name" not in columns

    # The saved objects find their runs by the backfilled column.
    germans = json.loads(cli("query", "show", "germans", "--json").stdout)
    assert [run["id"] for run in germans["recent_runs"]] == [
        "20261201T230001-f002",
        "20261201T222539-5599",
    ]
    french = json.loads(cli("activation", "show", "french_emails", "--json").stdout)
    assert [run["id"] for run in french["runs"]] == ["20261201T222546-b598"]


def test_frozen_home_of_adhoc_runs_keeps_them_without_a_job(tmp_path: Path) -> None:
    """The catalog of the frozen interrupted home: ad-hoc exports only, one left running."""
    catalog = tmp_path / "catalog.db"
    shutil.copyfile(FIXTURES / "files" / "home" / "catalog.db", catalog)
    engine = open_catalog(catalog)
    try:
        with engine.connect() as conn:
            names = stored_job_names(conn)
        assert len(names) == 3 and set(names.values()) == {None}
        assert {run.id for run in history.list_runs(engine, status="running")} == {
            "20261201T222539-568e"
        }
    finally:
        engine.dispose()


def test_a_new_run_records_its_job_name(home: Path) -> None:
    engine = open_catalog(home / "catalog.db")
    destination = {"endpoint": "https://rest.iad-01.braze.com", "partner": "treasuredata"}
    common: dict[str, Any] = {
        **destination,
        "cohort_id": "vip",
        "data_import_key": "k",
        "operation": "add",
    }
    try:
        saved = history.start_run(
            engine, job={"job": "activation:vip", "cohort_id": "vip"}, **common
        )
        adhoc = history.start_run(engine, job={"job": None, "cohort_id": "vip"}, **common)
        assert history.get_run(engine, saved).job_name == "activation:vip"
        assert history.get_run(engine, adhoc).job_name is None
        assert history.get_run(engine, saved).job == {"job": "activation:vip", "cohort_id": "vip"}
    finally:
        engine.dispose()


# -- PostgreSQL ----------------------------------------------------------------------------


@pytest.fixture
def fresh_postgres(postgres_url: str) -> Iterator[str]:
    """An empty PostgreSQL database of its own, dropped after the test."""
    with fresh_postgres_database("cohortsync_catalog") as url:
        yield url.replace("postgresql://", "postgresql+psycopg://", 1)


def copy_frozen_catalog(target: sa.Connection) -> None:
    """Every row of the frozen SQLite catalog into ``target``, a database at revision 0002.

    Both sides are reflected, so SQLite's text datetimes, 0/1 flags and JSON
    text are read as values and written in PostgreSQL's types.
    """
    source = sa.create_engine(f"sqlite:///{FIXTURES / 'databases' / 'catalog.db'}")
    frozen, tables = sa.MetaData(), sa.MetaData()
    frozen.reflect(source)
    tables.reflect(target)
    try:
        with source.connect() as conn:
            for table in tables.sorted_tables:
                if table.name == SCHEMA.version_table:
                    continue
                rows = [
                    dict(row)
                    for row in conn.execute(sa.select(frozen.tables[table.name])).mappings()
                ]
                if rows:
                    target.execute(table.insert(), rows)
    finally:
        source.dispose()


@pytest.mark.postgres
def test_catalog_upgrades_on_postgres_with_its_runs_backfilled(fresh_postgres: str) -> None:
    engine = sa.create_engine(fresh_postgres)
    try:
        with engine.begin() as conn:
            dbschema._upgrade(SCHEMA, conn, None, "0002")
            copy_frozen_catalog(conn)
            add_previous_release_runs(conn)
        outcome = dbschema.ensure_current(engine, SCHEMA, where=fresh_postgres)
        assert (outcome.before, outcome.after, outcome.action) == (
            "0002",
            dbschema.head(SCHEMA),
            "upgraded",
        )
        with engine.connect() as conn:
            assert stored_job_names(conn) == EXPECTED_JOBS
            assert stored_skip_invalid(conn) == {"french_emails": False}
            assert ["job_name", "started_at"] in job_index_columns(conn)
            assert schema_differences(conn) == []
        latest = history.list_runs(engine, job="query:germans", limit=1)
        assert [run.id for run in latest] == ["20261201T230001-f002"]
        again = dbschema.ensure_current(engine, SCHEMA, where=fresh_postgres)
        assert again.action == "none"
    finally:
        engine.dispose()
