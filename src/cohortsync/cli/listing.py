"""The text form of ``list`` commands: a table of saved objects, or what to do first.

Each ``list`` command prints its own JSON document under ``--json``; without
it they all print a rich table with one saved object a row, and a line
saying how to create the first one when there are none, so an empty catalog
reads the same everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import typer
from rich.console import Console
from rich.table import Table

T = TypeVar("T")


def print_listing(
    rows: Sequence[T],
    *,
    columns: Sequence[str],
    cells: Callable[[T], Sequence[str]],
    empty: str,
) -> None:
    """One table row per item of ``rows`` (its ``cells``), or the ``empty`` line when none."""
    if not rows:
        typer.echo(empty)
        return
    table = Table(*columns)
    for row in rows:
        table.add_row(*cells(row))
    Console().print(table)
