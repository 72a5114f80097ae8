"""What an engine provides so that a mirror can diff inside it and keep its snapshot there.

The mirror planner (:mod:`cohortsync.export.warehouse_mirror`) owns the diff:
which relations exist, which statements fill and count them, what is sent
and how the next snapshot is built. An engine only supplies the few things
that differ from one warehouse to the next, behind :class:`SnapshotWarehouse`:

- the spelling of a handful of SQL pieces (quoting, the test of an
  identifier Braze would refuse, a binary sort order, turning the result's
  identifier columns into ``(kind, value)`` rows, numbering rows);
- *session relations*: named results that live until the session closes
  and that later statements read (PostgreSQL temporary tables, Spark
  cached temporary views), filled from a query or from local Parquet files
  (a snapshot of the local diff, the plans of abandoned runs, the sent
  changes at commit);
- one consistent reading of the user's query (PostgreSQL: one
  ``REPEATABLE READ READ ONLY`` transaction; Spark reads immutable table
  versions);
- the changes streamed back as Arrow batches, never collected;
- the snapshot tables of a generation, written so that a crash leaves them
  whole or absent, and the tables of older generations dropped.

PostgreSQL is :mod:`cohortsync.warehouse.postgres_snapshots`, Spark
:mod:`cohortsync.warehouse.spark_snapshots`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

# The two shapes of every relation the mirror uses.
MEMBERS_SCHEMA = pa.schema([("kind", pa.string()), ("value", pa.string())])
CHANGES_SCHEMA = pa.schema(
    [("kind", pa.string()), ("value", pa.string()), ("should_remove", pa.bool_())]
)


class SnapshotWarehouse(Protocol):
    """One session on a warehouse that runs a mirror's diff and keeps its snapshot tables.

    Attributes:
        engine: the engine's name, as reports give it.
        schema: the schema (Spark: database) of the snapshot tables.
    """

    engine: str
    schema: str

    # -- SQL pieces ----------------------------------------------------------------

    def check_query(self, sql: str) -> str:
        """The one read-only statement of ``sql`` (raises ``SourceError`` otherwise)."""
        ...

    def result_schema(self, sql: str, params: Sequence[Any]) -> pa.Schema:
        """The columns of the checked query ``sql`` (``?`` parameters), reading no row."""
        ...

    def bind(self, sql: str, params: Sequence[Any]) -> tuple[str, Any]:
        """``sql`` and its ``?`` parameters as this session's statements take them."""
        ...

    def identifier(self, name: str) -> str: ...

    def literal(self, text: str) -> str: ...

    def invalid(self, value: str, *, max_chars: int, max_bytes: int) -> str:
        """A condition: the text ``value`` is longer than ``max_chars`` characters or
        ``max_bytes`` UTF-8 bytes, or holds a control character (Braze would refuse it)."""
        ...

    def ordered(self, *columns: str) -> str:
        """An ``ORDER BY`` list sorting text columns by their bytes (the plan's order)."""
        ...

    def unpivot(self, pairs: Sequence[tuple[str, str]]) -> str:
        """What follows ``FROM (query) AS q`` to give one row ``v(kind, value)`` per pair.

        ``pairs`` are (kind literal, column expression of ``q``).
        """
        ...

    def row_number(self) -> str:
        """An expression numbering the rows of a query from 1, in the order they come."""
        ...

    # -- the session -------------------------------------------------------------

    def prepare_schema(self) -> None:
        """Create the snapshot schema if needed; refuse, naming it, a right that is missing."""
        ...

    def declare(self, name: str, schema: pa.Schema) -> None:
        """Announce the session relation ``name`` before :meth:`reading` (filled later)."""
        ...

    def fill(self, name: str, sql: str, params: Any = None, *, doing: str) -> None:
        """Make the declared relation ``name`` hold the rows of ``sql`` (once per relation)."""
        ...

    def load(self, name: str, paths: Sequence[Path], schema: pa.Schema, *, doing: str) -> None:
        """The session relation ``name`` of the ``schema`` columns of these Parquet files."""
        ...

    def reading(self) -> AbstractContextManager[None]:
        """Around the statements that read the user's query: one view of the data, no writes."""
        ...

    def rows(self, sql: str, params: Any = None, *, doing: str) -> list[tuple[Any, ...]]: ...

    def scalar(self, sql: str, *, doing: str) -> Any: ...

    def stream(self, sql: str, schema: pa.Schema, *, doing: str) -> pa.RecordBatchReader:
        """The rows of ``sql`` as Arrow batches of ``schema``, as they come (never collected)."""
        ...

    # -- snapshot tables -----------------------------------------------------------

    def table(self, name: str) -> str:
        """The SQL name of the snapshot table ``name`` in the snapshot schema."""
        ...

    def has_table(self, name: str) -> bool:
        """Whether the snapshot table ``name`` exists, complete."""
        ...

    def write_tables(self, tables: Mapping[str, str], *, doing: str) -> None:
        """Create each snapshot table ``name`` from its query; a crash leaves it whole or absent.

        A table already complete (an earlier, interrupted commit) is kept as it is.
        """
        ...

    def drop_tables(self, prefixes: Sequence[str], *, keep: Collection[str]) -> None:
        """Drop the snapshot tables whose names start with a prefix, but ``keep``.

        A failure leaves them for the next commit.
        """
        ...

    def cancel(self) -> None:
        """Stop the statement running (safe from another thread or a signal handler)."""
        ...

    def close(self) -> None: ...
