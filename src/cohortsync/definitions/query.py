"""A saved query: its SQL, where it runs, and optionally its export and schedule."""

from __future__ import annotations

from typing import Self

from pydantic import model_validator

from cohortsync.definitions.alerts import Alerted
from cohortsync.definitions.fields import CohortExport, Definition
from cohortsync.definitions.invalid import RuleBroken
from cohortsync.definitions.schedule import Scheduled


class QueryExport(CohortExport):
    """Where a saved query's result goes: every setting of ``cohortsync export``."""


class Query(Definition, Scheduled, Alerted):
    """A saved query (the Data Workbench path).

    ``warehouse`` is ``None`` for the warehouse configured when it runs. A
    time zone means something only with a schedule, so without one it is
    kept as ``UTC``. ``alerts`` post to a webhook after its runs
    (:mod:`cohortsync.definitions.alerts`).
    """

    kind = "query"

    sql: str
    warehouse: str | None = None
    export: QueryExport | None = None

    @model_validator(mode="after")
    def _has_sql_and_plain_zone(self) -> Self:
        if not self.sql.strip():
            raise RuleBroken(f"query {self.name!r} has empty SQL", hint="give the query's SQL")
        if self.schedule is None and self.timezone != "UTC":
            return self.model_copy(update={"timezone": "UTC"})
        return self
