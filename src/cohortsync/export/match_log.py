"""The match report of a ``rest-attribute`` run, as durable as its acknowledgements.

A ``/users/track`` answer's non-fatal errors exist only in the answer. The
report a run records when it ends would hold them, but a killed attempt
records no report, so its errors would be lost while its acknowledged
batches, recorded one by one, are never sent again. Each answer is therefore
appended to the run's match log (``runs/<run id>/match.log``,
:mod:`cohortsync.export.formats`) before its batch's acknowledgement is
recorded: every acknowledged batch has its line on disk.

A resumed run reads back the lines of the batches acknowledged so far
(:func:`acknowledged_match`), each batch once (a batch in flight when an
attempt was killed may have a line and no acknowledgement; it is sent again
and its newer line counts), and adds the answers of what it sends itself.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from cohortsync.catalog import runs
from cohortsync.export import disk, formats
from cohortsync.export.batches import Batch
from cohortsync.export.rest_attribute import MatchTally, TrackAnswer, merge_match


def start_match_log(path: Path, carried: Mapping[str, Any] | None = None) -> None:
    """Create the run's match log with its header, unless it exists.

    ``carried`` is the match report the run's history holds for batches
    acknowledged before the log existed (a run an earlier release began).
    """
    disk.start_log(path, formats.match_log_header(carried), formats.MATCH_LOG_WHAT)


class MatchLog:
    """Appends one line per answered batch to a run's match log (created if missing)."""

    def __init__(self, path: Path) -> None:
        self._log = disk.AppendLog(path, formats.match_log_header(None), formats.MATCH_LOG_WHAT)

    def add(self, batch: Batch, answer: TrackAnswer) -> None:
        """Record what the answer to ``batch`` said; call before recording its ack.

        One ``write(2)``, which a killed process cannot leave half done but
        at the end of the file, where a torn line is left out when read.
        """
        entry: dict[str, Any] = {"batch": batch.number, "objects": batch.size}
        if answer.errors:
            entry.update(
                errors=answer.errors,
                reasons=dict(answer.reasons),
                first=[dict(item) for item in answer.first],
            )
        self._log.append(orjson.dumps(entry) + b"\n")

    def close(self) -> None:
        self._log.close()


def acknowledged_match(path: Path, acknowledged: Collection[int]) -> dict[str, Any] | None:
    """The match report of the ``acknowledged`` batches, from the log; ``None`` without one.

    Each batch counts once, by its last line; lines of batches not
    acknowledged are left out. What the header carries in is added.

    Raises:
        FileFormatTooNew: a newer release wrote the log.
        CohortsyncError: the log is damaged.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    carried, entries = formats.match_log_lines(path, data)
    last: dict[int, Mapping[str, Any]] = {}
    for entry in entries:
        number = entry.get("batch") if isinstance(entry, dict) else None
        if isinstance(number, int) and number in acknowledged:
            last[number] = entry
    tally = MatchTally()
    for number in sorted(last):
        entry = last[number]
        answer = TrackAnswer(
            int(entry.get("errors", 0)),
            dict(entry.get("reasons", {})),
            tuple(entry.get("first", ())),
        )
        tally.add(int(entry.get("objects", 0)), answer)
    return merge_match(carried, tally)


def resumed_match(
    catalog: sa.Engine, run_id: str, run_dir: Path, recorded: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """The match report of every batch the run acknowledged before this attempt.

    The acknowledgements are those of the catalog and of the ack log a
    killed attempt left unfolded. A run without a match log was begun by an
    earlier release: its log is started here, carrying the match report its
    history holds (``recorded``; none after a kill), so that what this
    attempt logs adds to it.

    Raises:
        FileFormatTooNew: a newer release wrote the match log or the ack log.
        CohortsyncError: the match log is damaged.
    """
    path = run_dir / formats.MATCH_LOG_FILE
    if not path.exists():
        start_match_log(path, recorded)
    return acknowledged_match(path, _acknowledged(catalog, run_id, run_dir))


def _acknowledged(catalog: sa.Engine, run_id: str, run_dir: Path) -> set[int]:
    done = runs.acknowledged_batches(catalog, run_id)
    ack_log = run_dir / formats.ACK_LOG_FILE
    try:
        data = ack_log.read_bytes()
    except FileNotFoundError:
        return done
    records = formats.ack_log_records(ack_log, data)
    return done | {int(number) for number, _ in formats.ACK_RECORD.iter_unpack(records)}
