"""The alerts of a saved job: evaluated after each of its runs, delivered, recorded.

Every run of a saved query or activation (``query run``, ``activation run``,
the scheduler, the console's *Run now*) goes through :func:`alerted`, around
the job's run and outside :func:`~cohortsync.jobs.history.failures_recorded`,
so the run it watches is always in the history when it looks. It gives the
export the job's :class:`~cohortsync.export.hold.HoldCheck` when the alerts
hold, and after the run it evaluates the triggers on the run's record:

========================  =====================================================
``failure``               the run failed (``on_failure``, on by default)
``size_change``           the cohort's size moved by more than ``size_change_pct``
                          against the job's last successful run
``removals``              the run removed more than ``removals`` identifiers
``duration``              the run took longer than ``duration_s`` seconds
``refused_pct``           more than ``refused_pct`` % of the objects of a
                          ``rest-attribute`` run were refused (its match report)
========================  =====================================================

The triggers that fired go in one POST to the webhook, as a JSON document or
as Slack's ``{"text": ...}``, with a timeout and retries
(:func:`cohortsync.webhooks.deliver`); the delivery (triggers, attempts,
final status or error) is recorded beside the run (:mod:`cohortsync.catalog.run_alerts`).
An alert never changes the run: its status, report and error are recorded
before the alert is evaluated, and nothing here raises into the run's caller.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa

from cohortsync.catalog import run_alerts, runs
from cohortsync.catalog.runs import RunRecord
from cohortsync.definitions import Alerts
from cohortsync.definitions.alerts import DURATION, FAILURE, REFUSED
from cohortsync.errors import AlertHeld, CohortsyncError
from cohortsync.export.hold import (
    Fired,
    HoldCheck,
    removals,
    report_removals,
    report_size,
    size_change,
)
from cohortsync.jobs.history import find_run_since
from cohortsync.settings import Settings
from cohortsync.webhooks import deliver, webhook_origin

log = logging.getLogger(__name__)

EVENT = "cohortsync.alert"


def previous_size(catalog: sa.Engine, job: str) -> int | None:
    """The cohort's size at the job's last successful run, if it has one."""
    latest = runs.list_runs(catalog, job=job, status="succeeded", limit=1)
    return report_size(latest[0].report) if latest else None


@contextmanager
def alerted(
    catalog: sa.Engine,
    job: str,
    alerts: Alerts | None,
    *,
    dry_run: bool,
    settings: Settings,
) -> Iterator[HoldCheck | None]:
    """Alert after the run of ``job`` in the block; yields the hold to give its export.

    Yields ``None`` when the job has no alerts, does not hold, or for a dry
    run (which records nothing, so alerts nobody). The error of a failed
    run passes on unchanged once its alert is delivered.
    """
    if alerts is None or dry_run:
        yield None
        return
    started = datetime.now(UTC)
    baseline = previous_size(catalog, job)
    hold = None
    if alerts.hold:
        hold = HoldCheck(job, alerts.size_change_pct, alerts.removals, baseline)
    try:
        yield hold
    except CohortsyncError as error:
        held = error.triggers if isinstance(error, AlertHeld) else None
        run_id = error.run_id or find_run_since(catalog, job, started)
        _alert_quietly(catalog, settings, job, alerts, run_id, baseline, held)
        raise
    _alert_quietly(
        catalog, settings, job, alerts, find_run_since(catalog, job, started), baseline, None
    )


def _alert_quietly(
    catalog: sa.Engine,
    settings: Settings,
    job: str,
    alerts: Alerts,
    run_id: str | None,
    baseline: int | None,
    held: list[dict[str, Any]] | None,
) -> None:
    """:func:`alert_run`, whose own failure is logged and never reaches the run's caller."""
    if run_id is None:
        return
    try:
        alert_run(catalog, settings, job, alerts, runs.get_run(catalog, run_id), baseline, held)
    except Exception as error:  # an alert is a courtesy: it never fails the run
        log.warning("the alert of %s run %s was not delivered: %s", job, run_id, error)


def fired_triggers(alerts: Alerts, record: RunRecord, baseline: int | None) -> list[Fired]:
    """The triggers a finished run fires, in the order of ``definitions.alerts.TRIGGERS``."""
    report = record.report
    fired: list[Fired | None] = []
    if record.status == "failed" and alerts.on_failure:
        fired.append(
            Fired(FAILURE, None, None, {"error": record.error}, f"run failed: {record.error}")
        )
    if record.status == "succeeded":
        size = report_size(report)
        if size is not None:
            fired.append(size_change(size, baseline, alerts.size_change_pct))
        fired.append(removals(report_removals(report), alerts.removals))
    fired.append(_duration(record, alerts.duration_s))
    fired.append(_refused(report, alerts.refused_pct))
    return [item for item in fired if item is not None]


