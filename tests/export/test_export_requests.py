"""``cohortsync export`` end to end against a real partner API server: exact requests."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Callable

from export.conftest import CliRunner
from export.partner_server import CLIENT_SECRET, PartnerServer

Warehouse = Callable[[str], None]


def export_args(partner: PartnerServer, *extra: str) -> list[str]:
    return [
        "export",
        "--endpoint",
        partner.url,
        "--data-import-key",
        CLIENT_SECRET,
        *extra,
    ]


def users_table(warehouse: Warehouse, count: int, name: str = "users") -> None:
    warehouse(
        f"CREATE TABLE {name} AS SELECT 'user-' || lpad(i::VARCHAR, 6, '0') AS user_ids, "
        f"i AS score FROM range({count}) t(i)"
    )


def test_name_call_first_then_batches_of_at_most_1000(
    partner: PartnerServer, warehouse: Warehouse, cli: CliRunner
) -> None:
    users_table(warehouse, 2500)
    result = cli(*export_args(partner, "--table", "users", "--cohort-id", "vip", "--json"))
    assert result.returncode == 0, result.stderr

    first = partner.requests[0]
    assert first.path == "/partners/treasuredata/cohorts"
    assert first.body["cohort_id"] == "vip"
    assert first.body["name"] == "vip"  # the name defaults to the cohort id
    created = dt.datetime.fromisoformat(first.body["created_at"])
    assert abs((dt.datetime.now(dt.UTC) - created).total_seconds()) < 60
    assert all(r.kind == "users" for r in partner.requests[1:])

    sizes = sorted(
        sum(len(c["user_ids"]) for c in r.body["cohort_changes"]) for r in partner.users_requests()
    )
    assert sizes == [500, 1000, 1000]
    sent = Counter(value for kind, value, remove in partner.identifiers() if not remove)
    assert sent == Counter(f"user-{i:06d}" for i in range(2500))
    for request in partner.users_requests():
        assert request.body["partner_api_key"] == partner.partner_api_key
        assert request.body["client_secret"] == CLIENT_SECRET
        assert request.body["cohort_id"] == "vip"

    report = json.loads(result.stdout)
    assert report["status"] == "succeeded"
    assert report["rows_read"] == 2500
    assert report["sent"] == {"user_ids": 2500}
    assert report["requests"] == 4 and report["retries"] == 0
    assert report["ignored_columns"] == ["score"]
    assert "ignoring columns 'score'" in result.stderr


def test_cohort_name_alias_label_and_remove(
    partner: PartnerServer, warehouse: Warehouse, cli: CliRunner
) -> None:
    warehouse(
        "CREATE TABLE people AS SELECT * FROM (VALUES ('a@x.io'), ('b@x.io'), ('c@x.io')) t(email)"
    )
    result = cli(
        *export_args(partner, "--query", "SELECT email FROM people", "--alias-column", "email"),
        "--cohort-id",
        "emails",
        "--cohort-name",
        "Email people",
        "--operation",
        "remove",
    )
    assert result.returncode == 0, result.stderr
    assert partner.requests[0].body["name"] == "Email people"
    (request,) = partner.users_requests()
    assert request.body["cohort_changes"] == [
        {
            "aliases": [
                {"alias_name": "a@x.io", "alias_label": "email"},
                {"alias_name": "b@x.io", "alias_label": "email"},
                {"alias_name": "c@x.io", "alias_label": "email"},
            ],
            "should_remove": True,
        }
    ]


def test_every_kind_of_a_row_is_sent_and_a_request_never_exceeds_1000_in_total(
    partner: PartnerServer, warehouse: Warehouse, cli: CliRunner
) -> None:
    warehouse(
        "CREATE TABLE mixed AS SELECT 'u' || i AS user_ids, 'd' || i AS device_ids, "
        "'e' || i || '@x.io' AS email FROM range(700) t(i)"
    )
    result = cli(
        *export_args(partner, "--table", "mixed", "--alias-column", "email", "--cohort-id", "c")
    )
    assert result.returncode == 0, result.stderr
    totals = [
        sum(len(v) for c in r.body["cohort_changes"] for k, v in c.items() if k != "should_remove")
        for r in partner.users_requests()
    ]
    assert sorted(totals) == [100, 1000, 1000]
    kinds = Counter(kind for kind, _, _ in partner.identifiers())
    assert kinds == {"user_ids": 700, "device_ids": 700, "alias:email": 700}
    # a batch that spans two kinds carries one cohort_changes object per kind
    assert any(len(r.body["cohort_changes"]) == 2 for r in partner.users_requests())


def test_null_empty_and_duplicate_values_are_skipped_and_counted(
    partner: PartnerServer, warehouse: Warehouse, cli: CliRunner
) -> None:
    warehouse(
        "CREATE TABLE messy AS SELECT * FROM (VALUES "
        "('u1', 'd1'), ('u1', NULL), (NULL, ''), ('', 'd1'), ('u2', 'd2'), ('u2', 'd2'), "
        "(' u1', NULL)) t(user_ids, device_ids)"
    )
    result = cli(*export_args(partner, "--table", "messy", "--cohort-id", "c", "--json"))
    assert result.returncode == 0, result.stderr
    sent = sorted((kind, value) for kind, value, _ in partner.identifiers())
    # values are sent as the warehouse holds them: ' u1' is not trimmed into 'u1'
    assert sent == [
        ("device_ids", "d1"),
        ("device_ids", "d2"),
        ("user_ids", " u1"),
        ("user_ids", "u1"),
        ("user_ids", "u2"),
    ]
    report = json.loads(result.stdout)
    assert report["rows_read"] == 7
    assert report["sent"] == {"user_ids": 3, "device_ids": 2}
    assert report["skipped"] == {"null": 3, "empty": 2, "invalid": 0, "duplicate": 4}
    assert report["skipped_by_kind"] == {
        "user_ids": {"null": 1, "empty": 1, "invalid": 0, "duplicate": 2},
        "device_ids": {"null": 2, "empty": 1, "invalid": 0, "duplicate": 2},
    }


def test_concurrency_never_exceeds_threads(
    partner: PartnerServer, warehouse: Warehouse, cli: CliRunner
) -> None:
    users_table(warehouse, 24_000)
    partner.delay = 0.05
    result = cli(*export_args(partner, "--table", "users", "--cohort-id", "c", "--threads", "3"))
    assert result.returncode == 0, result.stderr
    assert len(partner.users_requests()) == 24
    assert partner.max_in_flight == 3  # reached, never exceeded


def test_query_file_sends_each_identifier_once(
    partner: PartnerServer, warehouse: Warehouse, cli: CliRunner, tmp_path
) -> None:
    users_table(warehouse, 3000)
    query = tmp_path / "cohort.sql"
    query.write_text("SELECT user_ids FROM users WHERE score % 2 = 0")
    result = cli(
        *export_args(partner, "--query-file", str(query), "--cohort-id", "c", "--threads", "1")
    )
    assert result.returncode == 0, result.stderr
    values = [value for _, value, _ in partner.identifiers()]
    assert sorted(values) == [f"user-{i:06d}" for i in range(0, 3000, 2)]


def test_values_are_sent_exactly_as_stored_whatever_their_characters(
    partner: PartnerServer, warehouse: Warehouse, cli: CliRunner
) -> None:
    # Control characters (newline, tab, \x01) are refused before sending: see
    # tests/hardening/test_identifier_checks.py. Everything else goes as stored.
    odd = [
        'quote"inside',
        "back\\slash",
        "émoji😀",
        "'single'",
        " spaced ",
        "\u00a0nbsp",
    ]
    values = ", ".join("(" + "'" + v.replace("'", "''") + "')" for v in odd)
    warehouse(f"CREATE TABLE odd AS SELECT v AS user_ids, v AS email FROM (VALUES {values}) t(v)")
    result = cli(
        *export_args(partner, "--table", "odd", "--alias-column", "email", "--cohort-id", "c")
    )
    assert result.returncode == 0, result.stderr
    sent = sorted((kind, value) for kind, value, _ in partner.identifiers())
    assert sent == sorted([("user_ids", v) for v in odd] + [("alias:email", v) for v in odd])
