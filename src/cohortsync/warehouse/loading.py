"""Strict, atomic loads: a file either becomes exactly its rows and columns, or nothing changes.

Why strict: a lenient reader "sniffs" a broken file into something that loads
(a ragged CSV becomes one column named ``user_ids,x``, a number among string
ids turns the column into JSON), and with ``--mode replace`` that garbage
replaces a good table. So every file is read the same way on every engine,
with DuckDB as the reader:

- **CSV**: the header defines the columns. Every row is read as text with
  exactly the header's columns and DuckDB's strict parser (``strict_mode``, no
  null padding, no ignored errors, the delimiter from the extension), which
  names the exact line of a ragged row, an unterminated quote or a byte that
  is not in the file's encoding. Types are then inferred from *every* value
  (never from a sample), so a value late in the file can't be rounded into a
  type guessed from its first rows; a column that doesn't fit one type stays
  text, and ``01234`` stays text too.
- **NDJSON**: every line must be an object; a key whose values have no single
  type (a number among strings) is refused, naming the key and the line,
  unless ``--schema`` declares its type.
- **Declared types and appends**: a value is converted to its declared type,
  or to the existing column's type on ``append``, only if the conversion keeps
  it (``1.5`` into an integer column, a time into a DATE, a string into a
  number, an overflow: each fails naming the column and an example value).
- **Empty files**: refused unless ``allow_empty``; a header-only CSV then makes
  an empty table with the header's columns.

Why atomic: a replace builds the new table beside the old one (a staging table
with a unique name) and swaps it in one transaction; both engines have
transactional DDL, so a failure or a Ctrl-C at any point leaves the old table
and no staging table behind.

The file is read twice: once to check it (and infer types) without writing,
once to build the table. That costs a second parse, but keeps memory flat: no
copy of the file is held while it is checked.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import gzip
import io
import json
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from cohortsync.errors import ConfigError, RunInterrupted, SourceError, whole_message
from cohortsync.warehouse.base import DEFAULT_BATCH_SIZE, FileFormat, LoadMode

if TYPE_CHECKING:
    import sqlalchemy as sa

# -- options ---------------------------------------------------------------------

STAGING_PREFIX = "_cohortsync_load_"

_SCHEMA_HINT = (
    "write --schema as NAME=TYPE pairs separated by commas, e.g. "
    "--schema user_ids=VARCHAR,age=INTEGER, or --schema @FILE with one NAME=TYPE per line"
)
# A type as DuckDB spells it: a name, optional (precision[, scale]), optional [].
_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9_ ]*(\(\s*\d+\s*(,\s*\d+\s*)?\))?(\[\])?")


@dataclass(frozen=True)
class LoadOptions:
    """How to read a file and what a load may do to the table.

    Attributes:
        mode: ``replace`` (the table becomes the file) or ``append``.
        format: ``csv``, ``parquet`` or ``ndjson``; already resolved.
        encoding: the text encoding of a CSV or NDJSON file; UTF-8 when None.
        schema: declared column types (name -> DuckDB type), e.g. from --schema.
        allow_empty: accept a file without rows (a CSV still needs its header).
    """

    mode: LoadMode = "replace"
    format: FileFormat = "csv"
    encoding: str | None = None
    schema: Mapping[str, str] = field(default_factory=dict)
    allow_empty: bool = False


def parse_schema(text: str | None) -> dict[str, str]:
    """``"a=VARCHAR,b=DECIMAL(10,2)"`` (or ``"@file"``) -> ``{"a": "VARCHAR", ...}``.

    The file form holds one ``NAME=TYPE`` per line (or comma-separated);
    blank lines and ``#`` comments are skipped. Types are checked for shape
    here and for meaning by DuckDB when the load starts.

    Raises:
        ConfigError: a pair without ``=``, a type that is not a type name, a
            column declared twice, or an unreadable schema file.
    """
    if text is None:
        return {}
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            content = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(
                f"cannot read the schema file {path}: {whole_message(error)}",
                hint=_SCHEMA_HINT,
            ) from error
        lines = [line.split("#", 1)[0] for line in content.splitlines()]
        text = ",".join(line for line in lines if line.strip())
    declared: dict[str, str] = {}
    for item in _split_pairs(text):
        name, equals, kind = item.partition("=")
        name, kind = name.strip(), " ".join(kind.split())
        if not equals or not name or not _TYPE.fullmatch(kind):
            raise ConfigError(f"invalid --schema entry {item.strip()!r}", hint=_SCHEMA_HINT)
        if name.lower() in (known.lower() for known in declared):
            raise ConfigError(f"--schema declares column {name!r} twice", hint=_SCHEMA_HINT)
        declared[name] = kind.upper()
    return declared


def _split_pairs(text: str) -> list[str]:
    """Split on commas outside parentheses, so ``DECIMAL(10,2)`` stays whole."""
    items: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    items.append("".join(current))
    return [item for item in items if item.strip()]


# -- reading a file, strictly ---------------------------------------------------

# Encodings DuckDB's CSV reader decodes itself; any other is transcoded to a
# temporary UTF-8 copy first (Python's codecs, strict).
_NATIVE_CSV_ENCODINGS = {"utf-8": "utf-8", "utf-16": "utf-16", "iso8859-1": "latin-1"}
_INTEGER_TYPES = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
)
_NUMBER_TYPES = (*_INTEGER_TYPES, "FLOAT", "DOUBLE", "DECIMAL")
_TEXT_TYPES = ("VARCHAR",)


def _base(kind: str) -> str:
    return kind.split("(", 1)[0].strip().upper()


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:59] + "…"


@dataclass
class Prepared:
    """A checked file: the query that yields its rows in their final types."""

    select_sql: str
    params: list[Any]
    columns: list[tuple[str, str]]
    rows: int


@dataclass
class _Source:
    """The file as DuckDB reads it: the reader SQL and each column's raw expression and type."""

    reader: str
    params: list[Any]
    columns: list[tuple[str, str, str]]  # (name, raw expression, raw type)


