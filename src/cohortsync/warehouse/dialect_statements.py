"""Which SQL a query may be, on the engines reached through SQLAlchemy: parsed by sqlglot.

The rules are those of :mod:`cohortsync.warehouse.statements` (one statement,
and one that only reads); this module applies them with sqlglot, in the
database's own dialect, and is imported only by those engines.
"""

from __future__ import annotations

import logging

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from cohortsync.errors import SourceError, whole_message
from cohortsync.warehouse.statements import HINTS, LOAD_HINT, empty_query, refused, too_many

# sqlglot's name for an SQLAlchemy dialect, when they differ.
_SQLGLOT_DIALECTS = {"postgresql": "postgres", "mssql": "tsql", "mariadb": "mysql"}

# sqlglot warns through logging when it falls back to an opaque Command; such
# statements are refused anyway, and the warning would add a second line to
# the one-line error.
logging.getLogger("sqlglot").setLevel(logging.ERROR)


def check_sql_query(sql: str, dialect: str) -> str:
    """The one read-only statement of ``sql`` in the SQLAlchemy ``dialect``, parsed by sqlglot.

    Accepted: ``SELECT`` (with ``WITH``), ``VALUES``, ``TABLE t`` and set
    operations of them, without ``SELECT ... INTO`` (which creates a table),
    row locks (``FOR UPDATE``) or data-modifying ``WITH`` clauses.

    Returns:
        ``sql`` as written (sqlglot's regenerated SQL could differ in meaning),
        cut after its last token so no ``;`` or comment follows it.

    Raises:
        SourceError: not parseable, not exactly one statement, or not a query.
    """
    read: str | None = _SQLGLOT_DIALECTS.get(dialect, dialect)
    try:
        parsed = sqlglot.parse(sql, read=read)
    except SqlglotError as error:
        raise SourceError(
            f"query failed: cannot parse the query: {_sqlglot_reason(error)}",
            hint="check the SQL syntax; a query is one SELECT",
        ) from error
    except ValueError:  # an SQL dialect sqlglot does not know: its generic SQL
        read = None
        parsed = sqlglot.parse(sql)
    statements = [
        node for node in parsed if node is not None and not isinstance(node, exp.Semicolon)
    ]
    if not statements:
        raise empty_query()
    if len(statements) > 1:
        raise too_many(len(statements))
    statement = statements[0]
    if not isinstance(statement, exp.Query | exp.Values):
        kind = _sqlglot_kind(sql, read)
        raise refused(kind, HINTS.get(kind))
    modifying = {
        type(node).__name__.upper()
        for node in statement.find_all(exp.Insert, exp.Update, exp.Delete, exp.Merge)
    }
    if modifying:
        raise SourceError(
            f"the query holds {' and '.join(sorted(modifying))} inside it (a data-modifying "
            "WITH), and queries only read",
            hint=LOAD_HINT,
        )
    if statement.find(exp.Into) is not None:
        raise SourceError(
            "the query is a SELECT ... INTO, which creates a table, and queries only read",
            hint=LOAD_HINT,
        )
    if statement.find(exp.Lock) is not None:
        raise SourceError(
            "the query locks rows (FOR UPDATE or FOR SHARE), and queries only read",
            hint="remove the FOR ... clause",
        )
    ends = [token.end for token in sqlglot.tokenize(sql, read=read) if token.text != ";"]
    return sql[: max(ends) + 1] if ends else sql


def _sqlglot_kind(sql: str, read: str | None) -> str:
    """The statement's first keyword in capitals (``DROP``, ``LISTEN``), for messages."""
    try:
        tokens = sqlglot.tokenize(sql, read=read)
    except (SqlglotError, ValueError):
        return "non-query"
    words = [token.text.upper() for token in tokens if token.text not in ("(", ")")]
    return words[0] if words else "non-query"


def _sqlglot_reason(error: SqlglotError) -> str:
    """sqlglot's reason and position, without the terminal colours of its message."""
    details = getattr(error, "errors", None) or []
    if details:
        first = details[0]
        return f"{first.get('description')} (line {first.get('line')}, column {first.get('col')})"
    return whole_message(error)
