"""Identifiers Braze would refuse are found while planning, before the first request.

Through the real executable, against the recording partner server: a result
holding an over-long identifier, a NUL or a tab fails with one line naming
the kind, the value, the row and the reason, and **nothing is sent** (not
even the cohort's name request). ``--skip-invalid`` sends the rest and counts
the skipped ones; a dry run shows them; a mirror run never sends an invalid
identifier as an exit, since it never entered the snapshot.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import orjson
import psycopg
import pytest

from export.partner_server import CLIENT_SECRET, PARTNER_API_KEY, PartnerServer

from .conftest import CliRunner, assert_one_line_error

LONG = "x" * 600
ROWS = 3_000  # the bad row sits past the first two batches of 1,000


@pytest.fixture
def partner() -> Iterator[PartnerServer]:
    server = PartnerServer().start()
    yield server
    server.stop()


def _table(home: Path, values: list[str | None], name: str = "ids") -> None:
    with duckdb.connect(str(home / "warehouse.duckdb")) as connection:
        connection.execute(f"CREATE OR REPLACE TABLE {name} (n INTEGER, user_ids VARCHAR)")
        connection.executemany(
            f"INSERT INTO {name} VALUES (?, ?)", [(i, v) for i, v in enumerate(values, 1)]
        )


def _export(cli: CliRunner, partner: PartnerServer, *args: str, query: str | None = None) -> Any:
    source = ["--query", query] if query else ["--table", "ids"]
    return cli(
        "export",
        *source,
        "--endpoint",
        partner.url,
        "--data-import-key",
        CLIENT_SECRET,
        "--cohort-id",
        "c1",
        *args,
        env={
            "COHORTSYNC_PARTNER_API_KEY": PARTNER_API_KEY,
            "COHORTSYNC_HTTP_BACKOFF_BASE": "0.01",
        },
    )


def _values(bad_row: int, bad: str) -> list[str | None]:
    values: list[str | None] = [f"u{i}" for i in range(1, ROWS + 1)]
    values[bad_row - 1] = bad
    return values


@pytest.mark.parametrize(
    ("bad", "needles"),
    [
        (LONG, ["'xxxxxxxxxx", "(600 characters)", "longer than 512 characters"]),
        ("ab\x00cd", ["'ab\\x00cd'", "control character U+0000"]),
        ("tab\there", ["'tab\\x09here'", "control character U+0009"]),
        ("é" * 500, ["longer than 997 bytes"]),
    ],
    ids=["too-long", "nul", "tab", "too-many-bytes"],
)
def test_invalid_identifier_fails_before_any_request(
    cli: CliRunner, home: Path, partner: PartnerServer, bad: str, needles: list[str]
) -> None:
    _table(home, _values(2_500, bad))
    done = _export(cli, partner, query="SELECT user_ids FROM ids ORDER BY n")
    assert_one_line_error(
        done,
        3,
        "1 identifier of the result Braze would refuse",
        "row 2,500: user_ids",
        *needles,
        "nothing was sent",
        "--skip-invalid",
    )
    assert partner.requests == []  # not even the cohort's name
    assert not list((home / "runs").glob("*/changes.parquet"))


@pytest.mark.postgres
def test_stream_path_names_the_row_too(
    cli: CliRunner, home: Path, partner: PartnerServer, postgres_url: str
) -> None:
    """A PostgreSQL source streams Arrow batches: the same check, the same row number."""
    schema = f"s_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
        connection.execute(
            f"CREATE TABLE {schema}.ids AS SELECT n, 'u' || n AS user_ids "
            "FROM generate_series(1, 3000) n"
        )
        connection.execute(f"UPDATE {schema}.ids SET user_ids = repeat('x', 600) WHERE n = 2001")
        connection.execute(f"UPDATE {schema}.ids SET user_ids = 'a' || chr(9) WHERE n = 2002")
    query = f"SELECT user_ids FROM {schema}.ids ORDER BY n"
    done = _export(cli, partner, "--warehouse", postgres_url, query=query)
    assert_one_line_error(
        done, 3, "2 identifiers", "row 2,001: user_ids", "longer than 512", "nothing was sent"
    )
    assert partner.requests == []
    skipped = _export(
        cli, partner, "--warehouse", postgres_url, "--skip-invalid", "--json", query=query
    )
    assert skipped.returncode == 0, skipped.stderr
    report = orjson.loads(skipped.stdout)
    assert report["skipped"]["invalid"] == 2
    assert [item["row"] for item in report["invalid"]] == [2_001, 2_002]
    assert report["sent"] == {"user_ids": 2_998}


def test_skip_invalid_sends_the_rest_and_counts(
    cli: CliRunner, home: Path, partner: PartnerServer
) -> None:
    values = _values(2_500, LONG)
    values[9] = "a\tb"
    values[19] = "a\tb"  # a duplicate invalid value counts twice: two rows skipped
    _table(home, values)
    done = _export(cli, partner, "--skip-invalid", "--json")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    report = orjson.loads(done.stdout)
    assert report["skipped"]["invalid"] == 3
    assert report["skipped_by_kind"]["user_ids"]["invalid"] == 3
    assert report["sent"] == {"user_ids": ROWS - 3}
    assert [(item["row"], item["kind"]) for item in report["invalid"]] == [
        (10, "user_ids"),
        (20, "user_ids"),
        (2_500, "user_ids"),
    ]
    assert "longer than 512 characters" in report["invalid"][2]["reason"]
    sent = {value for _, value, _ in partner.identifiers()}
    assert len(sent) == ROWS - 3
    assert LONG not in sent and "a\tb" not in sent


def test_skip_invalid_report_for_people(cli: CliRunner, home: Path, partner: PartnerServer) -> None:
    _table(home, _values(7, "bad\x01one"))
    done = _export(cli, partner, "--skip-invalid")
    assert done.returncode == 0, done.stderr
    assert "skipped 1 identifier Braze would refuse: row 7: user_ids 'bad\\x01one'" in done.stdout


def test_dry_run_shows_invalid_without_failing(
    cli: CliRunner, home: Path, partner: PartnerServer
) -> None:
    _table(home, _values(2_500, LONG))
    done = _export(cli, partner, "--dry-run", "--json")
    assert done.returncode == 0, done.stderr
    report = orjson.loads(done.stdout)
    assert report["skipped"]["invalid"] == 1
    assert report["invalid"][0]["row"] == 2_500
    assert report["plan"]["identifiers"] == {"user_ids": ROWS - 1}
    people = _export(cli, partner, "--dry-run")
    assert people.returncode == 0, people.stderr
    text = " ".join(people.stdout.split())
    assert "row 2,500: user_ids" in text
    assert "would fail on 1 identifier Braze would refuse" in text
    assert partner.requests == []


def test_mirror_never_removes_a_skipped_identifier(
    cli: CliRunner, home: Path, partner: PartnerServer
) -> None:
    values = _values(5, "bad\x00id")
    _table(home, values)
    first = _export(cli, partner, "--operation", "mirror", "--skip-invalid", "--json")
    assert first.returncode == 0, first.stderr
    assert orjson.loads(first.stdout)["skipped"]["invalid"] == 1
    partner.requests.clear()
    # The invalid row leaves the result: it never entered the snapshot, so it is no exit.
    values[4] = None
    values[0] = None  # u1 leaves for real
    _table(home, values)
    second = _export(cli, partner, "--operation", "mirror", "--skip-invalid", "--json")
    assert second.returncode == 0, second.stderr
    report = orjson.loads(second.stdout)
    assert report["mirror"]["exits"] == 1
    assert list(partner.identifiers()) == [("user_ids", "u1", True)]
    # And the invalid value back again, without --skip-invalid: fails, sends nothing.
    partner.requests.clear()
    values[4] = "bad\x00id"
    _table(home, values)
    third = _export(cli, partner, "--operation", "mirror")
    assert_one_line_error(third, 3, "row 5: user_ids 'bad\\x00id'", "nothing was sent")
    assert partner.requests == []


def test_alias_and_device_kinds_are_checked(
    cli: CliRunner, home: Path, partner: PartnerServer
) -> None:
    with duckdb.connect(str(home / "warehouse.duckdb")) as connection:
        connection.execute(
            "CREATE TABLE ids AS SELECT * FROM (VALUES "
            "(1, 'ok@x.io', 'd1'), (2, 'fine@x.io', 'd\x7f2'), (3, repeat('e', 513), 'd3')) "
            "t(n, email, device_ids)"
        )
    done = _export(cli, partner, "--alias-column", "email", query="SELECT * FROM ids ORDER BY n")
    assert_one_line_error(
        done, 3, "2 identifiers", "first in row 2: device_ids 'd\\x7f2'", "U+007F"
    )
    assert partner.requests == []


def test_saved_query_keeps_skip_invalid(cli: CliRunner, home: Path, partner: PartnerServer) -> None:
    """``query save --skip-invalid`` is part of the saved export; ``query run`` follows it."""
    env = {
        "COHORTSYNC_PARTNER_API_KEY": PARTNER_API_KEY,
        "COHORTSYNC_DATA_IMPORT_KEY": CLIENT_SECRET,
    }
    _table(home, _values(42, "a\x00b"))
    made = cli("auth", "create", "sandbox", "--endpoint", partner.url, env=env)
    assert made.returncode == 0, made.stderr
    for name, extra in (("strict", ()), ("lenient", ("--skip-invalid",))):
        saved = cli(
            "query", "save", name, "--sql", "SELECT user_ids FROM ids ORDER BY n",
            "--export", "sandbox", "--cohort-id", name, *extra, env=env,
        )  # fmt: skip
        assert saved.returncode == 0, saved.stderr
    partner.requests.clear()
    strict = cli("query", "run", "strict", env=env)
    assert_one_line_error(strict, 3, "row 42: user_ids 'a\\x00b'", "nothing was sent")
    assert partner.requests == []
    lenient = cli("query", "run", "lenient", "--json", env=env)
    assert lenient.returncode == 0, lenient.stderr
    report = orjson.loads(lenient.stdout)["report"]
    assert report["skipped"]["invalid"] == 1
    assert report["sent"] == {"user_ids": ROWS - 1}
