"""Stage a result's identifiers out of core, deduplicated and counted.

The Arrow stream of the source goes straight into a per-run DuckDB file under
``$COHORTSYNC_HOME/runs/<run_id>/`` with a small memory limit and a temp
directory beside it, so ten million identifiers spill to disk instead of
living as Python objects. One ``GROUP BY (kind, value)`` over the stream gives
the distinct identifiers and, from the group sizes, the NULL, empty and
duplicate counts: a single pass, no per-row Python.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from cohortsync.export.identifiers import KINDS, IdentifierColumns

STAGING_MEMORY_LIMIT = "128MB"
STAGING_THREADS = 2
IDENTIFIERS_VIEW = "identifiers"
"""The staged relation: distinct ``(kind UTINYINT, value VARCHAR)``, no NULL or empty."""


@dataclass
class KindCounts:
    """What one identifier kind contributed: values kept and values skipped."""

    distinct: int = 0
    null: int = 0
    empty: int = 0
    duplicate: int = 0


@dataclass
class StagedCounts:
    """Rows read from the source and per-kind counts of the staged identifiers."""

    rows_read: int = 0
    kinds: dict[str, KindCounts] = field(default_factory=dict)

    def skipped(self) -> dict[str, int]:
        """Skipped values over every kind: ``{"null", "empty", "duplicate"}``."""
        return {
            "null": sum(k.null for k in self.kinds.values()),
            "empty": sum(k.empty for k in self.kinds.values()),
            "duplicate": sum(k.duplicate for k in self.kinds.values()),
        }


class SourceStreamFailed(Exception):
    """The source stream raised while being staged; ``cause`` is what it raised."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class Staging:
    """A run's staging database; use as a context manager.

    Args:
        run_dir: the run's directory; the database and its spill files go there.
        memory_limit: DuckDB's memory limit, which bounds the run's peak memory.
    """

    def __init__(self, run_dir: Path, *, memory_limit: str = STAGING_MEMORY_LIMIT) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        self.path = run_dir / "staging.duckdb"
        self.connection = duckdb.connect(
            str(self.path),
            config={
                "memory_limit": memory_limit,
                "temp_directory": str(run_dir / "spill"),
                "threads": STAGING_THREADS,
            },
        )

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection and delete the staging file and its spill files."""
        self.connection.close()
        for path in (self.path, self.path.with_name(self.path.name + ".wal")):
            path.unlink(missing_ok=True)

    def load(self, reader: pa.RecordBatchReader, columns: IdentifierColumns) -> StagedCounts:
        """Stage the identifiers of ``reader`` and count what was kept and skipped.

        Raises:
            SourceStreamFailed: the source stream failed while being read; the
                caller turns it into a :class:`SourceError` naming the source.
            duckdb.Error: staging itself failed (disk full, for instance).
        """
        names = list(dict.fromkeys(columns.columns.values()))
        counts = StagedCounts()
        failure: list[BaseException] = []

        def counted() -> Iterator[pa.RecordBatch]:
            try:
                for batch in reader:
                    counts.rows_read += batch.num_rows
                    yield batch.select(names)
            except Exception as error:
                failure.append(error)
                raise

        schema = pa.schema([reader.schema.field(name) for name in names])
        stream = pa.RecordBatchReader.from_batches(schema, counted())
        self.connection.register("source_stream", stream)
        kinds = columns.kinds
        codes = ", ".join(str(KINDS.index(kind)) for kind in kinds)
        values = ", ".join(f"{_quote(columns.columns[kind])}::VARCHAR" for kind in kinds)
        if len(kinds) == 1:
            pairs = f"SELECT {codes}::UTINYINT AS kind, {values} AS value FROM source_stream"
        else:
            pairs = (
                f"SELECT unnest([{codes}])::UTINYINT AS kind, unnest([{values}]) AS value "
                "FROM source_stream"
            )
        try:
            self.connection.execute(
                f"CREATE OR REPLACE TABLE staged AS "
                f"SELECT kind, value, count(*) AS n FROM ({pairs}) GROUP BY kind, value"
            )
        except duckdb.Error as error:
            if failure:
                raise SourceStreamFailed(failure[0]) from error
            raise
        finally:
            self.connection.unregister("source_stream")
        self.connection.execute(
            f"CREATE OR REPLACE VIEW {IDENTIFIERS_VIEW} AS "
            "SELECT kind, value FROM staged WHERE value IS NOT NULL AND value <> ''"
        )
        rows = self.connection.execute(
            """
            SELECT kind,
                   count(*) FILTER (WHERE value <> ''),
                   coalesce(sum(n) FILTER (WHERE value IS NULL), 0),
                   coalesce(sum(n) FILTER (WHERE value = ''), 0),
                   coalesce(sum(n - 1) FILTER (WHERE value <> ''), 0)
            FROM staged GROUP BY kind ORDER BY kind
            """
        ).fetchall()
        counts.kinds = {kind: KindCounts() for kind in kinds}
        for code, distinct, null, empty, duplicate in rows:
            counts.kinds[KINDS[code]] = KindCounts(
                int(distinct), int(null), int(empty), int(duplicate)
            )
        return counts


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
