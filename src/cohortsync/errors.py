"""The one exception tree of cohortsync.

Every error a user can cause or act on is a :class:`CohortsyncError`. The CLI
prints its message as one line on stderr (no traceback) and exits with its
``exit_code``; anything else that escapes is a bug and keeps its traceback.

::

    CohortsyncError                 exit 1  generic failure
    ├── ConfigError                 exit 2  bad usage or configuration
    │   └── FileFormatTooNew        exit 2  a run's or snapshot's file is newer than the code
    ├── SourceError                 exit 3  the query or source failed
    ├── DestinationRefused          exit 4  the destination refused (400/401)
    ├── RetriesExhausted            exit 5  retryable failures outlasted the retries
    ├── RunInterrupted              exit 6  stopped by SIGTERM/Ctrl-C; resumable
    ├── DiskWriteFailed             exit 7  a run's or snapshot's file could not be written
    ├── MirrorGuardRefused          exit 1  a mirror run would empty or shrink its cohort too far
    ├── AlertHeld                   exit 1  a saved job's alert hold kept a deviating run back
    └── CohortBusy                  exit 1  another run of the cohort holds its lock

An error raised by an export run that was recorded in the run history names
that run: :attr:`CohortsyncError.run_id`, and :attr:`CohortsyncError.report`
(the run's report as stored), set once with :meth:`CohortsyncError.for_run`.
A scheduler or a webhook reads them as declared attributes.

The retry policy of the partner API client is written in these classes
(as in the Singer SDK): :class:`RetriableError` is what the client retries,
and it becomes :class:`RetriesExhausted` when the retries run out.
"""

from __future__ import annotations

import re
from typing import Any, Self

# An engine message longer than this is cut, with a mark, so one bad row of
# data quoted in it cannot flood the terminal.
MAX_MESSAGE_CHARS = 1_000


class CohortsyncError(Exception):
    """Root of every error that a user can act on.

    Args:
        message: one line that says what failed and on which input.
        hint: what to do about it; appended to the message when printed.

    Attributes:
        run_id: the run of the run history this failure belongs to, once known.
        report: that run's report as recorded (``ExportReport.to_dict()``), if any.
    """

    exit_code = 1
    run_id: str | None
    report: dict[str, Any] | None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.run_id = None
        self.report = None

    def for_run(self, run_id: str, report: dict[str, Any] | None = None) -> Self:
        """Name the run this failure belongs to (and its report); returns the error itself.

        A run already named is kept: the innermost code that recorded the run knows it best.
        """
        if self.run_id is None:
            self.run_id = run_id
            self.report = report
        return self

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class ConfigError(CohortsyncError):
    """Bad usage or configuration: a wrong option, a missing setting."""

    exit_code = 2


class FileFormatTooNew(ConfigError):
    """A plan, ack log or snapshot was written by a newer cohortsync than this one.

    Reading it could misnumber batches or skip unsent ones, so it is refused,
    and left as it is, until cohortsync is upgraded (:mod:`cohortsync.export.formats`).
    """


class SourceError(CohortsyncError):
    """The query or the source failed: bad SQL, a missing table, a wrong column."""

    exit_code = 3


class DestinationRefused(CohortsyncError):
    """The destination answered 400 or 401: retrying would not help."""

    exit_code = 4

    def __init__(self, message: str, *, status: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class RetriesExhausted(CohortsyncError):
    """Retryable failures (429, 5xx, 423, network) outlasted every retry."""

    exit_code = 5


class RunInterrupted(CohortsyncError):
    """The run was stopped by a signal after recording its requests in flight."""

    exit_code = 6


class DiskWriteFailed(CohortsyncError):
    """A file of a run or a snapshot could not be written: a full disk, a quota, read-only.

    Raised by :mod:`cohortsync.export.disk` with the file and the reason;
    nothing was committed half way, and the same export resumes once the
    disk has space again.
    """

    exit_code = 7


class MirrorGuardRefused(CohortsyncError):
    """A mirror run would empty its cohort, or remove more of it than allowed; nothing was sent.

    Attributes:
        result_members: identifiers the query returned.
        previous_members: members tracked by the last successful sync.
        exits: members the run would remove.
    """

    def __init__(
        self,
        message: str,
        *,
        hint: str,
        result_members: int,
        previous_members: int,
        exits: int,
    ) -> None:
        super().__init__(message, hint=hint)
        self.result_members = result_members
        self.previous_members = previous_members
        self.exits = exits


class AlertHeld(CohortsyncError):
    """A saved job's alert hold kept its run back before anything was sent.

    The plan deviated from the last successful run beyond a threshold of the
    job's alerts (:mod:`cohortsync.export.hold`).

    Attributes:
        triggers: each trigger that fired, with its numbers (``trigger``,
            ``value``, ``threshold`` and the counts it compared).
    """

    def __init__(self, message: str, *, hint: str, triggers: list[dict[str, Any]]) -> None:
        super().__init__(message, hint=hint)
        self.triggers = triggers


class CohortBusy(CohortsyncError):
    """Another run of the same cohort held its lock for longer than the lock timeout.

    Attributes:
        cohort: the cohort, as its key describes it.
        holder_run_id: the run holding the lock, when it wrote its id.
    """

    def __init__(
        self, message: str, *, hint: str, cohort: str, holder_run_id: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.cohort = cohort
        self.holder_run_id = holder_run_id


class RetriableError(Exception):
    """A failure worth retrying: not shown to users unless retries run out.

    Args:
        message: what happened, e.g. ``HTTP 503 from https://...``.
        retry_after: seconds the server asked us to wait, when it said so.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def whole_message(error: BaseException) -> str:
    """Every line of ``error``'s message, joined into one line.

    Engines (DuckDB, PostgreSQL, Arrow) put the reason on the second or third
    line ("CSV Error on Line: 1" then "maximum line size exceeded"), so a
    message cut to its first line loses what the user needs to act. Lines are
    joined with ``"; "`` and the result is cut at :data:`MAX_MESSAGE_CHARS`.
    A driver error wrapped by SQLAlchemy is read from its ``orig``.
    """
    original = getattr(error, "orig", None) or error
    lines = [re.sub(r"\s+", " ", line).strip() for line in str(original).splitlines()]
    text = "; ".join(line for line in lines if line)
    if not text:
        return type(original).__name__
    if len(text) > MAX_MESSAGE_CHARS:
        return text[: MAX_MESSAGE_CHARS - 1] + "…"
    return text
