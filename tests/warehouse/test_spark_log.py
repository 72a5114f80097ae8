"""The Spark driver's log is rotated when a session starts, once it has grown past its size."""

from __future__ import annotations

from pathlib import Path

from cohortsync.warehouse.spark_session import rotate_log


def contents(directory: Path) -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted(directory.iterdir())}


def test_a_small_log_stays_where_it_is(tmp_path: Path) -> None:
    log = tmp_path / "spark.log"
    log.write_text("x" * 99)
    rotate_log(log, max_bytes=100)
    assert contents(tmp_path) == {"spark.log": "x" * 99}


def test_a_grown_log_moves_to_dot_one_and_the_oldest_of_keep_is_dropped(tmp_path: Path) -> None:
    log = tmp_path / "spark.log"
    for generation in "abcd":  # four sessions, each starting on a log of 100 bytes
        log.write_text(generation * 100)
        rotate_log(log, max_bytes=100, keep=3)
        assert not log.exists()
    assert contents(tmp_path) == {
        "spark.log.1": "d" * 100,
        "spark.log.2": "c" * 100,
        "spark.log.3": "b" * 100,
    }


def test_no_log_yet_is_nothing_to_rotate(tmp_path: Path) -> None:
    rotate_log(tmp_path / "spark.log", max_bytes=1)
    assert contents(tmp_path) == {}
