"""The alert deliveries of each run: what fired, where it went, and how it ended.

An alert is a courtesy on top of the run history (:mod:`cohortsync.jobs.alerts`),
so its delivery is recorded beside the run rather than in it: the run's own
status, report and error stay what the export recorded. One row per
delivery: the triggers it carried (with their numbers), how many attempts
it took, and its final status (``delivered`` or ``failed``, with the HTTP
status or the error of the last attempt). The webhook's URL is never
stored: its path is often its credential; the row keeps its origin only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa

from cohortsync.catalog.db import metadata, stored_utc

run_alerts = sa.Table(
    "run_alerts",
    metadata,
    sa.Column("run_id", sa.String, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("number", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("triggers", sa.Text, nullable=False),  # [{"trigger": ..., numbers...}], JSON
    sa.Column("destination", sa.String, nullable=False),  # the webhook's scheme://host:port
    sa.Column("format", sa.String, nullable=False),
    sa.Column("held", sa.Boolean, nullable=False, default=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("status", sa.String, nullable=False),  # "delivered" or "failed"
    sa.Column("http_status", sa.Integer, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class AlertDelivery:
    """One alert delivery of a run, as recorded."""

    run_id: str
    number: int
    triggers: list[dict[str, Any]]
    destination: str
    format: str
    held: bool
    attempts: int
    status: str
    http_status: int | None
    error: str | None
    delivered_at: dt.datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "triggers": self.triggers,
            "destination": self.destination,
            "format": self.format,
            "held": self.held,
            "attempts": self.attempts,
            "status": self.status,
            "http_status": self.http_status,
            "error": self.error,
            "delivered_at": self.delivered_at.isoformat(),
        }


def record_delivery(
    catalog: sa.Engine,
    run_id: str,
    *,
    triggers: list[dict[str, Any]],
    destination: str,
    format: str,
    held: bool,
    attempts: int,
    status: str,
    http_status: int | None,
    error: str | None,
) -> None:
    """Append one delivery to the run's record."""
    with catalog.begin() as conn:
        last = conn.execute(
            sa.select(sa.func.max(run_alerts.c.number)).where(run_alerts.c.run_id == run_id)
        ).scalar()
        conn.execute(
            run_alerts.insert().values(
                run_id=run_id,
                number=(last or 0) + 1,
                triggers=orjson.dumps(triggers).decode(),
                destination=destination,
                format=format,
                held=held,
                attempts=attempts,
                status=status,
                http_status=http_status,
                error=error,
                delivered_at=dt.datetime.now(dt.UTC),
            )
        )


def deliveries(catalog: sa.Engine, run_id: str) -> list[AlertDelivery]:
    """The run's alert deliveries, in the order they were made."""
    with catalog.connect() as conn:
        rows = conn.execute(
            sa.select(run_alerts).where(run_alerts.c.run_id == run_id).order_by(run_alerts.c.number)
        ).all()
    return [
        AlertDelivery(
            run_id=row.run_id,
            number=row.number,
            triggers=orjson.loads(row.triggers),
            destination=row.destination,
            format=row.format,
            held=bool(row.held),
            attempts=row.attempts,
            status=row.status,
            http_status=row.http_status,
            error=row.error,
            delivered_at=stored_utc(row.delivered_at),
        )
        for row in rows
    ]
