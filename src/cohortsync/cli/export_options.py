"""Command-line options shared by the commands that export to a cohort.

`cohortsync export`, `cohortsync query save` and `cohortsync activation`
take the same choice of operation; the options whose help reads the same
everywhere are declared once here. Options whose help is worded for one
command (--allow-empty, --max-remove-pct, ...) stay with that command.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer


class OperationChoice(StrEnum):
    """The --operation values: the export operations of :mod:`cohortsync.export.spec`."""

    add = "add"
    remove = "remove"
    mirror = "mirror"


ThreadsOption = Annotated[
    int, typer.Option("--threads", min=1, max=64, help="Requests in flight at once.")
]
LockTimeoutOption = Annotated[
    float,
    typer.Option(
        "--lock-timeout",
        min=0,
        help="Seconds to wait for another run of the same cohort before failing.",
    ),
]
SkipInvalidOption = Annotated[
    bool,
    typer.Option(
        "--skip-invalid",
        help=(
            "Skip and count identifiers Braze would refuse (longer than 512 characters or "
            "997 bytes, control characters) instead of failing before the first request."
        ),
    ),
]
