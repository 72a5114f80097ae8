"""The --json option most commands share, and the compact JSON they print with it."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
import typer

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON document for scripts instead of text.")
]


def echo_json_line(document: Any) -> None:
    """One compact JSON document on stdout; non-JSON values (dates, decimals) as text."""
    typer.echo(orjson.dumps(document, default=str).decode())
