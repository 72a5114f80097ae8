"""Random malformed CSV and NDJSON thrown at `warehouse load`.

The property: every load either succeeds with exactly the file's rows and
columns (as Python's strict csv module or json module reads the file), or
fails with the previous table unchanged and no staging table left.

One form is accepted that Python's csv module reads differently: a row that
ends with one extra delimiter and nothing after it (``a,b,``) is read by
DuckDB as if the delimiter were not there; the oracle allows exactly that,
since no value is lost (docs/warehouse.md, "Load files").
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cohortsync.errors import CohortsyncError
from cohortsync.warehouse.duckdb_engine import DuckDBEngine

from .conftest import CliRunner, warehouse_state

NAMES = st.sampled_from(["user_ids", "email", "n", "Score", "x y"])
CELLS = st.sampled_from(["a", "b c", "1", "-2", "1.5", "true", "", ",", '"', 'q"q', "x\ny", "01"])
PROPERTY = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@st.composite
def csv_texts(draw: st.DrawFn) -> str:
    """A CSV, quoted properly or not, with random damage: extra or missing fields, stray quotes."""
    header = draw(st.lists(NAMES, min_size=1, max_size=3, unique_by=str.lower))
    rows = draw(st.lists(st.lists(CELLS, min_size=len(header), max_size=len(header)), max_size=6))
    if draw(st.booleans()):
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows([header, *rows])
        text = buffer.getvalue()
    else:
        text = "".join(",".join(row) + "\n" for row in [header, *rows])
    damage = draw(st.sampled_from(["none", "extra", "missing", "quote", "truncate"]))
    lines = text.split("\n")
    at = draw(st.integers(min_value=0, max_value=max(len(lines) - 1, 0)))
    if damage == "extra":
        lines[at] += "," + draw(CELLS)
    elif damage == "missing" and "," in lines[at]:
        lines[at] = lines[at].rsplit(",", 1)[0]
    elif damage == "quote":
        lines[at] = '"' + lines[at]
    elif damage == "truncate":
        return text[: draw(st.integers(min_value=0, max_value=len(text)))]
    return "\n".join(lines)


def csv_oracle(text: str) -> tuple[list[str], list[list[str | None]]] | None:
    """The header and rows Python's strict csv module reads, or None if the file is malformed."""
    try:
        records = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error:
        return None
    if not records or not all(name.strip() for name in records[0]):
        return None
    header, rows = records[0], records[1:]
    if len({name.lower() for name in header}) != len(header):
        return None
    fixed: list[list[str | None]] = []
    for row in rows:
        if row == [] and len(header) == 1:
            row = [""]  # a blank line of a one-column file: an empty value
        elif row == []:
            continue  # a blank line of a wider file holds no row: skipped
        if len(row) > len(header) and not any(row[len(header) :]):
            row = row[: len(header)]  # the one form DuckDB accepts: trailing empty fields
        if len(row) != len(header):
            return None
        fixed.append([value if value != "" else None for value in row])
    return header, fixed


def _same(expected: str | None, value: Any) -> bool:
    if expected is None or value is None:
        return expected is None and value is None
    if isinstance(value, bool):
        return expected.lower() == str(value).lower()
    if isinstance(value, int | float):
        return float(expected) == float(value)
    return bool(expected == value)


def _table(home: Path) -> Any:
    state = warehouse_state(home / "warehouse.duckdb")
    assert [name for name in state if "_cohortsync_load_" in name] == []
    return state


@pytest.fixture
def warehouse(home: Path) -> DuckDBEngine:
    url = f"duckdb:///{home / 'warehouse.duckdb'}"
    engine = DuckDBEngine(url, str(home / "warehouse.duckdb"))
    previous = home / "previous.csv"
    previous.write_text("user_ids,n\nkeep,1\n", encoding="utf-8")
    engine.load("t", previous)
    engine.close()
    return engine


def _load(engine: DuckDBEngine, path: Path, **options: Any) -> bool:
    try:
        engine.load("t", path, **options)
    except CohortsyncError:
        return False
    finally:
        engine.close()
    return True


