"""Helpers of the mirror suite: identifier sets as real Parquet files, and back.

Imported by the tests of this directory (pytest puts it on ``sys.path``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

Identifier = tuple[str, str]


def write_identifiers(path: Path, identifiers: Iterable[Identifier]) -> Path:
    """Write ``(kind, value)`` rows to a Parquet file, as the staging step does."""
    rows = list(identifiers)
    table = pa.table(
        {
            "kind": pa.array([kind for kind, _ in rows], pa.string()),
            "value": pa.array([value for _, value in rows], pa.string()),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def read_identifiers(path: Path) -> set[Identifier]:
    table = pq.read_table(path)
    return set(
        zip(table.column("kind").to_pylist(), table.column("value").to_pylist(), strict=True)
    )
