"""``--allow-files DIR``: open host directories to DuckDB queries, on purpose.

Queries reach no host file by default (see :mod:`cohortsync.warehouse.duckdb_engine`).
The option adds its directories to the setting ``COHORTSYNC_ALLOW_FILES`` for
this process, so every engine the command opens (the export's, a saved
query's, a segment's) sees the same directories without each path passing
them along.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

ALLOW_FILES_ENV = "COHORTSYNC_ALLOW_FILES"

AllowFilesOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--allow-files",
        help="A directory whose files DuckDB queries may read (read_csv, read_parquet...); "
        f"repeatable. Default: none, or ${ALLOW_FILES_ENV} ({os.pathsep}-separated).",
        show_default=False,
    ),
]


def open_files(directories: list[Path] | None) -> None:
    """Add ``directories`` to ``COHORTSYNC_ALLOW_FILES`` for the rest of this process.

    An unknown directory is refused when the warehouse opens (a typo would
    otherwise open nothing, silently).
    """
    if not directories:
        return
    current = [part for part in os.environ.get(ALLOW_FILES_ENV, "").split(os.pathsep) if part]
    given = [str(directory.expanduser().absolute()) for directory in directories]
    os.environ[ALLOW_FILES_ENV] = os.pathsep.join([*current, *given])
