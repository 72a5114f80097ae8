"""Files to load: which format a file is, and reading it as Arrow batches.

DuckDB reads files with its own readers; the other engines read them here with
pyarrow, batch by batch, so a file larger than memory can still be loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from cohortsync.errors import ConfigError, SourceError, whole_message
from cohortsync.warehouse.base import FileFormat

FORMAT_BY_EXTENSION: dict[str, FileFormat] = {
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".json": "ndjson",
}
FORMATS: tuple[FileFormat, ...] = ("csv", "parquet", "ndjson")
COMPRESSION_EXTENSIONS = (".gz", ".zst")

# pyarrow infers CSV and JSON column types from the first block; a large block
# makes that inference see enough rows to be right for the rest of the file.
_BLOCK_SIZE = 16 << 20


def check_readable(path: Path) -> Path:
    """``path`` if it is a readable file, else a :class:`ConfigError` naming it."""
    if not path.exists():
        raise ConfigError(f"cannot load {path}: no such file", hint="check the path")
    if not path.is_file():
        raise ConfigError(f"cannot load {path}: not a file", hint="give the path of one file")
    try:
        with path.open("rb"):
            pass
    except OSError as error:
        raise ConfigError(
            f"cannot load {path}: {error.strerror}", hint="check the file's permissions"
        ) from error
    return path


def detect_format(path: Path, explicit: str | None = None) -> FileFormat:
    """The format of ``path``: ``explicit`` when given, else from its extension.

    A trailing ``.gz`` or ``.zst`` is looked through (``users.csv.gz`` is CSV).
    """
    if explicit is not None:
        if explicit not in FORMATS:
            raise ConfigError(
                f"unsupported format {explicit!r} for {path}",
                hint=f"use one of: {', '.join(FORMATS)}",
            )
        return cast(FileFormat, explicit)
    suffixes = [suffix.lower() for suffix in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSION_EXTENSIONS:
        suffixes.pop()
    extension = suffixes[-1] if suffixes else ""
    try:
        return FORMAT_BY_EXTENSION[extension]
    except KeyError:
        raise ConfigError(
            f"cannot tell the format of {path} from its extension {extension or '(none)'!r}",
            hint="name it .csv, .parquet, .ndjson or .jsonl, or pass --format csv|parquet|ndjson",
        ) from None


def open_batches(path: Path, file_format: FileFormat) -> pa.RecordBatchReader:
    """A reader over ``path`` that yields Arrow batches without reading it all.

    Raises:
        SourceError: the file is not valid for its format.
    """
    try:
        if file_format == "parquet":
            parquet = pq.ParquetFile(path)
            return pa.RecordBatchReader.from_batches(parquet.schema_arrow, parquet.iter_batches())
        if file_format == "csv":
            delimiter = "\t" if ".tsv" in [s.lower() for s in path.suffixes] else ","
            return cast(
                pa.RecordBatchReader,
                pa_csv.open_csv(
                    path,
                    read_options=pa_csv.ReadOptions(block_size=_BLOCK_SIZE),
                    parse_options=pa_csv.ParseOptions(delimiter=delimiter),
                ),
            )
        return cast(
            pa.RecordBatchReader,
            pa_json.open_json(path, read_options=pa_json.ReadOptions(block_size=_BLOCK_SIZE)),
        )
    except (pa.ArrowException, OSError) as error:
        raise unreadable(path, file_format, error) from error


def unreadable(path: Path, file_format: FileFormat, error: BaseException) -> SourceError:
    """The one-line error for a file that is not valid ``file_format``."""
    return SourceError(
        f"cannot read {path} as {file_format}: {whole_message(error)}",
        hint="check the file, or pass --format if its extension is misleading",
    )
