"""The interface every warehouse engine implements.

Engines stream results as Arrow record batches so that no export ever holds a
whole result as Python objects: memory stays flat whatever the cohort size.
"""

from __future__ import annotations

from pathlib import Path
from collections.abc import Sequence
from typing import Any, Literal, Protocol

import pyarrow as pa

LoadMode = Literal["replace", "append"]


class Engine(Protocol):
    """A warehouse connection. Errors are raised as :class:`SourceError`."""

    url: str

    def stream(
        self, sql: str, params: Sequence[Any] = (), *, batch_size: int = 65_536
    ) -> pa.RecordBatchReader:
        """Run ``sql`` with ``?`` placeholders bound to ``params`` and stream the result.

        The schema is known before any row is read, so identifier columns can
        be checked before a single request is sent.
        """
        ...

    def table_schema(self, table: str) -> pa.Schema:
        """The columns and Arrow types of ``table``."""
        ...

    def load(self, table: str, path: Path, *, mode: LoadMode = "replace") -> int:
        """Load a CSV, Parquet or NDJSON file into ``table``; returns rows loaded."""
        ...

    def close(self) -> None: ...