def _duration(record: RunRecord, threshold: float | None) -> Fired | None:
    if threshold is None or record.finished_at is None:
        return None
    seconds = (record.finished_at - record.started_at).total_seconds()
    if seconds <= threshold:
        return None
    return Fired(
        DURATION,
        round(seconds, 3),
        threshold,
        {"duration_s": round(seconds, 3)},
        f"run took {seconds:.1f} s, longer than {threshold:g} s",
    )


def _refused(report: Mapping[str, Any] | None, threshold: float | None) -> Fired | None:
    match = (report or {}).get("match")
    if threshold is None or not isinstance(match, Mapping) or not match.get("objects"):
        return None
    objects, refused = int(match["objects"]), int(match.get("errors", 0))
    share = 100 * refused / objects
    if share <= threshold:
        return None
    return Fired(
        REFUSED,
        round(share, 2),
        threshold,
        {"objects": objects, "refused": refused, "reasons": dict(match.get("reasons", {}))},
        f"{refused:,} of {objects:,} objects refused ({share:.1f}%), more than {threshold:g}%",
    )


def alert_run(
    catalog: sa.Engine,
    settings: Settings,
    job: str,
    alerts: Alerts,
    record: RunRecord,
    baseline: int | None,
    held: list[dict[str, Any]] | None = None,
) -> run_alerts.AlertDelivery | None:
    """Evaluate the triggers on a finished run, deliver them, record the delivery.

    ``held`` are the triggers a hold stopped the run for: they are what the
    alert says (the failure they caused is not alerted twice). Returns the
    delivery, or ``None`` when no trigger fired.
    """
    if held is not None:
        triggers = list(held)
        duration = _duration(record, alerts.duration_s)
        if duration is not None:
            triggers.append(duration.to_dict())
    else:
        triggers = [item.to_dict() for item in fired_triggers(alerts, record, baseline)]
    if not triggers:
        return None
    document = payload(job, record, triggers, held=held is not None)
    body = slack_payload(document) if alerts.format == "slack" else document
    delivery = deliver(
        alerts.webhook,
        orjson.dumps(body, default=str),
        timeout=settings.alert_timeout,
        attempts=settings.alert_attempts,
        backoff=settings.alert_backoff,
    )
    run_alerts.record_delivery(
        catalog,
        record.id,
        triggers=triggers,
        destination=webhook_origin(alerts.webhook),
        format=alerts.format,
        held=held is not None,
        attempts=delivery.attempts,
        status=delivery.status,
        http_status=delivery.http_status,
        error=delivery.error,
    )
    return run_alerts.deliveries(catalog, record.id)[-1]


def payload(
    job: str, record: RunRecord, triggers: list[dict[str, Any]], *, held: bool
) -> dict[str, Any]:
    """The generic JSON payload of an alert (a stable, documented shape: docs/alerts.md)."""
    report = record.report or {}
    duration = (
        (record.finished_at - record.started_at).total_seconds() if record.finished_at else None
    )
    return {
        "event": EVENT,
        "job": job,
        "run_id": record.id,
        "status": record.status,
        "held": held,
        "cohort_id": record.cohort_id or None,
        "operation": record.operation,
        "started_at": record.started_at.isoformat(),
        "finished_at": record.finished_at.isoformat() if record.finished_at else None,
        "duration_s": round(duration, 3) if duration is not None else None,
        "error": record.error,
        "triggers": triggers,
        "counts": {
            "rows_read": report.get("rows_read", report.get("rows")),
            "sent_total": report.get("sent_total"),
            "size": report_size(report),
            "removals": report_removals(report),
        },
    }


def slack_payload(document: Mapping[str, Any]) -> dict[str, str]:
    """The Slack-compatible payload (``{"text": ...}``): one line per trigger under a heading."""
    what = "held back, nothing sent" if document["held"] else document["status"]
    lines = [f"cohortsync alert: {document['job']} run {document['run_id']} {what}"]
    lines += [f"• {trigger['text']}" for trigger in document["triggers"]]
    return {"text": "\n".join(lines)}
