"""The --log-format option of the long-running commands (serve, scheduler, console)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from cohortsync.logs import ENV_VAR


class LogFormatChoice(StrEnum):
    text = "text"
    json = "json"


LogFormatOption = Annotated[
    LogFormatChoice,
    typer.Option(
        "--log-format",
        envvar=ENV_VAR,
        case_sensitive=False,
        help="Log lines as text (the default) or as one JSON object per line on stderr "
        f"(time, level, logger, message and the line's fields). Also {ENV_VAR}.",
    ),
]
