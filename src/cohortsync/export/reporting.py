"""How a run tells the world how far it got: a reporter passed in by whoever started it.

The export draws nothing itself. The command line passes a reporter that
draws a spinner and a progress bar on the terminal
(:mod:`cohortsync.cli.progress`), the scheduler one that logs
(:class:`LoggingReporter`), and a library caller or a test passes nothing
(:class:`SilentReporter`). A console or a web page can follow a live run the
same way.

Once recorded in the run history, a run reports its id (``run_started``;
a resumed run reports the id it continues). It then goes through its stages
in this order, each reported as it starts:
``staging`` (the source is read and its identifiers deduplicated),
``planning`` (the changes are decided and written down), ``sending`` and
``committing`` (a mirror's snapshot, the run's report). A resumed run skips
the first two; a dry run stops after planning.

Reporters are called from the run's thread, except :meth:`RunReporter.rows_read`,
which the staging database may call from its own threads while it pulls the
source: an implementation must be thread-safe there.
"""

from __future__ import annotations

import logging
from typing import Literal, Protocol

from cohortsync.export.report import ExportReport

Stage = Literal["staging", "planning", "sending", "committing"]

log = logging.getLogger(__name__)


class RunReporter(Protocol):
    """What a run reports while it works."""

    def run_started(self, run_id: str) -> None:
        """The run was recorded in the history under ``run_id`` (a new run, or a resumed one).

        Called once, before its first stage; a dry run records nothing and
        never calls it. A console follows the run by this id.
        """

    def stage_started(self, stage: Stage, *, total: int | None = None) -> None:
        """A stage began; ``total`` is the identifiers to send, for ``sending``."""

    def rows_read(self, rows: int) -> None:
        """``rows`` more rows of the source were read (thread-safe; see the module)."""

    def batches_sent(self, batches: int, identifiers: int) -> None:
        """The server acknowledged ``batches`` more batches holding ``identifiers``."""

    def finished(self, report: ExportReport) -> None:
        """The run ended (succeeded, failed, interrupted, or a dry run); ``report`` says how."""


class SilentReporter:
    """Reports nothing: the run of a library caller or a test."""

    def run_started(self, run_id: str) -> None:
        pass

    def stage_started(self, stage: Stage, *, total: int | None = None) -> None:
        pass

    def rows_read(self, rows: int) -> None:
        pass

    def batches_sent(self, batches: int, identifiers: int) -> None:
        pass

    def finished(self, report: ExportReport) -> None:
        pass


class LoggingReporter(SilentReporter):
    """Logs each stage and the end of the run, for a daemon's log (the scheduler's).

    Args:
        label: what the lines name, e.g. the job ``query:nightly``.
    """

    def __init__(self, label: str) -> None:
        self.label = label

    def run_started(self, run_id: str) -> None:
        log.info("%s: run %s", self.label, run_id)

    def stage_started(self, stage: Stage, *, total: int | None = None) -> None:
        if total is None:
            log.info("%s: %s", self.label, stage)
        else:
            log.info("%s: %s %s identifiers", self.label, stage, f"{total:,}")

    def finished(self, report: ExportReport) -> None:
        log.info(
            "%s: run %s %s: %s rows read, %s identifiers sent in %.1f s",
            self.label,
            report.run_id or "(dry run)",
            report.status,
            f"{report.rows_read:,}",
            f"{report.sent_total:,}",
            report.duration_s,
        )