class FileChecker:
    """Reads one file strictly with a DuckDB connection and plans its final columns.

    The connection may be the warehouse's own (DuckDB engine, inside the load's
    transaction) or an in-memory one (other engines, which then receive the
    checked rows as Arrow batches).
    """

    def __init__(self, cursor: duckdb.DuckDBPyConnection, path: Path, options: LoadOptions) -> None:
        self.cursor = cursor
        self.path = path
        self.options = options
        self._temporary: Path | None = None

    # the public step ------------------------------------------------------------

    def prepare(self, existing: Mapping[str, str] | None) -> Prepared:
        """Check the whole file and return the query for its rows.

        Args:
            existing: the table's columns (name -> DuckDB type) when appending
                to a table that exists; their types are the targets.

        Raises:
            SourceError: the file is malformed, empty, or a value would change.
            ConfigError: --schema names a column the file lacks, or an unknown type.
        """
        source = self._source()
        names = [name for name, _, _ in source.columns]
        self._check_declared(names)
        if existing is not None:
            self._check_append_columns(names, existing)
        targets, rows = self._plan_types(source, existing)
        if rows == 0 and not self.options.allow_empty:
            raise SourceError(
                f"cannot load {self.path}: the file has no rows",
                hint="check that it is the right file, or pass --allow-empty to load "
                "an empty table with its columns",
            )
        select = ", ".join(
            f"CAST({expression} AS {targets[name]}) AS {_quote(name)}"
            if targets[name] != kind
            else f"{expression} AS {_quote(name)}"
            for name, expression, kind in source.columns
        )
        return Prepared(
            select_sql=f"SELECT {select} FROM {source.reader}",
            params=source.params,
            columns=[(name, targets[name]) for name in names],
            rows=rows,
        )

    def close(self) -> None:
        """Remove the transcoded copy of the file, if one was made."""
        if self._temporary is not None:
            shutil.rmtree(self._temporary.parent, ignore_errors=True)
            self._temporary = None

    # readers ----------------------------------------------------------------------

    def _source(self) -> _Source:
        file_format = self.options.format
        if file_format == "parquet":
            if self.options.encoding:
                raise ConfigError(
                    f"--encoding does not apply to {self.path}: Parquet stores its own",
                    hint="drop --encoding",
                )
            return self._typed_source("read_parquet(?)", [str(self.path)])
        if file_format == "csv":
            return self._csv_source()
        return self._ndjson_source()

    def _typed_source(self, reader: str, params: list[Any]) -> _Source:
        try:
            described = self.cursor.execute(f"DESCRIBE SELECT * FROM {reader}", params).fetchall()
        except duckdb.Error as error:
            raise self._unreadable(error) from error
        return _Source(reader, params, [(row[0], _quote(row[0]), str(row[1])) for row in described])

    def _encoding(self) -> str:
        name = self.options.encoding or "utf-8"
        try:
            return codecs.lookup(name).name
        except LookupError:
            raise ConfigError(
                f"unknown encoding {name!r}", hint="use e.g. --encoding utf-8, latin-1 or utf-16"
            ) from None

    def _utf8_copy(self, encoding: str) -> Path:
        """A temporary UTF-8 copy of the file, decoded strictly, naming the first bad line."""
        directory = Path(tempfile.mkdtemp(prefix="cohortsync-load-"))
        self._temporary = directory / (self.path.name + ".utf8")
        decoder = codecs.getincrementaldecoder(encoding)("strict")
        lines = 1
        with (
            _open_bytes(self.path) as source,
            self._temporary.open("w", encoding="utf-8", newline="") as target,
        ):
            while chunk := source.read(1 << 20):
                try:
                    text = decoder.decode(chunk)
                except UnicodeDecodeError as error:
                    good = chunk[: error.start].decode(encoding, errors="ignore")
                    raise SourceError(
                        f"cannot load {self.path}: line {lines + good.count(chr(10))} is not "
                        f"valid {encoding} ({error.reason})",
                        hint="pass the file's encoding with --encoding (e.g. latin-1, utf-16)",
                    ) from error
                lines += text.count("\n")
                target.write(text)
            target.write(decoder.decode(b"", final=True))
        return self._temporary

    def _csv_source(self) -> _Source:
        encoding = self._encoding()
        path = self.path
        native = _NATIVE_CSV_ENCODINGS.get(encoding)
        if native is None:
            path, native = self._utf8_copy(encoding), "utf-8"
        delimiter = "\t" if ".tsv" in [suffix.lower() for suffix in self.path.suffixes] else ","
        header = self._header(path, native, delimiter)
        columns = "{" + ", ".join(f"{_literal(name)}: 'VARCHAR'" for name in header) + "}"
        reader = (
            f"read_csv(?, header = true, columns = {columns}, delim = {_literal(delimiter)}, "
            "quote = '\"', escape = '\"', strict_mode = true, null_padding = false, "
            f"ignore_errors = false, auto_detect = false, encoding = {_literal(native)})"
        )
        return _Source(reader, [str(path)], [(name, _quote(name), "VARCHAR") for name in header])

    def _header(self, path: Path, encoding: str, delimiter: str) -> list[str]:
        """The header's column names, read with Python's csv module (the first record).

        Undecodable bytes are replaced here: a bad byte after the header is
        left for DuckDB's reader, which names its exact line.
        """
        try:
            with _open_bytes(path) as raw:
                text = io.TextIOWrapper(
                    raw,
                    encoding="utf-8-sig" if encoding == "utf-8" else encoding,
                    errors="replace",
                    newline="",
                )
                record = next(csv.reader(text, delimiter=delimiter, strict=True), None)
        except (csv.Error, OSError, EOFError) as error:
            raise SourceError(
                f"cannot load {self.path}: line 1 (the header) cannot be read: "
                f"{whole_message(error)}",
                hint="the first line must name the columns, separated by "
                + ("tabs" if delimiter == "\t" else "commas"),
            ) from error
        if record is not None and any("\ufffd" in name for name in record):
            raise SourceError(
                f"cannot load {self.path}: line 1 (the header) is not valid {encoding}",
                hint="pass the file's encoding with --encoding (e.g. latin-1, utf-16)",
            )
        if record is None:
            raise SourceError(
                f"cannot load {self.path}: the file is empty (no header line, so no columns)",
                hint="a CSV file needs a header line naming its columns",
            )
        seen: dict[str, int] = {}
        for position, name in enumerate(record, start=1):
            if not name.strip():
                raise SourceError(
                    f"cannot load {self.path}: line 1, column {position} of the header is empty",
                    hint="give every column a name in the header line",
                )
            if name.lower() in seen:
                raise SourceError(
                    f"cannot load {self.path}: line 1, the header names column {name!r} twice "
                    f"(columns {seen[name.lower()]} and {position})",
                    hint="give every column a distinct name (names are case-insensitive)",
                )
            seen[name.lower()] = position
        return record

    def _ndjson_source(self) -> _Source:
        encoding = self._encoding()
        path = self.path if encoding == "utf-8" else self._utf8_copy(encoding)
        reader = "read_json(?, format = 'newline_delimited', records = 'true', sample_size = -1)"
        try:
            described = self.cursor.execute(
                f"DESCRIBE SELECT * FROM {reader}", [str(path)]
            ).fetchall()
        except duckdb.Error as error:
            raise self._bad_json(path, error) from error
        if not described or (
            [str(row[0]) for row in described] == ["json"] and str(described[0][1]) == "JSON"
        ):
            raise SourceError(
                f"cannot load {self.path}: the file has no JSON objects, so no columns",
                hint="an NDJSON file holds one JSON object per line",
            )
        columns = []
        for name, kind, *_ in described:
            kind = str(kind)
            if kind == "JSON":
                # A key with no single type: its values as text, typed only if declared.
                if self._declared(name) is None:
                    raise self._mixed_types(path, name)
                columns.append((name, f"json_extract_string({_quote(name)}, '$')", "VARCHAR"))
            else:
                columns.append((name, _quote(name), kind))
        return _Source(reader, [str(path)], columns)

    # checks -------------------------------------------------------------------------

    def _declared(self, name: str) -> str | None:
        for declared, kind in self.options.schema.items():
            if declared.lower() == name.lower():
                return kind
        return None

    def _check_declared(self, names: list[str]) -> None:
        lowered = {name.lower() for name in names}
        unknown = [name for name in self.options.schema if name.lower() not in lowered]
        if unknown:
            raise ConfigError(
                f"--schema names {', '.join(map(repr, unknown))}, which {self.path} does not have",
                hint=f"the file's columns are: {', '.join(names)}",
            )
        for name, kind in self.options.schema.items():
            try:
                self.cursor.execute(f"SELECT CAST(NULL AS {kind})")
            except duckdb.Error as error:
                raise ConfigError(
                    f"--schema {name}={kind}: not a type ({whole_message(error)})",
                    hint="use a SQL type such as VARCHAR, BIGINT, INTEGER, DOUBLE, "
                    "DECIMAL(10,2), BOOLEAN, DATE or TIMESTAMP",
                ) from error

    def _check_append_columns(self, names: list[str], existing: Mapping[str, str]) -> None:
        lowered = {name.lower() for name in existing}
        extra = [name for name in names if name.lower() not in lowered]
        if extra:
            raise SourceError(
                f"cannot append {self.path}: the table has no column {', '.join(map(repr, extra))}",
                hint=f"the table's columns are: {', '.join(existing)}; rename the file's "
                "column, or load with --mode replace",
            )

    def _plan_types(
        self, source: _Source, existing: Mapping[str, str] | None
    ) -> tuple[dict[str, str], int]:
        """The final type of each column, and the row count.

        Inferred columns (CSV text without a declared or existing type) get the
        narrowest type that every value fits exactly. Testing every candidate
        type on every value of a large file costs more than reading it, so the
        candidates are first tried on the file's first rows (a type that fails
        there fails for the file), and only the narrowest one left is tested on
        the whole file, in the same pass that counts the rows and checks the
        converted columns (declared, or appended to a typed column) value by
        value. A candidate refuted by the whole file costs one more pass.
        """
        existing_by_lower = {name.lower(): kind for name, kind in (existing or {}).items()}
        inferred: list[tuple[str, str]] = []
        converted: list[tuple[str, str, str, str]] = []
        targets: dict[str, str] = {}
        for name, expression, kind in source.columns:
            target = self._declared(name) or existing_by_lower.get(name.lower())
            if target is None and kind == "VARCHAR" and self.options.format == "csv":
                inferred.append((name, expression))
                continue
            targets[name] = target or kind
            if target is not None and _normalized(target) != _normalized(kind):
                converted.append((name, expression, kind, target))
        candidates = self._sample_candidates(source, inferred)
        aggregates = ["count(*)"]
        for name, expression in inferred:
            aggregates.append(f"count({expression})")
            aggregates.append(
                _fits(expression, candidates[name][0]) if candidates[name] else "true"
            )
        for _, expression, kind, target in converted:
            aggregates.append(
                f"first({{'value': CAST({expression} AS VARCHAR), 'converted': "
                f"CAST(TRY_CAST({expression} AS {target}) AS VARCHAR)}}) "
                f"FILTER (WHERE {_lossy(expression, kind, target)})"
            )
        values = self._aggregate(source, aggregates)
        rows = int(values.pop(0))
        undecided: list[tuple[str, str]] = []
        for name, expression in inferred:
            present, fits = values.pop(0), values.pop(0)
            if not present or not candidates[name]:
                targets[name] = "VARCHAR"
            elif fits:
                targets[name] = candidates[name][0]
            else:
                candidates[name].pop(0)
                undecided.append((name, expression))
        for name, _, _, target in converted:
            example = values.pop(0)
            if example is not None:
                change = (
                    f"(not a {target} value)"
                    if example["converted"] is None
                    else f"(would become {_show(example['converted'])})"
                )
                raise SourceError(
                    f"cannot load {self.path}: column {name!r} has values that {target} cannot "
                    f"hold unchanged, e.g. {_show(example['value'])} {change}",
                    hint=(
                        "load with --mode replace, or fix the file"
                        if existing is not None and self._declared(name) is None
                        else f"declare a type that holds it, e.g. --schema {name}=VARCHAR"
                    ),
                )
        while undecided:
            tests = [
                _fits(expression, candidates[name][0]) if candidates[name] else "true"
                for name, expression in undecided
            ]
            results = self._aggregate(source, tests)
            still: list[tuple[str, str]] = []
            for (name, expression), fits in zip(undecided, results, strict=True):
                if not candidates[name]:
                    targets[name] = "VARCHAR"
                elif fits:
                    targets[name] = candidates[name][0]
                else:
                    candidates[name].pop(0)
                    still.append((name, expression))
            undecided = still
        return targets, rows

    def _sample_candidates(
        self, source: _Source, inferred: list[tuple[str, str]]
    ) -> dict[str, list[str]]:
        """For each inferred column, the candidate types its first rows allow, narrowest first."""
        if not inferred:
            return {}
        tests = [
            _fits(expression, candidate) for _, expression in inferred for candidate in _CANDIDATES
        ]
        sample = f"(SELECT * FROM {source.reader} LIMIT {_SAMPLE_ROWS})"
        results = self._aggregate(_Source(sample, source.params, source.columns), tests)
        candidates: dict[str, list[str]] = {}
        for name, _ in inferred:
            fits = [results.pop(0) for _ in _CANDIDATES]
            candidates[name] = [kind for kind, ok in zip(_CANDIDATES, fits, strict=True) if ok]
        return candidates

    def _aggregate(self, source: _Source, aggregates: list[str]) -> list[Any]:
        """One pass over the file computing ``aggregates``; a malformed file is named here."""
        try:
            row = self.cursor.execute(
                f"SELECT {', '.join(aggregates)} FROM {source.reader}", source.params
            ).fetchone()
        except duckdb.InterruptException:
            raise
        except duckdb.Error as error:
            raise self._unreadable(error) from error
        assert row is not None
        return list(row)

    # errors -----------------------------------------------------------------------------

    def _unreadable(self, error: duckdb.Error) -> SourceError:
        """DuckDB's CSV error as one line: the file, the line, the column, the reason."""
        if isinstance(error, duckdb.InterruptException):
            raise error
        text = str(error)
        line = re.search(r"CSV Error on Line: (\d+)", text)
        if line is None:
            if self.options.format == "ndjson":
                return self._bad_json(self.path, error)
            return SourceError(
                f"cannot read {self.path} as {self.options.format}: {whole_message(error)}",
                hint="check the file, or pass --format if its extension is misleading",
            )
        # Keep what the user can act on; DuckDB's own advice (its option names)
        # and its dump of reader settings don't apply to this command.
        body = text.split("Possible fixes:", 1)[0].split("Possible Solution:", 1)[0]
        lines = [part.strip() for part in body.splitlines() if part.strip()]
        reason = lines[-1] if len(lines) > 2 else whole_message(error)
        counts = re.fullmatch(r"Expected Number of Columns: (\d+) Found: (\d+)", reason)
        if counts:
            reason = f"{counts.group(2)} fields, but the header has {counts.group(1)}"
        original = re.search(r"Original Line: ([^\n]*)", body)
        column = re.search(r'converting column "([^"]+)"', body)
        where = f"line {line.group(1)}" + (f", column {column.group(1)!r}" if column else "")
        shown = f" (the line reads {_show(original.group(1))})" if original else ""
        return SourceError(
            f"cannot load {self.path}: {where}: {reason}{shown}",
            hint=_csv_hint(reason),
        )

    def _bad_json(self, path: Path, error: duckdb.Error) -> SourceError:
        """The exact line of a malformed NDJSON file (DuckDB's count can be off by one)."""
        seen = False
        for number, line in _lines(path):
            if not line.strip():
                continue
            seen = True
            try:
                value = json.loads(line)
            except ValueError as json_error:
                return SourceError(
                    f"cannot load {self.path}: line {number} is not valid JSON: {json_error}",
                    hint="an NDJSON file holds one JSON object per line",
                )
            if not isinstance(value, dict):
                return SourceError(
                    f"cannot load {self.path}: line {number} is a JSON "
                    f"{_json_kind(value)}, not an object",
                    hint="an NDJSON file holds one JSON object per line",
                )
        if not seen:
            return SourceError(
                f"cannot load {self.path}: the file has no JSON objects, so no columns",
                hint="an NDJSON file holds one JSON object per line",
            )
        return SourceError(
            f"cannot read {self.path} as ndjson: {whole_message(error)}",
            hint="check the file, or pass --format if its extension is misleading",
        )

    def _mixed_types(self, path: Path, key: str) -> SourceError:
        """Name the first line where ``key`` changes type (found again in Python)."""
        first: tuple[str, int] | None = None
        for number, line in _lines(path):
            if not line.strip():
                continue
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and record.get(key) is not None:
                    kind = _json_kind(record[key])
                    if first is None:
                        first = (kind, number)
                    elif kind != first[0]:
                        return SourceError(
                            f"cannot load {self.path}: key {key!r} holds a {kind} on line "
                            f"{number} but a {first[0]} on line {first[1]}",
                            hint=f"fix the file, or declare the key's type, e.g. "
                            f"--schema {key}=VARCHAR",
                        )
        return SourceError(
            f"cannot load {self.path}: key {key!r} has values of no single type",
            hint=f"declare the key's type, e.g. --schema {key}=VARCHAR",
        )


