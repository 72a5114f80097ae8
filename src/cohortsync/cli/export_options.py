"""Command-line options shared by the commands that export to a cohort.

`cohortsync export`, `cohortsync query save` and `cohortsync activation`
take the same choice of operation; the options whose help reads the same
everywhere are declared once here. Options whose help is worded for one
command (--allow-empty, --max-remove-pct, ...) stay with that command.

Every numeric option of the CLI takes its bounds from the constants here, so
a mistyped ``--limit 99999999999999999999`` is click's usage error (exit 2,
naming the option and its range) rather than an ``OverflowError`` deep in
SQLite, Arrow or the socket layer. The settings a saved query or an
activation keeps (``--threads``, ``--max-remove-pct``) are bounded by their
definition instead (:mod:`cohortsync.definitions`), so the command line and
``apply`` refuse a bad value in the same words.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, cast

import typer

from cohortsync.definitions.fields import MAX_THREADS as MAX_THREADS
from cohortsync.definitions.fields import ThreadCount, thread_count
from cohortsync.definitions.invalid import RuleBroken

# Rows, runs or samples a command prints: far more than a terminal shows, well
# inside every 64-bit counter underneath.
MAX_SHOWN = 100_000
# Waits and intervals, in seconds: a day.
MAX_SECONDS = 86_400.0
# The highest TCP port; a server's --port 0 asks the system for any free one.
MAX_PORT = 65_535


class DestinationChoice(StrEnum):
    """The --type values: how an export delivers membership (:mod:`cohortsync.export.spec`)."""

    partner_cohort = "partner-cohort"
    rest_attribute = "rest-attribute"


class AttributeModeChoice(StrEnum):
    """The --attribute-mode values of a ``rest-attribute`` export."""

    array = "array"
    boolean = "boolean"


class OperationChoice(StrEnum):
    """The --operation values: the export operations of :mod:`cohortsync.export.spec`."""

    add = "add"
    remove = "remove"
    mirror = "mirror"


CohortNameOption = Annotated[
    str | None,
    typer.Option("--cohort-name", help="Name shown in Braze; defaults to the cohort id."),
]
THREADS_HELP = (
    "Requests in flight at once: auto (grow while the answers stay fast and the "
    "workspace's rate budget has room, halve on a 429 or a slowdown) or a fixed "
    f"count from 1 to {MAX_THREADS}. Every run against one workspace shares its rate "
    "budget either way."
)
THREADS_METAVAR = f"auto|1-{MAX_THREADS}"


def parse_threads(value: str) -> ThreadCount:
    """``--threads``: ``auto`` or a count within 1..MAX_THREADS, else a usage error."""
    try:
        count = thread_count(value)
    except RuleBroken as broken:
        raise typer.BadParameter(f"{broken.message}; {broken.hint}") from None
    return cast(ThreadCount, count)


def saved_threads(value: str) -> str:
    """A saved setting's ``--threads``, as typed: the definition checks it."""
    return value


# Typer reads no union annotation: the parser makes the value auto or an int (ThreadCount).
ThreadsOption = Annotated[
    Any,
    typer.Option("--threads", parser=parse_threads, metavar=THREADS_METAVAR, help=THREADS_HELP),
]
# A saved query's or an activation's --threads: the definition checks the
# bound, so the command line and 'cohortsync apply' refuse it in the same words.
SavedThreadsOption = Annotated[
    Any,
    typer.Option(
        "--threads",
        parser=saved_threads,
        metavar=THREADS_METAVAR,
        help=THREADS_HELP + " Saved: every run follows it.",
    ),
]
LockTimeoutOption = Annotated[
    float,
    typer.Option(
        "--lock-timeout",
        min=0,
        max=MAX_SECONDS,
        help="Seconds to wait for another run of the same cohort before failing.",
    ),
]
SKIP_INVALID_HELP = (
    "Skip and count identifiers Braze would refuse (longer than 512 characters or "
    "997 bytes, control characters) instead of failing before the first request."
)
SkipInvalidOption = Annotated[bool, typer.Option("--skip-invalid", help=SKIP_INVALID_HELP)]
# Saved settings of an export through a rest-attribute authentication.
SavedAttributeModeOption = Annotated[
    AttributeModeChoice,
    typer.Option(
        "--attribute-mode",
        help="rest-attribute authentications: array (the cohort id in an array attribute) "
        "or boolean (one attribute per cohort).",
    ),
]
SavedAttributeOption = Annotated[
    str | None,
    typer.Option(
        "--attribute",
        help="rest-attribute authentications: the custom attribute [default: cohorts, or "
        "cohort_<cohort id> in boolean mode].",
        show_default=False,
    ),
]
# A saved setting: every run of the activation or query follows it.
SavedSkipInvalidOption = Annotated[
    bool,
    typer.Option(
        "--skip-invalid/--no-skip-invalid",
        help=SKIP_INVALID_HELP + " Saved: every run, scheduled or not, does so.",
    ),
]
