"""The *Alerts* fields of the query editor and the activation form.

They are the fields of :class:`cohortsync.definitions.Alerts`, named
``alert_<field>`` in the form, read both ways here: a posted form into the
definition's ``alerts`` data (``None`` when no webhook and no threshold was
typed), and saved alerts back into the fields. The definition checks the
values, so a refusal reads as on the command line, next to its field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cohortsync.definitions import Alerts

FORMAT_OPTIONS = [
    ("json", "json: a generic JSON payload"),
    ("slack", 'slack: {"text": ...}'),
]
_NUMBERS = ("size_change_pct", "removals", "duration_s", "refused_pct")
_CHECKS = ("on_failure", "hold")
# Present in every form that shows the fields: a form without it keeps the defaults.
MARKER = "alert_webhook"


def blank_alert_values() -> dict[str, str]:
    """The fields of a job without alerts: empty, failures alerted once a webhook is typed."""
    return {
        "alert_webhook": "",
        "alert_format": "json",
        "alert_on_failure": "on",
        **{f"alert_{name}": "" for name in _NUMBERS},
        "alert_hold": "",
    }


def alert_values(form: Mapping[str, Any]) -> dict[str, str]:
    """The fields as typed; a form without them gives the blank fields."""
    if MARKER not in form:
        return blank_alert_values()

    def text(name: str) -> str:
        value = form.get(f"alert_{name}", "")
        return value.strip() if isinstance(value, str) else ""

    values = {f"alert_{name}": text(name) for name in ("webhook", "format", *_NUMBERS)}
    values["alert_format"] = values["alert_format"] or "json"
    for name in _CHECKS:
        values[f"alert_{name}"] = "on" if form.get(f"alert_{name}") == "on" else ""
    return values


def saved_alert_values(alerts: Alerts | None) -> dict[str, str]:
    """Saved alerts as the fields show them."""
    if alerts is None:
        return blank_alert_values()
    values = {
        "alert_webhook": alerts.webhook,
        "alert_format": alerts.format,
        "alert_on_failure": "on" if alerts.on_failure else "",
        "alert_hold": "on" if alerts.hold else "",
    }
    for name in _NUMBERS:
        value = getattr(alerts, name)
        values[f"alert_{name}"] = "" if value is None else _number(value)
    return values


def alert_data(values: Mapping[str, str]) -> dict[str, Any] | None:
    """The definition's ``alerts``: ``None`` when neither a webhook nor a threshold was typed."""
    numbers = {name: values[f"alert_{name}"] or None for name in _NUMBERS}
    hold = values["alert_hold"] == "on"
    if not values["alert_webhook"] and not hold and all(v is None for v in numbers.values()):
        return None
    return {
        "webhook": values["alert_webhook"],
        "format": values["alert_format"],
        "on_failure": values["alert_on_failure"] == "on",
        **numbers,
        "hold": hold,
    }


def alert_problems(problems: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """The problems of the alert fields keyed by their form names, and the others as they were.

    A rule of the alerts as a whole (a hold without a threshold) is shown at
    *Hold*.
    """
    mine: dict[str, str] = {}
    others: dict[str, str] = {}
    for path, message in problems.items():
        if path == "alerts":
            mine.setdefault("alert_hold", message)
        elif path.startswith("alerts."):
            mine.setdefault("alert_" + path.split(".")[1], message)
        else:
            others[path] = message
    return mine, others


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
