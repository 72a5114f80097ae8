"""The Arrow stream path: parameterised queries and PostgreSQL sources.

The embedded DuckDB warehouse is read inside the staging database; every
other source (a PostgreSQL warehouse, SQL with ``?`` parameters) streams
Arrow batches from its engine and is counted on the way. Same results, same
counts, same errors.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from cohortsync.errors import SourceError
from cohortsync.export.run import run_export
from cohortsync.export.spec import Source
from export.partner_server import PartnerServer, spec_for

Warehouse = Callable[[str], None]

MESSY = (
    "('u1', 'd1'), ('u1', NULL), (NULL, ''), ('', 'd1'), ('u2', 'd2'), ('u2', 'd2'), ('u3', NULL)"
)


def check_messy_result(partner: PartnerServer, report: object) -> None:
    sent = sorted((kind, value) for kind, value, _ in partner.identifiers())
    assert sent == [
        ("device_ids", "d1"),
        ("device_ids", "d2"),
        ("user_ids", "u1"),
        ("user_ids", "u2"),
        ("user_ids", "u3"),
    ]
    data = report.to_dict()  # type: ignore[attr-defined]
    assert data["rows_read"] == 7
    assert data["skipped"] == {"null": 3, "empty": 2, "invalid": 0, "duplicate": 4}
    assert data["sent"] == {"user_ids": 3, "device_ids": 2}


def test_parameterised_query_streams_with_the_same_counts(
    partner: PartnerServer, warehouse: Warehouse
) -> None:
    warehouse(
        f"CREATE TABLE messy AS SELECT *, 1 AS flag FROM (VALUES {MESSY}) t(user_ids, device_ids)"
        " UNION ALL SELECT 'not-me', 'nor-me', 0"
    )
    source = Source(sql="SELECT user_ids, device_ids FROM messy WHERE flag = ?", params=(1,))
    report = run_export(spec_for(partner, source))
    check_messy_result(partner, report)


def test_a_streamed_query_failing_mid_way_is_a_source_error(
    partner: PartnerServer, warehouse: Warehouse
) -> None:
    warehouse(
        "CREATE TABLE t AS SELECT CASE WHEN i < 200000 THEN i::VARCHAR ELSE 'x' END AS v "
        "FROM range(300000) r(i)"
    )
    sql = "SELECT CAST(CAST(v AS INTEGER) AS VARCHAR) AS user_ids FROM t WHERE ? = 1"
    with pytest.raises(SourceError, match="failed"):
        run_export(spec_for(partner, Source(sql=sql, params=(1,))))
    assert partner.requests == []


@pytest.mark.postgres
def test_postgresql_source(partner: PartnerServer, postgres_url: str, home: Path) -> None:
    schema = f"export_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
        connection.execute(
            f'CREATE TABLE "{schema}".messy AS '
            f"SELECT * FROM (VALUES {MESSY}) t(user_ids, device_ids)"
        )
    source = Source(table=f"{schema}.messy", warehouse_url=postgres_url)
    report = run_export(spec_for(partner, source))
    check_messy_result(partner, report)
