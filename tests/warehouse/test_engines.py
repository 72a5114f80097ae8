"""The contract every engine keeps, run on DuckDB and on PostgreSQL alike."""

from __future__ import annotations

import datetime
import decimal
from pathlib import Path

import pyarrow as pa
import pytest

from cohortsync.errors import ConfigError, SourceError
from cohortsync.warehouse import Engine

from .conftest import CUSTOMERS, write_file

FORMATS = ["csv", "parquet", "ndjson"]


def test_stream_keeps_column_types(engine: Engine, customers_parquet: Path) -> None:
    engine.load("customers", customers_parquet)

    reader = engine.stream("SELECT * FROM customers ORDER BY external_id")

    assert reader.schema == CUSTOMERS.schema
    result = reader.read_all()
    assert result.column("external_id").to_pylist() == ["TDCohort1", "TDCohort2", "TDCohort3"]
    assert result.column("balance").to_pylist() == [
        decimal.Decimal("10.50"),
        decimal.Decimal("-2.25"),
        None,
    ]
    assert result.column("last_seen")[0].as_py() == datetime.datetime(2024, 5, 1, 12, 30)
    assert result.column("signed_up")[1].as_py() == datetime.date(2024, 2, 3)


def test_stream_binds_question_mark_params(engine: Engine, customers_parquet: Path) -> None:
    engine.load("customers", customers_parquet)

    reader = engine.stream(
        "SELECT external_id AS user_ids FROM customers WHERE age > ? AND external_id <> ? "
        "ORDER BY 1",
        [30, "TDCohort2"],
    )

    assert reader.read_all().column("user_ids").to_pylist() == ["TDCohort1"]


def test_question_mark_inside_a_literal_is_not_a_param(
    engine: Engine, customers_parquet: Path
) -> None:
    engine.load("customers", customers_parquet)

    reader = engine.stream(
        "SELECT 'why?' AS q, '10:30' AS t, external_id FROM customers WHERE external_id = ?",
        ["TDCohort3"],
    )

    assert reader.read_all().to_pylist() == [
        {"q": "why?", "t": "10:30", "external_id": "TDCohort3"}
    ]


def test_wrong_number_of_params_is_an_error(engine: Engine, customers_parquet: Path) -> None:
    engine.load("customers", customers_parquet)

    with pytest.raises(
        (ConfigError, SourceError),
        match=r"1 \? placeholder\(s\) but 2 parameter\(s\) were given"
        r"|^query failed: .*Parameter argument/count mismatch",
    ):
        engine.stream("SELECT * FROM customers WHERE age > ?", [1, 2]).read_all()


def test_empty_result_still_has_its_schema(engine: Engine, customers_parquet: Path) -> None:
    engine.load("customers", customers_parquet)

    reader = engine.stream("SELECT external_id AS user_ids, age FROM customers WHERE 1 = 0")

    assert reader.schema == pa.schema([("user_ids", pa.string()), ("age", pa.int64())])
    assert reader.read_all().num_rows == 0


def test_results_larger_than_a_batch_come_in_several_batches(
    engine: Engine, tmp_path: Path
) -> None:
    ids = pa.table({"id": pa.array(range(2_500), pa.int64())})
    engine.load("ids", write_file(ids, tmp_path / "ids.parquet"))

    batches = list(engine.stream("SELECT id FROM ids ORDER BY id", batch_size=1_000))

    assert len(batches) >= 3
    assert max(batch.num_rows for batch in batches) <= 1_000
    assert [value for batch in batches for value in batch.column(0).to_pylist()] == list(
        range(2_500)
    )


def test_count_and_table_schema_and_tables(engine: Engine, customers_parquet: Path) -> None:
    engine.load("customers", customers_parquet)

    assert engine.count("SELECT * FROM customers WHERE age IS NOT NULL;") == 2
    assert engine.count("SELECT * FROM customers WHERE age > ?", [40]) == 1
    assert engine.table_schema("customers") == CUSTOMERS.schema
    assert "customers" in engine.tables()


@pytest.mark.parametrize("file_format", FORMATS)
def test_load_replace_then_append(engine: Engine, tmp_path: Path, file_format: str) -> None:
    first = pa.table({"user_ids": ["a", "b", "c"], "n": pa.array([1, 2, 3], pa.int64())})
    second = pa.table({"user_ids": ["d", "e"], "n": pa.array([4, 5], pa.int64())})
    first_file = write_file(first, tmp_path / f"first.{file_format}")
    second_file = write_file(second, tmp_path / f"second.{file_format}")

    assert engine.load("cohort", first_file) == 3
    assert engine.load("cohort", second_file, mode="append") == 2
    rows = engine.stream("SELECT user_ids, n FROM cohort ORDER BY n").read_all()
    assert rows.column("user_ids").to_pylist() == ["a", "b", "c", "d", "e"]
    assert rows.column("n").to_pylist() == [1, 2, 3, 4, 5]

    assert engine.load("cohort", second_file, mode="replace") == 2
    assert engine.count("SELECT * FROM cohort") == 2


def test_append_creates_a_missing_table(engine: Engine, customers_parquet: Path) -> None:
    assert engine.load("fresh", customers_parquet, mode="append") == 3
    assert engine.count("SELECT * FROM fresh") == 3


