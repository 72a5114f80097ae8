"""A run's progress on the terminal: a spinner while reading, a bar while sending.

This is the command line's :class:`~cohortsync.export.reporting.RunReporter`;
the export only reports its stages and counts. Everything is drawn on stderr,
so stdout stays the report (or the JSON of ``--json``).
"""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING

from cohortsync.export.reporting import RunReporter, SilentReporter, Stage

if TYPE_CHECKING:  # rich is imported when something is drawn; without a terminal nothing is
    from rich.console import Console
    from rich.progress import Progress, TaskID
    from rich.status import Status

    from cohortsync.export.report import ExportReport

_READING = "reading, deduplicating and planning the source"


def console_reporter(progress: bool | None) -> RunReporter:
    """The reporter of a command: the terminal's, or none.

    Args:
        progress: draw the progress; ``None`` draws it when stderr is a terminal.
    """
    enabled = sys.stderr.isatty() if progress is None else progress
    return ConsoleReporter() if enabled else SilentReporter()


class ConsoleReporter:
    """Draws on stderr: a spinner with the rows read, then a bar of the identifiers sent."""

    def __init__(self, console: Console | None = None) -> None:
        from rich.console import Console

        self.console = console or Console(stderr=True)
        self._lock = threading.Lock()  # rows_read comes from the staging database's threads
        self._rows = 0
        self._status: Status | None = None
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def run_started(self, run_id: str) -> None:
        pass  # the run's id is in the report printed at the end

    def stage_started(self, stage: Stage, *, total: int | None = None) -> None:
        if stage in ("staging", "planning"):
            if self._status is None:
                self._status = self.console.status(_READING)
                self._status.start()
            return
        self._stop_drawing()
        if stage == "sending":
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TaskProgressColumn,
                TextColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("sending"),
                BarColumn(),
                MofNCompleteColumn(),
                TaskProgressColumn(),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task("send", total=total)

    def rows_read(self, rows: int) -> None:
        with self._lock:
            self._rows += rows
            if self._status is not None:
                self._status.update(f"{_READING}: {self._rows:,} rows read")

    def batches_sent(self, batches: int, identifiers: int) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.advance(self._task, identifiers)

    def finished(self, report: ExportReport) -> None:
        self._stop_drawing()

    def _stop_drawing(self) -> None:
        with self._lock:
            status, self._status = self._status, None
        if status is not None:
            status.stop()
        bar, self._bar, self._task = self._bar, None, None
        if bar is not None:
            bar.stop()
