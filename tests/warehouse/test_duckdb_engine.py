"""What only the embedded DuckDB engine does: URLs, file locks, flat memory."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from cohortsync.errors import ConfigError, SourceError
from cohortsync.warehouse import open_engine
from cohortsync.warehouse.connect import duckdb_path
from cohortsync.warehouse.duckdb_engine import DuckDBEngine

from .conftest import CUSTOMERS


def create_table(path: Path) -> None:
    """Set up ``t`` (one row) with DuckDB itself: queries through the engine cannot write."""
    with duckdb.connect(str(path)) as connection:
        connection.execute("CREATE TABLE t AS SELECT 1 AS x")


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("duckdb:///:memory:", ":memory:"),
        ("duckdb:///data/w.duckdb", "data/w.duckdb"),
        ("duckdb:////abs/w.duckdb", "/abs/w.duckdb"),
        ("duckdb:////abs/my%20w.duckdb", "/abs/my w.duckdb"),
        ("duckdb:///~/w.duckdb", str(Path.home() / "w.duckdb")),
    ],
)
def test_duckdb_urls(url: str, path: str) -> None:
    assert duckdb_path(url) == path


@pytest.mark.parametrize("url", ["duckdb://", "duckdb:///", "duckdb:///?threads=2"])
def test_a_duckdb_url_without_a_file_is_refused(url: str) -> None:
    """DuckDB would open an in-memory database, and a load into it would vanish."""
    with pytest.raises(ConfigError, match="names no database file"):
        duckdb_path(url)


def test_invalid_urls_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="invalid DuckDB warehouse URL"):
        open_engine("duckdb:relative.duckdb")
    with pytest.raises(ConfigError, match="no scheme"):
        open_engine("/tmp/warehouse.duckdb")
    with pytest.raises(ConfigError, match="no database driver for warehouse URL scheme 'nosuchdb'"):
        open_engine("nosuchdb://host/db")


def test_default_is_the_embedded_file_in_the_home(home: Path) -> None:
    with open_engine() as engine:
        assert isinstance(engine, DuckDBEngine)
        assert engine.path == str(home / "warehouse.duckdb")
        assert engine.stream("SELECT 42 AS answer").read_all().to_pylist() == [{"answer": 42}]
    # A query on a warehouse not created yet reads an empty one, and creates nothing.
    assert not (home / "warehouse.duckdb").exists()


def test_the_environment_names_the_warehouse(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = home / "elsewhere.duckdb"
    monkeypatch.setenv("COHORTSYNC_WAREHOUSE", f"duckdb:///{other}")

    customers = home / "c.parquet"
    pq.write_table(CUSTOMERS, customers)

    with open_engine() as engine:
        engine.load("t", customers)

    assert other.exists()
    assert not (home / "warehouse.duckdb").exists()


def test_in_memory_warehouse(tmp_path: Path) -> None:
    path = tmp_path / "c.parquet"
    pq.write_table(CUSTOMERS, path)
    with open_engine("duckdb:///:memory:") as engine:
        assert engine.load("customers", path) == 3
        assert engine.count("SELECT * FROM customers") == 3


def test_queries_open_read_only_and_never_reopen_to_write(tmp_path: Path) -> None:
    create_table(tmp_path / "w.duckdb")
    customers = tmp_path / "c.parquet"
    pq.write_table(CUSTOMERS, customers)
    with open_engine(f"duckdb:///{tmp_path / 'w.duckdb'}") as engine:
        assert isinstance(engine, DuckDBEngine)
        assert engine.count("SELECT * FROM t") == 1
        assert engine._read_only
        with pytest.raises(SourceError, match="INSERT statement"):
            engine.stream("INSERT INTO t VALUES (2)").read_all()
        assert engine._read_only
        assert engine.count("SELECT * FROM t") == 1
        # Only a load opens the file read-write; the next query reopens it read-only.
        assert engine.load("customers", customers) == 3
        assert not engine._read_only
        assert engine.count("SELECT * FROM customers") == 3
        assert engine._read_only


def test_a_reader_leaves_its_connection_free_for_other_queries(tmp_path: Path) -> None:
    with open_engine(f"duckdb:///{tmp_path / 'w.duckdb'}") as engine:
        reader = engine.stream("SELECT range AS id FROM range(10000)", batch_size=1000)
        first = reader.read_next_batch()
        assert engine.count("SELECT * FROM range(5)") == 5
        rest = reader.read_all()
        assert first.num_rows + rest.num_rows == 10_000


def test_two_engines_in_one_process_share_the_file(tmp_path: Path) -> None:
    create_table(tmp_path / "w.duckdb")
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    with open_engine(url) as one, open_engine(url) as other:
        assert one.count("SELECT * FROM t") == 1
        assert other.count("SELECT * FROM t") == 1


def test_a_load_and_a_query_of_one_process_take_turns(tmp_path: Path) -> None:
    customers = tmp_path / "c.parquet"
    pq.write_table(CUSTOMERS, customers)
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    with open_engine(url) as writer, open_engine(url) as reader:
        writer.load("customers", customers)
        # DuckDB refuses a read-only connection beside this process's read-write one.
        with pytest.raises(SourceError, match="open for writing elsewhere in this process"):
            reader.count("SELECT * FROM customers")
        writer.close()
        assert reader.count("SELECT * FROM customers") == 3
        with pytest.raises(SourceError, match="open read-only elsewhere in this process"):
            writer.load("customers", customers)


def test_engines_of_one_process_allowing_other_directories_cannot_share(
    tmp_path: Path,
) -> None:
    create_table(tmp_path / "w.duckdb")
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    with (
        open_engine(url, allow_files=[]) as closed,
        open_engine(url, allow_files=[tmp_path]) as opened,
    ):
        assert closed.count("SELECT * FROM t") == 1
        with pytest.raises(SourceError, match="other allowed directories"):
            opened.count("SELECT * FROM t")


class Holder:
    """Another process that keeps the warehouse file open until told to stop."""

    def __init__(self, path: Path, *, read_only: bool) -> None:
        script = textwrap.dedent(
            f"""
            import sys, duckdb
            connection = duckdb.connect({str(path)!r}, read_only={read_only})
            print("ready", flush=True)
            sys.stdin.read()
            """
        )
        self.process = subprocess.Popen(
            [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "ready"

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)


@pytest.fixture
def warehouse_file(tmp_path: Path) -> Path:
    path = tmp_path / "w.duckdb"
    create_table(path)
    return path


@pytest.fixture
def writer_elsewhere(warehouse_file: Path) -> Iterator[Holder]:
    holder = Holder(warehouse_file, read_only=False)
    yield holder
    holder.stop()


@pytest.fixture
def reader_elsewhere(warehouse_file: Path) -> Iterator[Holder]:
    holder = Holder(warehouse_file, read_only=True)
    yield holder
    holder.stop()


def test_a_file_written_by_another_process_gives_a_clear_error(
    warehouse_file: Path, writer_elsewhere: Holder, customers_parquet: Path
) -> None:
    pid = writer_elsewhere.process.pid
    with open_engine(f"duckdb:///{warehouse_file}") as engine:
        with pytest.raises(
            SourceError,
            match=r"is in use by another process \(PID \d+\), and writing needs it alone",
        ) as raised:
            engine.load("customers", customers_parquet)
        assert str(raised.value).startswith(
            f"the warehouse file {warehouse_file} is in use by another process (PID {pid})"
        )
        assert "try again" in str(raised.value)
        with pytest.raises(SourceError, match=f"in use by another process \\(PID {pid}\\)"):
            engine.stream("SELECT * FROM t")
        with pytest.raises(SourceError, match="which has it open for writing"):
            engine.table_schema("t")


def test_readers_in_other_processes_do_not_block_reads(
    warehouse_file: Path, reader_elsewhere: Holder, customers_parquet: Path
) -> None:
    with open_engine(f"duckdb:///{warehouse_file}") as engine:
        assert engine.count("SELECT * FROM t") == 1
        with pytest.raises(SourceError, match="writing needs it alone"):
            engine.load("customers", customers_parquet)


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    path.write_text("not a database")

    with open_engine(f"duckdb:///{path}") as engine, pytest.raises(SourceError, match=str(path)):
        engine.tables()


MEMORY_SCRIPT = """
import sys, threading, time
import psutil
from cohortsync.warehouse import open_engine
from cohortsync.warehouse.preview import preview

