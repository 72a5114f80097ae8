"""Which format a file is, and how unreadable files are reported when loaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from cohortsync.errors import ConfigError, SourceError
from cohortsync.warehouse import Engine
from cohortsync.warehouse.files import check_readable, detect_format


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("users.csv", "csv"),
        ("USERS.CSV", "csv"),
        ("users.tsv", "csv"),
        ("users.csv.gz", "csv"),
        ("users.parquet", "parquet"),
        ("users.pq", "parquet"),
        ("users.ndjson", "ndjson"),
        ("users.jsonl", "ndjson"),
        ("users.json", "ndjson"),
        ("v1.2.users.jsonl.zst", "ndjson"),
    ],
)
def test_format_from_the_extension(name: str, expected: str) -> None:
    assert detect_format(Path(name)) == expected


def test_explicit_format_wins_and_is_checked() -> None:
    assert detect_format(Path("users.txt"), "csv") == "csv"
    with pytest.raises(ConfigError, match="use one of: csv, parquet, ndjson"):
        detect_format(Path("users.csv"), "excel")


def test_unknown_extension_says_what_to_do() -> None:
    with pytest.raises(ConfigError, match=r"'\.xlsx'.*pass --format"):
        detect_format(Path("users.xlsx"))
    with pytest.raises(ConfigError, match=r"'\(none\)'"):
        detect_format(Path("users"))


def test_missing_and_directory_paths(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        check_readable(tmp_path / "nope.csv")
    with pytest.raises(ConfigError, match="not a file"):
        check_readable(tmp_path)


def test_a_file_that_is_not_its_format(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "users.parquet"
    path.write_text("user_ids\nabc\n")

    with pytest.raises(SourceError, match=r"cannot read .*users.parquet as parquet"):
        engine.load("users", path)


def test_tab_separated_files(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "users.tsv"
    path.write_text("user_ids\tage\nabc\t3\n")

    assert engine.load("users", path) == 1
    table = engine.stream("SELECT * FROM users").read_all()

    assert table.column_names == ["user_ids", "age"]
    assert table.num_rows == 1
