"""Reading one file strictly with DuckDB: its columns, their types, and every line checked.

Nothing is written here: the checker plans the ``SELECT`` that yields the
file's rows in their final types, and names the line, the column and the
reason of the first thing that would not load unchanged.
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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from cohortsync.errors import ConfigError, SourceError, whole_message
from cohortsync.warehouse.loading.options import LoadOptions
from cohortsync.warehouse.names import quote_identifier, sql_literal

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
            f"CAST({expression} AS {targets[name]}) AS {quote_identifier(name)}"
            if targets[name] != kind
            else f"{expression} AS {quote_identifier(name)}"
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
        return _Source(
            reader, params, [(row[0], quote_identifier(row[0]), str(row[1])) for row in described]
        )

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
        columns = "{" + ", ".join(f"{sql_literal(name)}: 'VARCHAR'" for name in header) + "}"
        reader = (
            f"read_csv(?, header = true, columns = {columns}, delim = {sql_literal(delimiter)}, "
            "quote = '\"', escape = '\"', strict_mode = true, null_padding = false, "
            f"ignore_errors = false, auto_detect = false, encoding = {sql_literal(native)})"
        )
        return _Source(
            reader, [str(path)], [(name, quote_identifier(name), "VARCHAR") for name in header]
        )

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
                columns.append(
                    (name, f"json_extract_string({quote_identifier(name)}, '$')", "VARCHAR")
                )
            else:
                columns.append((name, quote_identifier(name), kind))
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
            aggregates.append(_first_fits(expression, candidates[name]))
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
            if not present:
                targets[name] = "VARCHAR"
            elif not _settled(targets, candidates, name, fits):
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
            tests = [_first_fits(expression, candidates[name]) for name, expression in undecided]
            results = self._aggregate(source, tests)
            still: list[tuple[str, str]] = []
            for (name, expression), fits in zip(undecided, results, strict=True):
                if not _settled(targets, candidates, name, fits):
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


def _first_fits(expression: str, candidates: list[str]) -> str:
    """The SQL test of ``expression`` against its first candidate type (none left: true)."""
    return _fits(expression, candidates[0]) if candidates else "true"


def _settled(
    targets: dict[str, str], candidates: dict[str, list[str]], name: str, fits: object
) -> bool:
    """Settle ``name``'s type from the pass's answer ``fits`` to :func:`_first_fits`.

    Its first candidate becomes its type when every value fits it, and text
    when no candidate is left; otherwise the candidate is dropped and ``False``
    says the next one needs another pass.
    """
    if not candidates[name]:
        targets[name] = "VARCHAR"
    elif fits:
        targets[name] = candidates[name][0]
    else:
        candidates[name].pop(0)
        return False
    return True


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