# Inferred CSV types, narrowest first; a value must match its text form exactly
# (most tests compare the cast back to the text), so "01234", "+1", " 1",
# "2024-1-5" and "1e400" stay text. A DOUBLE is a plain decimal number of at
# most 15 significant digits, which a DOUBLE holds exactly.
_CANDIDATES = ("BIGINT", "DOUBLE", "BOOLEAN", "DATE", "TIMESTAMP")


_SAMPLE_ROWS = 20_480


def _fits(x: str, kind: str) -> str:
    """An aggregate that is true when every value of ``x`` is exactly a ``kind``."""
    tests = {
        "BIGINT": f"CAST(TRY_CAST({x} AS BIGINT) AS VARCHAR) = {x}",
        "DOUBLE": f"TRY_CAST({x} AS DOUBLE) IS NOT NULL AND regexp_full_match({x}, "
        f"'[+-]?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]{{1,3}})?') "
        f"AND length(replace(regexp_extract({x}, '[0-9.]+'), '.', '')) <= 15",
        "BOOLEAN": f"lower({x}) IN ('true', 'false')",
        "DATE": f"CAST(TRY_CAST({x} AS DATE) AS VARCHAR) = {x}",
        "TIMESTAMP": f"CAST(TRY_CAST({x} AS TIMESTAMP) AS VARCHAR) = {x}",
    }
    return f"bool_and({x} IS NULL OR coalesce({tests[kind]}, false))"


