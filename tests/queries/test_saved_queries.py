"""Saved queries end to end: the CLI in a real process, DuckDB, the receiving service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from workbench_helpers import AUTH, Workbench

from cohortsync import queries
from cohortsync.catalog import leases, schedules
from cohortsync.catalog import runs as run_history
from cohortsync.catalog.db import open_catalog
from cohortsync.errors import ConfigError, SourceError
from cohortsync.queries import QueryExport
from cohortsync.settings import Settings

GOLD = "SELECT external_id AS user_ids FROM customers WHERE tier = 'gold'"


def runs_of(job: str) -> list[run_history.RunRecord]:
    catalog = open_catalog(Settings().catalog_path)
    try:
        return [r for r in run_history.list_runs(catalog, limit=100) if r.job.get("job") == job]
    finally:
        catalog.dispose()


def test_save_list_show_delete_through_the_cli(workbench: Workbench, tmp_path) -> None:  # type: ignore[no-untyped-def]
    sql_file = tmp_path / "gold.sql"
    sql_file.write_text(GOLD)
    saved = workbench.cli_json(
        "query", "save", "gold", "--sql-file", str(sql_file),
        "--export", AUTH, "--cohort-id", "gold", "--cohort-name", "Gold tier",
        "--operation", "mirror", "--max-remove-pct", "80", "--threads", "2",
        "--schedule", "0 6 * * *", "--timezone", "Europe/Paris",
    )  # fmt: skip
    assert saved["outcome"] == "created"
    query = saved["query"]
    assert query["sql"] == GOLD
    assert query["export"] == {
        "auth": AUTH,
        "cohort_id": "gold",
        "cohort_name": "Gold tier",
        "operation": "mirror",
        "alias_column": None,
        "threads": 2,
        "mirror": {"allow_empty": False, "max_remove_pct": 80.0},
        "skip_invalid": False,
        "attribute_mode": "array",
        "attribute": None,
    }
    assert (query["schedule"], query["timezone"]) == ("0 6 * * *", "Europe/Paris")

    listed = workbench.cli_json("query", "list")["queries"]
    assert [q["name"] for q in listed] == ["gold"]
    assert listed[0]["next_run"] is not None

    shown = workbench.cli("query", "show", "gold")
    assert shown.returncode == 0
    assert "sandbox -> cohort gold (mirror)" in shown.stdout
    assert "0 6 * * * (Europe/Paris)" in shown.stdout

    deleted = workbench.cli("query", "delete", "gold")
    assert deleted.returncode == 0, deleted.stderr
    missing = workbench.cli("query", "show", "gold")
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        "error: no saved query named 'gold' (see 'cohortsync query list', or save it with "
        "'cohortsync query save')"
    ]
    catalog = open_catalog(Settings().catalog_path)
    assert schedules.get_schedule(catalog, "query", "gold") is None


def test_saving_the_same_definition_changes_nothing(workbench: Workbench) -> None:
    export = QueryExport(auth=AUTH, cohort_id="gold")
    assert queries.save_query("gold", GOLD, export=export, schedule="0 6 * * *") == "created"
    first = queries.get_query("gold")
    assert queries.save_query("gold", GOLD, export=export, schedule="0  6 * * *") == "unchanged"
    assert queries.get_query("gold").updated_at == first.updated_at
    assert queries.save_query("gold", GOLD, export=export) == "updated"  # unscheduled
    assert queries.get_query("gold").schedule is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sql", GOLD, "--schedule", "0 25 * * *"], "cron expression '0 25 * * *' is invalid"),
        (["--sql", GOLD, "--export", AUTH], "--export needs --cohort-id"),
    ],
)
def test_bad_definitions_are_refused_with_one_line(
    workbench: Workbench, args: list[str], message: str
) -> None:
    done = workbench.cli("query", "save", "bad", *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"schedule": "0 6 * * *", "timezone": "Moon/Base"}, "unknown time zone 'Moon/Base'"),
        ({"schedule": "0 6 * *"}, "must have five fields"),
        ({"export": QueryExport(auth="nope", cohort_id="x")}, "no authentication named 'nope'"),
        ({"sql": "  "}, "query 'bad' has empty SQL"),
        ({"name": "bad name"}, "invalid query name 'bad name'"),
    ],
)
def test_bad_definitions_are_refused_before_saving(
    workbench: Workbench, kwargs: dict[str, object], message: str
) -> None:
    arguments: dict[str, object] = {"name": "bad", "sql": GOLD, **kwargs}
    name, sql = str(arguments.pop("name")), str(arguments.pop("sql"))
    with pytest.raises(ConfigError, match=message):
        queries.save_query(name, sql, **arguments)  # type: ignore[arg-type]
    assert queries.list_queries() == []


def test_run_without_export_counts_and_previews(workbench: Workbench) -> None:
    workbench.add_customers(30)
    queries.save_query("tiers", "SELECT tier, count(*) AS n FROM customers GROUP BY 1 ORDER BY 1")
    result = workbench.cli_json("query", "run", "tiers")
    assert result["exported"] is False
    assert result["rows"] == 2
    assert result["preview"] == [{"tier": "gold", "n": 10}, {"tier": "silver", "n": 20}]
    [record] = runs_of("query:tiers")
    assert record.id == result["run_id"]
    assert record.status == "succeeded"
    assert record.report == {"job": "query:tiers", "rows": 2}


def test_run_exports_through_the_export_run(workbench: Workbench) -> None:
    workbench.add_customers(30)
    queries.save_query("gold", GOLD, export=QueryExport(auth=AUTH, cohort_id="gold"))
    dry = workbench.cli_json("query", "run", "gold", "--dry-run")
    assert dry["report"]["status"] == "dry-run"
    assert workbench.sandbox.cohorts() == []  # a dry run sends nothing

    result = workbench.cli_json("query", "run", "gold")
    assert result["status"] == "succeeded"
    assert result["report"]["sent"] == {"user_ids": 10}
    assert workbench.members("gold") == sorted(f"c{i}" for i in range(3, 31, 3))
    [record] = runs_of("query:gold")
    assert record.id == result["run_id"]
    assert record.status == "succeeded"
    assert record.job["job"] == "query:gold"


def test_mirror_keeps_the_cohort_equal_to_the_result(workbench: Workbench) -> None:
    workbench.add_customers(30)
    export = QueryExport(auth=AUTH, cohort_id="gold", operation="mirror")
    queries.save_query("gold", GOLD, export=export)
    first = queries.run_query("gold")
    assert first.report is not None and first.report["sent"] == {"user_ids": 10}
    workbench.sql("UPDATE customers SET tier = 'gold' WHERE external_id IN ('c1', 'c2')")
    workbench.sql("UPDATE customers SET tier = 'silver' WHERE external_id = 'c3'")
    again = queries.run_query("gold")
    assert again.report is not None and again.report["sent_total"] == 3  # 2 in, 1 out
    expected = sorted(["c1", "c2", *(f"c{i}" for i in range(6, 31, 3))])
    assert workbench.members("gold") == expected


def test_a_failing_query_leaves_a_failed_run(workbench: Workbench) -> None:
    queries.save_query(
        "broken",
        "SELECT user_id AS user_ids FROM no_such_table",
        export=QueryExport(auth=AUTH, cohort_id="broken"),
    )
    done = workbench.cli("query", "run", "broken")
    assert done.returncode == SourceError.exit_code
    assert "no_such_table" in done.stderr
    assert "Traceback" not in done.stderr
    [record] = runs_of("query:broken")
    assert record.status == "failed"
    assert "no_such_table" in (record.error or "")
    with pytest.raises(
        SourceError,
        match=r"^the query 'SELECT user_id AS user_ids FROM no_such_table' failed: .*no_such_table",
    ) as raised:
        queries.run_query("broken")
    assert raised.value.run_id != record.id  # type: ignore[attr-defined]
    assert len(runs_of("query:broken")) == 2


def test_a_manual_run_never_overlaps_a_running_job(workbench: Workbench) -> None:
    queries.save_query("tiers", "SELECT 1 AS x")
    catalog = open_catalog(Settings().catalog_path)
    lease = leases.acquire_lease(
        catalog,
        "query:tiers",
        "scheduler@elsewhere",
        now=datetime.now(UTC),
        ttl=timedelta(minutes=5),
    )
    assert lease is not None
    done = workbench.cli("query", "run", "tiers")
    assert done.returncode == ConfigError.exit_code
    assert "job query:tiers is already running (scheduler@elsewhere" in done.stderr
    leases.release_lease(catalog, lease)
    assert queries.run_query("tiers").rows == 1
