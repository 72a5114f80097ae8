"""The interface every warehouse engine implements.

Engines stream results as Arrow record batches so that no export ever holds a
whole result as Python objects: memory stays flat whatever the cohort size.
Every failure a user can act on (bad SQL, a missing table, an unreadable file,
a warehouse file locked by another process) is raised as a
:class:`~cohortsync.errors.SourceError` or :class:`~cohortsync.errors.ConfigError`
with one line that names the input and says what to do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, Self

import pyarrow as pa

LoadMode = Literal["replace", "append"]
FileFormat = Literal["csv", "parquet", "ndjson"]

LOAD_MODES: tuple[LoadMode, ...] = ("replace", "append")
DEFAULT_BATCH_SIZE = 65_536


class Engine(Protocol):
    """A warehouse connection, opened by :func:`cohortsync.warehouse.open_engine`.

    Use it as a context manager (or call :meth:`close`) so the connection and,
    for the embedded DuckDB file, its file lock are released promptly.
    """

    url: str

    def stream(
        self, sql: str, params: Sequence[Any] = (), *, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> pa.RecordBatchReader:
        """Run ``sql`` with ``?`` placeholders bound to ``params`` and stream the result.

        The schema is known before any row is read, so identifier columns can
        be checked before a single request is sent. Batches hold at most
        ``batch_size`` rows. Errors raised while reading the batches are
        :class:`SourceError` too.
        """
        ...

    def count(self, sql: str, params: Sequence[Any] = ()) -> int:
        """The number of rows ``sql`` returns, counted inside the warehouse."""
        ...

    def table_schema(self, table: str) -> pa.Schema:
        """The columns and Arrow types of ``table`` (``name`` or ``schema.name``)."""
        ...

    def tables(self) -> list[str]:
        """The names of the tables and views a query can read, sorted."""
        ...

    def load(
        self,
        table: str,
        path: Path,
        *,
        mode: LoadMode = "replace",
        format: FileFormat | None = None,
        encoding: str | None = None,
        schema: Mapping[str, str] | None = None,
        allow_empty: bool = False,
    ) -> int:
        """Load a CSV, Parquet or NDJSON file into ``table``; returns rows loaded.

        ``replace`` swaps the table's contents and columns for the file's;
        ``append`` adds the rows by column name (creating the table when it
        does not exist). The file is read strictly (see
        :mod:`cohortsync.warehouse.loading`): ``encoding`` is a CSV or NDJSON
        file's text encoding (UTF-8 by default), ``schema`` declares column
        types, ``allow_empty`` accepts a file without rows. The load is one
        transaction: when it fails or is interrupted the table is left as it was.
        ``format`` defaults to the one the file's extension names.
        """
        ...

    def close(self) -> None:
        """Release the connection; readers still open become unusable."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc_info: object) -> None: ...