def _normalized(kind: str) -> str:
    return " ".join(kind.upper().split())


def _lossy(x: str, source: str, target: str) -> str:
    """SQL that is true for a value of ``x`` that ``target`` cannot hold unchanged."""
    base_source, base_target = _base(source), _base(target)
    cast = f"TRY_CAST({x} AS {target})"
    if base_source in _TEXT_TYPES:
        if base_target in _TEXT_TYPES:
            return "false"
        if base_target in _NUMBER_TYPES:
            return (
                f"{x} IS NOT NULL AND ({cast} IS NULL OR "
                f"TRY_CAST({x} AS DOUBLE) IS DISTINCT FROM CAST({cast} AS DOUBLE))"
            )
        if base_target == "DATE":
            return (
                f"{x} IS NOT NULL AND ({cast} IS NULL OR "
                f"TRY_CAST({x} AS TIMESTAMP) IS DISTINCT FROM CAST({cast} AS TIMESTAMP))"
            )
        return f"{x} IS NOT NULL AND {cast} IS NULL"
    if base_target in _TEXT_TYPES:
        return "false"
    return (
        f"{x} IS NOT NULL AND ({cast} IS NULL OR TRY_CAST({cast} AS {source}) IS DISTINCT FROM {x})"
    )


def _csv_hint(reason: str) -> str:
    lowered = reason.lower()
    if "unicode" in lowered or "utf" in lowered:
        return "pass the file's encoding with --encoding (e.g. latin-1, utf-16)"
    if "quote" in lowered:
        return 'close the quote, or double a quote inside a quoted value ("")'
    if "fields" in lowered:
        return (
            "every row needs the header's number of fields; quote values that contain the delimiter"
        )
    return "fix that line of the file"


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


