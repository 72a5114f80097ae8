"""Which SQL a query may be: exactly one statement, and one that only reads.

Every query path (exports, saved and scheduled queries, activations and
segments, ``apply``, ``warehouse query``, previews) reaches the warehouse
through an engine's ``stream`` or ``count``, and both call the checks here
before anything runs. Writing belongs to ``cohortsync warehouse load`` alone,
so a query that holds a second statement (``select ...; drop table keep``), a
``COPY ... TO``, an ``ATTACH`` or a data-modifying ``WITH`` is refused with
one line saying what was refused and what to do instead.

The checks use real parsers, never patterns over the text: a ``;`` inside a
comment or a string literal is not a statement boundary, and the parser knows
that. DuckDB's own parser (``duckdb.extract_statements`` for the statement
list and types, ``json_serialize_sql`` for the parse tree) checks DuckDB
queries; sqlglot checks the SQL of the other engines, in their dialect
(:mod:`cohortsync.warehouse.dialect_statements`, imported only by them: the
embedded warehouse never pays for sqlglot).

These checks are the first of two locks. The engines also run every query
where writing is impossible (DuckDB opened read-only with file access off, a
PostgreSQL transaction set ``READ ONLY``), so a check that missed a case
still could not write.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import duckdb

from cohortsync.errors import SourceError, whole_message

LOAD_HINT = "a query is one SELECT; write data with 'cohortsync warehouse load TABLE FILE'"
_ONE_QUERY_HINT = "give one SELECT, WITH, VALUES, TABLE, FROM, DESCRIBE, SHOW or SUMMARIZE query"

# What to do instead, by the kind of statement refused (DuckDB's StatementType).
HINTS = {
    "ATTACH": "queries read the warehouse only; load other data with 'cohortsync warehouse load'",
    "DETACH": "queries read the warehouse only",
    "COPY": "queries neither read nor write files with COPY; load files with "
    "'cohortsync warehouse load', read an allowed one with SELECT * FROM read_csv(...)",
    "EXPORT": "queries write no files; the warehouse is a file you can copy",
    "LOAD": "queries load no extensions",
    "PRAGMA": "read settings with SELECT * FROM duckdb_settings(), columns with DESCRIBE <table>",
    "CALL": "call a table function with SELECT * FROM <function>(...)",
    "CHECKPOINT": LOAD_HINT,
    "SET": "queries change no settings; give one SELECT",
    "VARIABLE_SET": "queries change no settings; give one SELECT",
    "TRANSACTION": "each query runs in its own read-only transaction; give one SELECT",
    "PREPARE": "give the query itself; parameters are bound for you",
    "EXECUTE": "give the query itself; parameters are bound for you",
}

_parser_lock = threading.Lock()
_parser: duckdb.DuckDBPyConnection | None = None


def refused(kind: str, hint: str | None = None) -> SourceError:
    article = "an" if kind[:1] in "AEIO" or kind in ("UPDATE", "UNLISTEN") else "a"
    return SourceError(
        f"the query is {article} {kind} statement, and queries only read",
        hint=hint or LOAD_HINT,
    )


def too_many(count: int) -> SourceError:
    return SourceError(
        f"the query holds {count} statements; a query is exactly one",
        hint="give one SELECT, and write data with 'cohortsync warehouse load'",
    )


def empty_query() -> SourceError:
    return SourceError("the query is empty", hint=_ONE_QUERY_HINT)


# -- DuckDB ---------------------------------------------------------------------


def check_duckdb_query(sql: str) -> str:
    """The one read-only statement of ``sql``, as DuckDB parses it.

    Accepted: a SELECT in any of DuckDB's spellings (``WITH``, ``VALUES``,
    ``TABLE t``, ``FROM t``, ``DESCRIBE``, ``SHOW``, ``SUMMARIZE``, ``PIVOT``
    with its values listed), and ``EXPLAIN [ANALYZE]`` of one. ``DESCRIBE``
    and the others are SELECTs over DuckDB's catalog, useful to check a
    query's columns before an export.

    Returns:
        The statement's text, without the ``;`` and comments that may follow
        it, so callers can wrap it (``SELECT count(*) FROM (...)``).

    Raises:
        SourceError: not parseable, not exactly one statement, or not a query.
    """
    statement = _one_duckdb_statement(sql)
    if statement.type == duckdb.StatementType.EXPLAIN:
        _check_explained(statement.query)
    else:
        _check_duckdb_select(statement)
    return _without_trailing(statement.query)


def _one_duckdb_statement(sql: str) -> Any:
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as error:
        raise SourceError(
            f"query failed: {whole_message(error)}", hint="check the SQL syntax"
        ) from error
    if not statements:
        raise empty_query()
    if len(statements) > 1:
        raise too_many(len(statements))
    try:
        statements[0].type  # noqa: B018 - the binding converts the type lazily
    except ValueError as error:
        # A statement newer than the Python binding's StatementType list
        # (such as UPDATE EXTENSIONS): not a query, whatever it is.
        raise refused(_first_keyword(sql) or "non-query", _ONE_QUERY_HINT) from error
    return statements[0]


def _check_duckdb_select(statement: Any) -> None:
    kind = statement.type.name
    if statement.type == duckdb.StatementType.MULTI:
        raise SourceError(
            "the query is a PIVOT that DuckDB would run as several statements",
            hint="list the pivoted values: PIVOT t ON c IN ('a', 'b') USING sum(x)",
        )
    if statement.type != duckdb.StatementType.SELECT:
        keyword = _first_keyword(statement.query)
        raise refused(keyword or kind, HINTS.get(keyword) or HINTS.get(kind))
    # A SELECT may still hold DELETE, INSERT or UPDATE in a WITH clause
    # (``WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d``): find any
    # in DuckDB's own parse tree.
    tree = _parse_tree(statement.query)
    modifying = _modifying_nodes(tree)
    if modifying:
        raise SourceError(
            f"the query holds {' and '.join(sorted(modifying))} inside it (a data-modifying "
            "WITH or subquery), and queries only read",
            hint=LOAD_HINT,
        )


def _check_explained(sql: str) -> None:
    """``EXPLAIN [ANALYZE] <query>``: the explained statement must pass the checks too.

    ``EXPLAIN ANALYZE`` runs its statement, so an ``EXPLAIN ANALYZE INSERT``
    writes; the explained statement is found with DuckDB's tokenizer and
    checked like any query.
    """
    data = sql.encode()
    # DuckDB's tokenizer gives byte offsets into the UTF-8 text.
    starts = [start for start, _ in duckdb.tokenize(sql)]
    words = [
        data[start:end].decode().strip().lower()
        for start, end in zip(starts, [*starts[1:], len(data)], strict=True)
    ]
    rest = 2 if len(words) > 1 and words[1] == "analyze" else 1
    if rest >= len(starts):
        raise refused("EXPLAIN", "give EXPLAIN [ANALYZE] SELECT ...")
    explained = data[starts[rest] :].decode()
    try:
        statement = _one_duckdb_statement(explained)
    except SourceError as error:
        raise SourceError(
            "the query is an EXPLAIN that cohortsync cannot check (options are not supported)",
            hint="give EXPLAIN [ANALYZE] SELECT ...",
        ) from error
    if statement.type == duckdb.StatementType.EXPLAIN:
        raise refused("EXPLAIN EXPLAIN", "give EXPLAIN [ANALYZE] SELECT ...")
    _check_duckdb_select(statement)


def _parse_tree(sql: str) -> Any:
    """DuckDB's parse tree of one SELECT, as ``json_serialize_sql`` writes it."""
    global _parser
    with _parser_lock:
        if _parser is None:
            # Parsing needs no files: this private database has no access to any.
            _parser = duckdb.connect(":memory:", config={"enable_external_access": False})
        cursor = _parser.cursor()
    try:
        text = cursor.sql("SELECT json_serialize_sql(?)", params=[sql]).fetchall()[0][0]
    except duckdb.Error as error:
        raise SourceError(
            f"query failed: {whole_message(error)}", hint="check the SQL syntax"
        ) from error
    finally:
        cursor.close()
    tree = json.loads(text)
    if tree.get("error"):
        raise SourceError(
            f"cannot check the query: {tree.get('error_message') or 'DuckDB cannot parse it'}",
            hint=_ONE_QUERY_HINT,
        )
    return tree


