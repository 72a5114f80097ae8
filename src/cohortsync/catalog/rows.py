"""Reading, updating and deleting the rows a condition selects, one statement each.

The table modules of the catalog (auths, saved queries, runs, schedules,
leases, audience definitions) keep their own tables and row types; these are
the statements they all run the same way, each in its own connection.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa


def first_row(
    catalog: sa.Engine, table: sa.Table, where: sa.ColumnElement[bool]
) -> sa.Row[Any] | None:
    """The first row of ``table`` that ``where`` selects (a key's row), or ``None``."""
    with catalog.connect() as conn:
        return conn.execute(sa.select(table).where(where)).first()


def update_rows(
    catalog: sa.Engine, table: sa.Table, where: sa.ColumnElement[bool], **values: Any
) -> int:
    """Set ``values`` on the rows of ``table`` that ``where`` selects, in one transaction.

    Returns how many rows there were.
    """
    with catalog.begin() as conn:
        return conn.execute(table.update().where(where).values(**values)).rowcount


def delete_rows(catalog: sa.Engine, table: sa.Table, where: sa.ColumnElement[bool]) -> int:
    """Delete the rows of ``table`` that ``where`` selects; returns how many there were."""
    with catalog.begin() as conn:
        return conn.execute(table.delete().where(where)).rowcount


def clamped_offset(offset: int, count: int) -> int:
    """Where a page of ``count`` rows starts: never before the first row nor past the last.

    An offset past the end (a list that shrank, a hand-typed address) shows
    the last row rather than an empty page.
    """
    return max(0, min(offset, max(count - 1, 0)))
