"""``cohortsync export`` failures: retries, refusals, bad sources, exit codes, secrets."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from export.conftest import CliRunner
from export.partner_server import CLIENT_SECRET, PartnerServer
from export.test_export_requests import export_args, users_table
from support import unused_port

Warehouse = Callable[[str], None]


def test_retries_429_5xx_and_423_then_succeeds(
    partner: PartnerServer, warehouse: Warehouse, cli: CliRunner
) -> None:
    users_table(warehouse, 1500)
    partner.script("cohorts", 503, "Service Unavailable")
    partner.script("users", 429, "Rate limited", Retry_After="0")
    partner.script("users", 500, "Internal Server Error")
    partner.script("users", 502, "Bad Gateway")
    partner.script("users", 423, "Resource locked")
    result = cli(*export_args(partner, "--table", "users", "--cohort-id", "c", "--json"))
    assert result.returncode == 0, result.stderr
    assert [r.status for r in partner.requests if r.kind == "cohorts"] == [503, 201]
    statuses = sorted(r.status for r in partner.users_requests(answered=False))
    assert statuses == [201, 201, 423, 429, 500, 502]
    assert sorted(v for _, v, _ in partner.identifiers()) == [f"user-{i:06d}" for i in range(1500)]
    report = json.loads(result.stdout)
    assert report["retries"] == 5
    assert report["requests"] == 8
    assert report["sent"] == {"user_ids": 1500}


@pytest.mark.parametrize(
    ("status", "message"),
    [(400, "cohort_id must be a valid string"), (401, "Invalid Partner API key")],
)
def test_400_and_401_stop_the_run_at_once(
    partner: PartnerServer, warehouse: Warehouse, cli: CliRunner, status: int, message: str
) -> None:
    users_table(warehouse, 5000)
    partner.script("users", status, message)
    result = cli(*export_args(partner, "--table", "users", "--cohort-id", "c", "--threads", "1"))
    assert result.returncode == 4, result.stderr
    assert len(partner.users_requests(answered=False)) == 1  # no retry, no further batch
    assert f"HTTP {status} {message}" in result.stderr
    assert "Traceback" not in result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("error:")] == [
        result.stderr.splitlines()[-1]
    ]  # one error line, the last


def test_401_on_the_name_call_sends_no_batch(
    partner: PartnerServer, warehouse: Warehouse, cli: CliRunner
) -> None:
    users_table(warehouse, 10)
    result = cli(
        "export", "--endpoint", partner.url, "--data-import-key", "dik-wrong-key-0000000000",
        "--table", "users", "--cohort-id", "c",
    )  # fmt: skip
    assert result.returncode == 4
    assert [r.kind for r in partner.requests] == ["cohorts"]
    assert "Partner not enabled for client with client secret" in result.stderr
    # the server echoes the secret; we never print it
    assert "dik-wrong-key-0000000000" not in result.stderr
    assert "****0000" in result.stderr


def test_retries_exhausted_exit_5(
    partner: PartnerServer, warehouse: Warehouse, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COHORTSYNC_HTTP_MAX_ATTEMPTS", "3")
    users_table(warehouse, 10)
    partner.script("users", 503, "Service Unavailable", times=10)
    result = cli(*export_args(partner, "--table", "users", "--cohort-id", "c"))
    assert result.returncode == 5, result.stderr
    assert len(partner.users_requests(answered=False)) == 3
    assert "after 3 attempts: HTTP 503 Service Unavailable" in result.stderr


def test_unreachable_endpoint_exit_5(
    home: Path, warehouse: Warehouse, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COHORTSYNC_PARTNER_API_KEY", "pk-test")
    monkeypatch.setenv("COHORTSYNC_HTTP_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("COHORTSYNC_HTTP_BACKOFF_BASE", "0.01")
    users_table(warehouse, 10)
    with unused_port() as port:  # refused while the export runs: nothing can listen there
        result = cli(
            "export", "--endpoint", f"http://127.0.0.1:{port}", "--data-import-key", CLIENT_SECRET,
            "--table", "users", "--cohort-id", "c",
        )  # fmt: skip
    assert result.returncode == 5
    assert f"http://127.0.0.1:{port}/partners/treasuredata/cohorts" in result.stderr
    assert "network error" in result.stderr and "after 2 attempts" in result.stderr


def test_no_identifier_column_fails_before_any_request(
    partner: PartnerServer, warehouse: Warehouse, cli: CliRunner
) -> None:
    warehouse("CREATE TABLE t AS SELECT 'x' AS external_id, 1 AS score")
    result = cli(*export_args(partner, "--table", "t", "--cohort-id", "c"))
    assert result.returncode == 3
    assert partner.requests == []
    assert "found 'external_id', 'score'" in result.stderr
    assert "'user_ids', 'device_ids'" in result.stderr


def test_wrong_column_type_names_column_and_type(
    partner: PartnerServer, warehouse: Warehouse, cli: CliRunner
) -> None:
    warehouse("CREATE TABLE t AS SELECT 42 AS user_ids, 'd1' AS device_ids")
    result = cli(*export_args(partner, "--table", "t", "--cohort-id", "c"))
    assert result.returncode == 3
    assert partner.requests == []
    assert "identifier column 'user_ids' has type int32, not a string" in result.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--query", "SELEC user_ids FROM users"], "syntax"),
        (["--query", "SELECT nope FROM users"], "nope"),
        (["--table", "missing_table"], "missing_table"),
    ],
)
def test_bad_sql_or_missing_table_exit_3(
    partner: PartnerServer, warehouse: Warehouse, cli: CliRunner, args: list[str], needle: str
) -> None:
    users_table(warehouse, 10)
    result = cli(*export_args(partner, *args, "--cohort-id", "c"))
    assert result.returncode == 3, result.stderr
    assert partner.requests == []
    assert needle in result.stderr
    assert "Traceback" not in result.stderr


def test_query_failing_while_streaming_exit_3(
    partner: PartnerServer, warehouse: Warehouse, cli: CliRunner
) -> None:
    warehouse(
        "CREATE TABLE t AS SELECT CASE WHEN i < 200000 THEN i::VARCHAR ELSE 'x' END AS v "
        "FROM range(300000) r(i)"
    )
    sql = "SELECT CAST(CAST(v AS INTEGER) AS VARCHAR) AS user_ids FROM t"
    result = cli(*export_args(partner, "--query", sql, "--cohort-id", "c"))
    assert result.returncode == 3, result.stderr
    assert "Could not convert" in result.stderr or "Conversion" in result.stderr
    assert partner.requests == []


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--cohort-id", "c"], "exactly one of --query, --query-file or --table"),
        (["--query", "SELECT 1", "--table", "t", "--cohort-id", "c"], "got --query, --table"),
        (["--table", "t"], "--cohort-id"),
        (["--table", "t", "--cohort-id", "c", "--threads", "0"], "--threads"),
    ],
)
def test_bad_usage_exit_2(
    partner: PartnerServer, cli: CliRunner, args: list[str], needle: str
) -> None:
    result = cli(*export_args(partner, *args))
    assert result.returncode == 2
    assert needle in result.stderr
    assert partner.requests == []


def test_missing_partner_key_exit_2(home: Path, warehouse: Warehouse, cli: CliRunner) -> None:
    users_table(warehouse, 10)
    result = cli(
        "export", "--endpoint", "http://127.0.0.1:9", "--data-import-key", "k" * 20,
        "--table", "users", "--cohort-id", "c",
    )  # fmt: skip
    assert result.returncode == 2
    assert "COHORTSYNC_PARTNER_API_KEY" in result.stderr


def test_dry_run_sends_nothing_and_masks_keys(
    partner: PartnerServer, warehouse: Warehouse, cli: CliRunner, home: Path
) -> None:
    warehouse(
        "CREATE TABLE t AS SELECT 'u' || i AS user_ids, "
        "CASE WHEN i % 2 = 0 THEN 'd' || i END AS device_ids FROM range(1500) r(i)"
    )
    result = cli(*export_args(partner, "--table", "t", "--cohort-id", "c", "--dry-run", "--json"))
    assert result.returncode == 0, result.stderr
    assert partner.requests == []
    report = json.loads(result.stdout)
    assert report["dry_run"] is True and report["status"] == "dry-run"
    assert report["plan"]["identifiers"] == {"device_ids": 750, "user_ids": 1500}
    assert report["plan"]["requests"] == 4  # the name call and 3 batches
    first = report["plan"]["first_request"]
    assert first["partner_api_key"] == partner.partner_api_key[:4] + "…"
    assert first["client_secret"] == CLIENT_SECRET[:4] + "…"
    assert (
        sum(len(c.get("device_ids", c.get("user_ids", []))) for c in first["cohort_changes"])
        == 1000
    )
    assert CLIENT_SECRET not in result.stdout + result.stderr
    human = cli(*export_args(partner, "--table", "t", "--cohort-id", "c", "--dry-run"))
    assert "Dry run: nothing sent" in human.stdout and "more" in human.stdout
    assert list((home / "runs").iterdir()) == []  # scratch files removed, no run recorded
    assert not (home / "catalog.db").exists()


def test_the_key_never_reaches_output_logs_or_run_records(
    partner: PartnerServer, warehouse: Warehouse, cli: CliRunner, home: Path
) -> None:
    users_table(warehouse, 1200)
    ok = cli(*export_args(partner, "--table", "users", "--cohort-id", "c", "--json"))
    partner.script(
        "users", 401, f"Partner not enabled for client with client secret: {CLIENT_SECRET}"
    )
    refused = cli(*export_args(partner, "--table", "users", "--cohort-id", "c"))
    assert ok.returncode == 0 and refused.returncode == 4
    for text in (ok.stdout, ok.stderr, refused.stdout, refused.stderr):
        assert CLIENT_SECRET not in text
        assert partner.partner_api_key not in text
    for path in home.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert CLIENT_SECRET.encode() not in data, path
            assert partner.partner_api_key.encode() not in data, path


def test_run_history_records_success_failure_and_acknowledged_batches(
    partner: PartnerServer, warehouse: Warehouse, cli: CliRunner, home: Path
) -> None:
    from cohortsync.catalog import runs
    from cohortsync.catalog.db import open_catalog

    users_table(warehouse, 2500)
    ok = cli(*export_args(partner, "--table", "users", "--cohort-id", "c", "--json"))
    run_id = json.loads(ok.stdout)["run_id"]
    partner.script(
        "users", 400, "Only 1,000 user_ids, device_ids, and aliases are allowed per request"
    )
    failed = cli(*export_args(partner, "--table", "users", "--cohort-id", "c", "--threads", "1"))
    assert failed.returncode == 4

    catalog = open_catalog(home / "catalog.db")
    record = runs.get_run(catalog, run_id)
    assert record.status == "succeeded"
    assert record.report is not None and record.report["sent"] == {"user_ids": 2500}
    assert record.job["cohort_id"] == "c" and "data_import_key" not in record.job["destination"]
    assert runs.acknowledged_batches(catalog, run_id) == {0, 1, 2}
    assert not (home / "runs" / run_id).exists()  # a succeeded run leaves no files

    latest = runs.list_runs(catalog, limit=1)[0]
    assert latest.status == "failed"
    assert latest.error is not None and "HTTP 400" in latest.error
    assert runs.acknowledged_batches(catalog, latest.id) == set()
    assert (home / "runs" / latest.id / "changes.parquet").exists()  # kept to resume
