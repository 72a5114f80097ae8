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

Modules: :mod:`.options` (what a load may do, ``--schema``), :mod:`.checker`
(reading the file strictly and planning its typed columns),
:mod:`.atomic` (building beside the old table and swapping, per engine) and
:mod:`.entry` (the ``load`` method every engine shares, above its atomic load).
"""

from cohortsync.warehouse.loading.atomic import (
    STAGING_PREFIX,
    duckdb_columns,
    interrupted,
    is_interrupt,
    load_duckdb,
    load_sqlalchemy,
    staging_name,
)
from cohortsync.warehouse.loading.checker import FileChecker, Prepared
from cohortsync.warehouse.loading.options import LoadOptions, parse_schema

__all__ = [
    "STAGING_PREFIX",
    "FileChecker",
    "LoadOptions",
    "Prepared",
    "duckdb_columns",
    "interrupted",
    "is_interrupt",
    "load_duckdb",
    "load_sqlalchemy",
    "parse_schema",
    "staging_name",
]
