"""A parent segment: a customer table of the warehouse and its key column."""

from __future__ import annotations

from pydantic import Field

from cohortsync.definitions.fields import Definition


class Parent(Definition):
    """A customer table segments select from; ``key`` identifies one customer.

    ``warehouse`` is ``None`` for the warehouse configured at each use. That
    the table and the key exist is checked against the warehouse when the
    parent is saved (:mod:`cohortsync.audience.parents`).
    """

    kind = "parent"

    table: str = Field(min_length=1)
    key: str = Field(min_length=1)
    warehouse: str | None = None
    description: str | None = None
