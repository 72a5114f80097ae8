"""The ack log: every acknowledgement is written at once, folded into the catalog in groups."""

from __future__ import annotations

import struct
from pathlib import Path

import sqlalchemy as sa

from cohortsync.catalog import runs
from cohortsync.catalog.db import open_catalog
from cohortsync.export import formats
from cohortsync.export.batches import Batch
from cohortsync.export.run import ACK_LOG, Checkpoint, fold_ack_log


def start(tmp_path: Path) -> tuple[sa.Engine, str]:
    catalog = open_catalog(tmp_path / "catalog.db")
    run_id = runs.start_run(
        catalog,
        job={},
        endpoint="http://127.0.0.1:9",
        partner="treasuredata",
        cohort_id="c",
        data_import_key="dik",
        operation="add",
    )
    return catalog, run_id


def test_a_killed_attempts_logged_acks_are_folded_before_resuming(tmp_path: Path) -> None:
    catalog, run_id = start(tmp_path)
    log = tmp_path / ACK_LOG
    record = struct.Struct("<qq")
    # Two whole records, then a torn one (the process died inside the write).
    log.write_bytes(record.pack(0, 1000) + record.pack(7, 1000) + record.pack(9, 1000)[:5])
    fold_ack_log(catalog, run_id, log)
    assert runs.acknowledged_batches(catalog, run_id) == {0, 7}
    assert not log.exists()
    fold_ack_log(catalog, run_id, log)  # no log left: nothing to do


def test_each_ack_is_in_the_log_before_the_next_batch(tmp_path: Path) -> None:
    catalog, run_id = start(tmp_path)
    log = tmp_path / ACK_LOG
    checkpoint = Checkpoint(catalog, run_id, log)  # a new log starts with its format header
    assert log.read_bytes() == formats.ACK_HEADER
    for number in range(3):
        checkpoint.add(Batch(number, b"{}", {"user_ids": 1000}))
        # On disk (page cache) at once: a SIGKILL now would lose none of them.
        assert len(log.read_bytes()) == 16 * (number + 2)
    checkpoint.close()
    assert runs.acknowledged_batches(catalog, run_id) == {0, 1, 2}
    assert not log.exists()
