"""Staging deduplicates small results under a smaller memory limit.

DuckDB uses its memory limit before it spills, so the limit is most of a
run's peak memory beyond the imports. A result whose every pass is at most
half a full pass deduplicates under :data:`staging.SMALL_PASS_MEMORY_LIMIT`
(still a margin of two); larger ones, and a limit the caller chose, keep
theirs.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

from cohortsync.export import staging
from cohortsync.export.identifiers import identifier_columns

VALUES = 2_000


def reported(limit: str) -> str:
    """How DuckDB reports ``limit`` (e.g. ``"61.0 MiB"`` for ``"64MB"``)."""
    with duckdb.connect(config={"memory_limit": limit}) as connection:
        ((value,),) = connection.execute("SELECT current_setting('memory_limit')").fetchall()
    return str(value)


def staged_limit(run_dir: Path, **options: object) -> str:
    """The staging database's memory limit once a result of ``VALUES`` ids is staged."""
    table = pa.table({"user_ids": [f"user-{i}" for i in range(VALUES)]})
    with staging.Staging(run_dir, **options) as stage:
        sql = stage.identifiers_sql(table.to_reader(), identifier_columns(table.schema, None))
        assert stage.connection.execute(f"SELECT count(*) FROM ({sql})").fetchall() == [(VALUES,)]
        ((value,),) = stage.connection.execute("SELECT current_setting('memory_limit')").fetchall()
    return str(value)


def test_a_small_result_is_deduplicated_under_the_smaller_limit(tmp_path: Path) -> None:
    assert reported(staging.SMALL_PASS_MEMORY_LIMIT) != reported(staging.STAGING_MEMORY_LIMIT)
    assert staged_limit(tmp_path / "run") == reported(staging.SMALL_PASS_MEMORY_LIMIT)


def test_a_pass_over_half_the_full_size_keeps_the_full_limit(tmp_path: Path) -> None:
    # One pass of 2,000 values where a full pass is 3,000: more than half.
    limit = staged_limit(tmp_path / "run", pass_values=3_000)
    assert limit == reported(staging.STAGING_MEMORY_LIMIT)


def test_a_limit_the_caller_chose_is_kept(tmp_path: Path) -> None:
    assert staged_limit(tmp_path / "run", memory_limit="200MB") == reported("200MB")