def test_explicit_format_overrides_the_extension(engine: Engine, tmp_path: Path) -> None:
    path = write_file(pa.table({"user_ids": ["x", "y"]}), tmp_path / "export.csv")
    renamed = path.rename(tmp_path / "export.txt")

    assert engine.load("cohort", renamed, format="csv") == 2


def test_failed_replace_leaves_the_table_as_it_was(
    engine: Engine, customers_parquet: Path, tmp_path: Path
) -> None:
    engine.load("customers", customers_parquet)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 this is not parquet at all")

    with pytest.raises(SourceError, match=r"broken\.parquet"):
        engine.load("customers", broken)

    assert engine.count("SELECT * FROM customers") == 3
    assert engine.table_schema("customers") == CUSTOMERS.schema


def test_failed_append_leaves_the_table_as_it_was(
    engine: Engine, customers_parquet: Path, tmp_path: Path
) -> None:
    engine.load("customers", customers_parquet)
    other = write_file(
        pa.table({"external_id": ["new"], "not_a_column": [1]}), tmp_path / "other.parquet"
    )

    # Appends match columns by name: a file column the table lacks is named.
    with pytest.raises(SourceError, match="the table has no column 'not_a_column'"):
        engine.load("customers", other, mode="append")

    assert engine.count("SELECT * FROM customers") == 3


def test_missing_table_error_names_it_and_says_what_to_do(engine: Engine) -> None:
    with pytest.raises(SourceError, match=r"^query failed: .*\bnope\b") as raised:
        engine.stream("SELECT * FROM nope").read_all()

    message = str(raised.value)
    assert message.startswith("query failed:")
    assert "nope" in message
    assert "cohortsync warehouse tables" in message
    assert "\n" not in message


def test_bad_sql_is_a_source_error(engine: Engine) -> None:
    with pytest.raises(SourceError, match="syntax"):
        engine.stream("SELEC 1")


def test_error_while_reading_batches_is_a_source_error(engine: Engine, tmp_path: Path) -> None:
    values = pa.table({"v": ["1"] * 3_000 + ["not a number"]})
    engine.load("raw", write_file(values, tmp_path / "raw.parquet"))

    with pytest.raises(SourceError, match="query failed"):
        engine.stream("SELECT CAST(v AS INTEGER) AS v FROM raw", batch_size=500).read_all()


def test_table_schema_of_a_missing_table(engine: Engine) -> None:
    with pytest.raises(SourceError, match="no table 'nope'"):
        engine.table_schema("nope")


def test_load_input_errors(engine: Engine, tmp_path: Path, customers_parquet: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        engine.load("t", tmp_path / "missing.csv")
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    with pytest.raises(ConfigError, match="--format"):
        engine.load("t", notes)
    with pytest.raises(ConfigError, match="unsupported format 'xml'"):
        engine.load("t", notes, format="xml")
    with pytest.raises(ConfigError, match="invalid table name"):
        engine.load("t; DROP TABLE x", customers_parquet)


@pytest.mark.parametrize(
    ("sql", "refusal"),
    [
        ("CREATE VIEW adults AS SELECT * FROM customers WHERE age >= 18", "CREATE statement"),
        ("SELECT * FROM customers; DROP TABLE customers", "holds 2 statements"),
        ("DELETE FROM customers", "DELETE statement"),
    ],
)
def test_statements_that_change_things_are_refused(
    engine: Engine, customers_parquet: Path, sql: str, refusal: str
) -> None:
    engine.load("customers", customers_parquet)

    with pytest.raises(SourceError, match=refusal):
        engine.stream(sql).read_all()
    with pytest.raises(SourceError, match=refusal):
        engine.count(sql)

    assert engine.tables() == ["customers"]
    assert engine.count("SELECT * FROM customers") == 3


def test_append_of_values_that_do_not_fit_leaves_the_table(engine: Engine, tmp_path: Path) -> None:
    good = pa.table({"user_ids": ["a", "b"], "n": pa.array([1, 2], pa.int64())})
    engine.load("cohort", write_file(good, tmp_path / "good.parquet"))
    bad = pa.table({"user_ids": ["c"], "n": ["not a number"]})

    with pytest.raises(SourceError, match=r"bad.csv: column 'n' .*'not a number'"):
        engine.load("cohort", write_file(bad, tmp_path / "bad.csv"), mode="append")

    assert engine.stream("SELECT user_ids FROM cohort ORDER BY 1").read_all().column(
        0
    ).to_pylist() == ["a", "b"]


def test_percent_signs_and_colons_in_literals_survive_binding(
    engine: Engine, customers_parquet: Path
) -> None:
    engine.load("customers", customers_parquet)

    reader = engine.stream(
        "SELECT external_id, ':not_a_param' AS c FROM customers "
        "WHERE email LIKE '%gmail.com' AND age > ? ORDER BY 1",
        [30],
    )

    assert reader.read_all().to_pylist() == [{"external_id": "TDCohort1", "c": ":not_a_param"}]
    assert (
        engine.count("SELECT * FROM customers WHERE email LIKE '%gmail%' AND score < ?", [1]) == 2
    )