@contextlib.contextmanager
def _open_bytes(path: Path) -> Iterator[Any]:
    if path.suffix.lower() == ".gz":
        with gzip.open(path, "rb") as handle:
            yield handle
    else:
        with path.open("rb") as handle:
            yield handle


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(number, text) of each line of a UTF-8 file, undecodable bytes replaced."""
    with _open_bytes(path) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")
        yield from enumerate(text, start=1)


def staging_name() -> str:
    """A table name no one else uses: where the new table is built before the swap."""
    return f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}"


def is_interrupt(error: BaseException) -> bool:
    """Ctrl-C as DuckDB reports it: its InterruptException, or a bare "Query interrupted"."""
    return isinstance(error, KeyboardInterrupt | duckdb.InterruptException) or (
        type(error) is RuntimeError and str(error).strip() == "Query interrupted"
    )


def interrupted(table: str) -> RunInterrupted:
    """The one line for a load stopped by Ctrl-C or SIGTERM."""
    return RunInterrupted(
        f"load interrupted; table {table} was left as it was",
        hint="run the load again",
    )


# -- DuckDB: check, build beside, swap --------------------------------------------------


def duckdb_columns(
    cursor: duckdb.DuckDBPyConnection, schema_name: str | None, name: str
) -> dict[str, str] | None:
    """The columns of the table (name -> type), or None when there is no such table.

    Read from the catalog rather than with DESCRIBE, whose error on a missing
    table would abort the load's transaction.
    """
    described = cursor.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_catalog = current_database() AND lower(table_schema) = lower(?) "
        "AND lower(table_name) = lower(?) ORDER BY ordinal_position",
        [schema_name or "main", name],
    ).fetchall()
    return {str(row[0]): str(row[1]) for row in described} or None


def load_duckdb(
    connection: duckdb.DuckDBPyConnection,
    table: str,
    schema_name: str | None,
    name: str,
    path: Path,
    options: LoadOptions,
) -> int:
    """Load ``path`` into ``table`` of a DuckDB warehouse in one transaction.

    The file is checked before anything is written; a replace builds a staging
    table and renames it over the old one, an append inserts by column name.
    Any error, or Ctrl-C, rolls the whole transaction back.
    """
    target = f"{_quote(schema_name)}.{_quote(name)}" if schema_name else _quote(name)
    cursor = connection.cursor()
    checker = FileChecker(cursor, path, options)
    try:
        cursor.execute("BEGIN TRANSACTION")
        existing = duckdb_columns(cursor, schema_name, name)
        prepared = checker.prepare(existing if options.mode == "append" else None)
        if options.mode == "append" and existing is not None:
            names = ", ".join(_quote(column) for column, _ in prepared.columns)
            cursor.execute(f"INSERT INTO {target} ({names}) {prepared.select_sql}", prepared.params)
        else:
            stage = staging_name()
            staged = f"{_quote(schema_name)}.{_quote(stage)}" if schema_name else _quote(stage)
            cursor.execute(f"CREATE TABLE {staged} AS {prepared.select_sql}", prepared.params)
            if existing is not None:
                cursor.execute(f"DROP TABLE {target}")
            cursor.execute(f"ALTER TABLE {staged} RENAME TO {_quote(name)}")
        cursor.execute("COMMIT")
    except (KeyboardInterrupt, duckdb.InterruptException) as error:
        _rollback(cursor)
        raise interrupted(table) from error
    except RuntimeError as error:
        _rollback(cursor)
        if is_interrupt(error):
            raise interrupted(table) from error
        raise
    except duckdb.Error as error:
        _rollback(cursor)
        raise SourceError(
            f"loading {path} into {table} failed: {whole_message(error)}",
            hint="the table was left as it was; check the file, or that its columns "
            "match the table's (or load with --mode replace)",
        ) from error
    except BaseException:
        _rollback(cursor)
        raise
    finally:
        checker.close()
        cursor.close()
    return prepared.rows


def _rollback(cursor: duckdb.DuckDBPyConnection) -> None:
    with contextlib.suppress(duckdb.Error):
        cursor.execute("ROLLBACK")


# -- other engines: DuckDB checks the file, the rows travel as Arrow batches --------------


def duckdb_types(schema: pa.Schema) -> dict[str, str]:
    """The DuckDB type of each column of an Arrow schema (a table on another engine)."""
    with duckdb.connect() as connection:
        relation = connection.from_arrow(schema.empty_table())
        return {
            name: str(kind) for name, kind in zip(relation.columns, relation.types, strict=True)
        }


def load_sqlalchemy(
    connect: Callable[[], Any],
    table: str,
    schema_name: str | None,
    name: str,
    path: Path,
    options: LoadOptions,
    *,
    existing: pa.Schema | None,
    copy: Callable[[Any, sa.Table, pa.RecordBatchReader], int],
    errors: tuple[type[BaseException], ...],
) -> int:
    """Load ``path`` into a SQLAlchemy warehouse with the same rules as DuckDB's.

    An in-memory DuckDB reads and checks the file (so the rules, line numbers
    and messages are the same on every engine) and then streams the typed
    rows; ``copy`` writes them (COPY on PostgreSQL). A replace creates a
    staging table, fills it, drops the old table and renames the staging one,
    all in one transaction: PostgreSQL's DDL is transactional.

    Args:
        connect: opens a SQLAlchemy connection to the warehouse.
        existing: the table's Arrow schema, or None when it does not exist.
        copy: writes a reader's batches into a table; returns rows written.
        errors: the driver's exceptions, turned into :class:`SourceError`.
    """
    # Imported here: the embedded DuckDB warehouse never needs SQLAlchemy.
    import sqlalchemy as sa
    from sqlalchemy.exc import SQLAlchemyError

    from cohortsync.warehouse.arrow_types import sql_type

    reader_connection = duckdb.connect()
    checker = FileChecker(reader_connection.cursor(), path, options)
    try:
        appending = options.mode == "append" and existing is not None
        prepared = checker.prepare(
            duckdb_types(existing) if appending and existing is not None else None
        )
        rows = reader_connection.sql(prepared.select_sql, params=prepared.params).to_arrow_reader(
            DEFAULT_BATCH_SIZE
        )
        metadata = sa.MetaData(schema=schema_name)
        with connect() as connection, connection.begin():
            preparer = connection.dialect.identifier_preparer
            if appending:
                target = sa.Table(name, metadata, *(sa.Column(n) for n, _ in prepared.columns))
                copy(connection, target, rows)
            else:
                stage = sa.Table(
                    staging_name(),
                    metadata,
                    *(sa.Column(field.name, sql_type(field)) for field in rows.schema),
                )
                stage.create(connection)
                copy(connection, stage, rows)
                if existing is not None:
                    old = sa.Table(name, sa.MetaData(schema=schema_name))
                    connection.execute(sa.text(f"DROP TABLE {preparer.format_table(old)}"))
                connection.execute(
                    sa.text(
                        f"ALTER TABLE {preparer.format_table(stage)} "
                        f"RENAME TO {preparer.quote(name)}"
                    )
                )
    except (KeyboardInterrupt, duckdb.InterruptException) as error:
        raise interrupted(table) from error
    except RuntimeError as error:
        if is_interrupt(error):
            raise interrupted(table) from error
        raise
    except duckdb.Error as error:
        raise SourceError(
            f"loading {path} into {table} failed: {whole_message(error)}",
            hint="the table was left as it was; check the file",
        ) from error
    except (SQLAlchemyError, pa.ArrowException, *errors) as error:
        raise SourceError(
            f"loading {path} into {table} failed: {whole_message(error)}",
            hint="the table was left as it was; check that the file's columns "
            "match the table's, or load with --mode replace",
        ) from error
    finally:
        checker.close()
        reader_connection.close()
    return prepared.rows