@PROPERTY
@given(text=csv_texts(), allow_empty=st.booleans())
def test_a_csv_loads_exactly_or_not_at_all(
    warehouse: DuckDBEngine, home: Path, text: str, allow_empty: bool
) -> None:
    before = _table(home)
    path = home / "random.csv"
    path.write_text(text, encoding="utf-8")

    loaded = _load(warehouse, path, allow_empty=allow_empty)

    after = _table(home)
    event("loaded" if loaded else "refused")
    if not loaded:
        assert after == before
        return
    expected = csv_oracle(text)
    assert expected is not None, f"a malformed file was loaded: {text!r}"
    header, rows = expected
    columns, table_rows = after["main.t"]
    assert [name for name, _ in columns] == header
    assert len(table_rows) == len(rows)
    ordered = warehouse_rows(home)
    for row, got in zip(rows, ordered, strict=True):
        assert all(_same(e, v) for e, v in zip(row, got, strict=True)), (text, row, got)
    # restore the previous table for the next example
    assert _load(warehouse, home / "previous.csv")


def warehouse_rows(home: Path) -> list[tuple[Any, ...]]:
    """The rows of ``t`` in insertion order (the state fixture sorts them)."""
    import duckdb

    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as connection:
        return connection.execute("SELECT * FROM t ORDER BY rowid").fetchall()


VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.sampled_from([1.5, -0.25]),
    st.sampled_from(["a", "b", "x y"]),
)


@st.composite
def ndjson_texts(draw: st.DrawFn) -> str:
    """NDJSON objects over a few keys, with random damage: a broken line, a non-object."""
    records = draw(
        st.lists(
            st.dictionaries(st.sampled_from(["user_ids", "n", "flag"]), VALUES, min_size=1),
            max_size=6,
        )
    )
    lines = [json.dumps(record) for record in records]
    damage = draw(st.sampled_from(["none", "none", "broken", "array", "blank"]))
    at = draw(st.integers(min_value=0, max_value=len(lines)))
    if damage == "broken":
        lines.insert(at, '{"user_ids": ')
    elif damage == "array":
        lines.insert(at, "[1, 2]")
    elif damage == "blank":
        lines.insert(at, "")
    return "\n".join(lines) + "\n"


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string"


def ndjson_oracle(text: str) -> tuple[list[str], list[dict[str, Any]]] | None:
    """Keys (in first-seen order) and records, or None when a line or a key's types are bad."""
    records: list[dict[str, Any]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            return None
        if not isinstance(record, dict):
            return None
        records.append(record)
    keys: dict[str, set[str]] = {}
    for record in records:
        for key, value in record.items():
            kinds = keys.setdefault(key, set())
            if value is not None:
                kinds.add(_kind(value))
    if any(len(kinds) > 1 for kinds in keys.values()) or not keys:
        return None
    return list(keys), records


@PROPERTY
@given(text=ndjson_texts())
def test_an_ndjson_file_loads_exactly_or_not_at_all(
    warehouse: DuckDBEngine, home: Path, text: str
) -> None:
    before = _table(home)
    path = home / "random.ndjson"
    path.write_text(text, encoding="utf-8")

    loaded = _load(warehouse, path, allow_empty=True)

    after = _table(home)
    event("loaded" if loaded else "refused")
    if not loaded:
        assert after == before
        return
    expected = ndjson_oracle(text)
    assert expected is not None, f"a malformed file was loaded: {text!r}"
    keys, records = expected
    columns, _ = after["main.t"]
    assert sorted(name for name, _ in columns) == sorted(keys)
    names = [name for name, _ in columns]
    got = warehouse_rows(home)
    assert len(got) == len(records)
    for record, row in zip(records, got, strict=True):
        for name, value in zip(names, row, strict=True):
            wanted = record.get(name)
            assert (wanted is None and value is None) or wanted == value, (text, record, row)
    assert _load(warehouse, home / "previous.csv")


@pytest.mark.parametrize(
    "text",
    ['user_ids,n\n"a,1\n', "user_ids,n\na,1,2\n", "user_ids\n", '{"n": 1}\n{"n": "a"}\n'],
)
def test_a_few_through_the_executable(cli: CliRunner, home: Path, text: str) -> None:
    previous = home / "previous.csv"
    previous.write_text("user_ids,n\nkeep,1\n", encoding="utf-8")
    assert cli("warehouse", "load", "t", str(previous)).returncode == 0
    before = _table(home)
    path = home / ("random.ndjson" if text.startswith("{") else "random.csv")
    path.write_text(text, encoding="utf-8")

    done = cli("warehouse", "load", "t", str(path))

    assert done.returncode == 3
    assert _table(home) == before
