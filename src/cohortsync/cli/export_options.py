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
from typing import Annotated

import typer

from cohortsync.definitions.fields import MAX_THREADS as MAX_THREADS

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
ThreadsOption = Annotated[
    int, typer.Option("--threads", min=1, max=MAX_THREADS, help="Requests in flight at once.")
]
# A saved query's or an activation's --threads: the definition checks the
# bound, so the command line and 'cohortsync apply' refuse it in the same words.
SavedThreadsOption = Annotated[
    int, typer.Option("--threads", help=f"Requests in flight at once, 1 to {MAX_THREADS}.")
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
