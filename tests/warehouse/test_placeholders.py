"""Rewriting ``?`` placeholders for SQLAlchemy's text(): only outside quotes."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from cohortsync.errors import ConfigError
from cohortsync.warehouse.placeholders import to_named


def compiled(sql: str) -> str:
    """What SQLAlchemy sends to psycopg for the rewritten text."""
    return str(sa.text(sql).compile(dialect=postgresql.dialect()))


def test_question_marks_become_numbered_names() -> None:
    sql, params = to_named("SELECT * FROM t WHERE a = ? AND b IN (?, ?)", [1, "x", None])

    assert sql == "SELECT * FROM t WHERE a = :p0 AND b IN (:p1, :p2)"
    assert params == {"p0": 1, "p1": "x", "p2": None}


@pytest.mark.parametrize(
    "literal",
    [
        "'why?'",
        "'it''s ?'",
        "E'it\\'s ?'",
        '"odd?column"',
        "$$ body ? $$",
        "$tag$ ? $$ ? $tag$",
        "-- comment ?\n",
        "/* block ? */",
    ],
)
def test_question_marks_inside_quotes_and_comments_stay(literal: str) -> None:
    sql, params = to_named(f"SELECT {literal} , ?", [7])

    assert sql == f"SELECT {literal} , :p0"
    assert params == {"p0": 7}


def test_colons_of_the_user_are_not_read_as_parameters() -> None:
    sql, params = to_named("SELECT '10:30', x::text, ':name' FROM t WHERE y = ?", [1])

    assert compiled(sql) == "SELECT '10:30', x::text, ':name' FROM t WHERE y = %(p0)s"
    assert params == {"p0": 1}


def test_a_wrong_number_of_params_is_refused() -> None:
    with pytest.raises(ConfigError, match="1 \\? placeholder\\(s\\) but 2 parameter"):
        to_named("SELECT ? ", [1, 2])
    with pytest.raises(ConfigError, match="but 0 parameter"):
        to_named("SELECT 'a?' , ?", [])
