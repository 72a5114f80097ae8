"""The ``--alert-*`` options of ``query save`` and ``activation create|update``.

They are the fields of :class:`cohortsync.definitions.Alerts`, which checks
them, so the command line, ``apply`` and the console refuse a bad value in
the same words (docs/alerts.md).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer

from cohortsync.definitions.alerts import alerts_from_options
from cohortsync.webhooks import webhook_origin


class AlertFormatChoice(StrEnum):
    """The --alert-format values."""

    json = "json"
    slack = "slack"


AlertWebhookOption = Annotated[
    str | None,
    typer.Option(
        "--alert-webhook",
        metavar="URL",
        help="POST an alert to this http(s) URL after a run that fires a trigger.",
    ),
]
AlertFormatOption = Annotated[
    AlertFormatChoice | None,
    typer.Option(
        "--alert-format",
        help='json (a generic payload, the default) or slack ({"text": ...}).',
        show_default=False,
    ),
]
AlertOnFailureOption = Annotated[
    bool | None,
    typer.Option(
        "--alert-on-failure/--no-alert-on-failure",
        help="Alert when a run fails (on by default with a webhook).",
        show_default=False,
    ),
]
AlertSizeChangeOption = Annotated[
    float | None,
    typer.Option(
        "--alert-size-change",
        metavar="PCT",
        help="Alert when the cohort's size moves by more than PCT % (0-100) against the "
        "last successful run.",
    ),
]
AlertRemovalsOption = Annotated[
    int | None,
    typer.Option(
        "--alert-removals", metavar="N", help="Alert when a run removes more than N identifiers."
    ),
]
AlertDurationOption = Annotated[
    float | None,
    typer.Option(
        "--alert-duration",
        metavar="SECONDS",
        help="Alert when a run takes longer than SECONDS.",
    ),
]
AlertRefusedOption = Annotated[
    float | None,
    typer.Option(
        "--alert-refused-pct",
        metavar="PCT",
        help="rest-attribute: alert when more than PCT % (0-100) of the objects sent were "
        "refused (the run's match report).",
    ),
]
AlertHoldOption = Annotated[
    bool,
    typer.Option(
        "--alert-hold",
        help="Hold a run back before anything is sent when its plan fires the size change "
        "or removals trigger: the run fails, naming the trigger, and the alert is sent.",
    ),
]


def alert_settings(
    webhook: str | None,
    format: AlertFormatChoice | None,
    on_failure: bool | None,
    size_change: float | None,
    removals: int | None,
    duration: float | None,
    refused_pct: float | None,
    hold: bool | None,
) -> dict[str, Any] | None:
    """The ``alerts`` of a definition from the options given; ``None`` when none was.

    Raises:
        ConfigError: a setting without --alert-webhook.
    """
    return alerts_from_options(
        webhook=webhook,
        format=format.value if format else None,
        on_failure=on_failure,
        size_change_pct=size_change,
        removals=removals,
        duration_s=duration,
        refused_pct=refused_pct,
        hold=hold,
    )


def alerts_text(alerts: Any) -> str:
    """A saved job's alerts in one line, for ``show``."""
    if alerts is None:
        return "none"
    data = alerts if isinstance(alerts, dict) else alerts.model_dump()

    parts = [f"{webhook_origin(data['webhook'])}/... ({data['format']})"]
    parts.append("on failure" if data["on_failure"] else "not on failure")
    shown = {
        "size_change_pct": "size change > {:g}%",
        "removals": "removals > {:,}",
        "duration_s": "duration > {:g} s",
        "refused_pct": "refused > {:g}%",
    }
    parts += [text.format(data[key]) for key, text in shown.items() if data.get(key) is not None]
    if data.get("hold"):
        parts.append("hold")
    return ", ".join(parts)