SQL = "SELECT range AS id, 'user_' || lpad(range::VARCHAR, 60, '0') AS user_ids FROM range(2000000)"
process = psutil.Process()
peak = 0
done = False

def sample():
    global peak
    while not done:
        peak = max(peak, process.memory_info().rss)
        time.sleep(0.005)

with open_engine(sys.argv[1]) as engine:
    engine.count("SELECT 1")
    baseline = process.memory_info().rss
    sampler = threading.Thread(target=sample)
    sampler.start()
    rows = 0
    for batch in engine.stream(SQL, batch_size=65536):
        rows += batch.num_rows
        peak = max(peak, process.memory_info().rss)
    assert rows == 2_000_000, rows
    stream_growth = peak - baseline
    result = preview(engine, SQL, limit=20)
    assert result.row_count == 2_000_000
    done = True
    sampler.join()
print(stream_growth // 2**20, (peak - baseline) // 2**20)
"""


def test_streaming_two_million_rows_keeps_memory_flat(tmp_path: Path) -> None:
    """A full copy of this result would take ~150 MB; streaming must stay far below."""
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, url],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    stream_mb, overall_mb = (int(value) for value in done.stdout.split())

    assert stream_mb < 100, f"streaming grew RSS by {stream_mb} MB"
    assert overall_mb < 100, f"stream + preview grew RSS by {overall_mb} MB"