def _modifying_nodes(tree: Any) -> set[str]:
    """Kinds of data-modifying query nodes (``DELETE_QUERY_NODE``...) anywhere in ``tree``."""
    found: set[str] = set()
    pending = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            kind = node.get("type")
            if isinstance(kind, str) and kind.endswith("_QUERY_NODE"):
                found.add(kind.removesuffix("_QUERY_NODE").replace("_", " "))
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return found


def _first_keyword(sql: str) -> str:
    """The first keyword of ``sql`` in capitals (``INSTALL``, ``USE``), for messages."""
    data = sql.encode()
    try:
        tokens = duckdb.tokenize(sql)
    except duckdb.Error:
        return ""
    for index, (start, kind) in enumerate(tokens):
        if kind == duckdb.token_type.keyword:
            end = tokens[index + 1][0] if index + 1 < len(tokens) else len(data)
            return data[start:end].decode().strip().upper()
    return ""


def _without_trailing(sql: str) -> str:
    """``sql`` cut after its last token that is neither a ``;`` nor a comment."""
    data = sql.encode()
    tokens = duckdb.tokenize(sql)
    ends = [*(start for start, _ in tokens[1:]), len(data)]
    last_end = len(data)
    for (start, kind), end in zip(tokens, ends, strict=True):
        text = data[start:end].decode().strip()
        if kind == duckdb.token_type.comment or text == ";":
            continue
        last_end = start + len(data[start:end].rstrip())
    return data[:last_end].decode()
