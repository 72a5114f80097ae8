"""The alerts of a saved query or activation: a webhook and the triggers that post to it.

One definition for every way in: ``query save`` and ``activation
create|update`` build it from their ``--alert-*`` options, ``apply`` from an
``alerts:`` mapping, the console from its form, the catalog from its row.
After each run of the job the triggers are evaluated
(:mod:`cohortsync.jobs.alerts`); ``hold`` also checks the deviation triggers
between planning and sending (:mod:`cohortsync.export.hold`).

Every threshold is optional: a trigger without one never fires. A run that
fails alerts unless ``on_failure`` is turned off.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Self
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, model_validator

from cohortsync.definitions.invalid import RuleBroken
from cohortsync.errors import ConfigError

AlertFormat = Literal["json", "slack"]
ALERT_FORMATS: tuple[str, ...] = ("json", "slack")

# The triggers, in the order they are evaluated and shown.
FAILURE = "failure"
SIZE_CHANGE = "size_change"
REMOVALS = "removals"
DURATION = "duration"
REFUSED = "refused_pct"
TRIGGERS = (FAILURE, SIZE_CHANGE, REMOVALS, DURATION, REFUSED)
# The triggers ``hold`` holds a run back for: they can be known from the plan.
DEVIATIONS = (SIZE_CHANGE, REMOVALS)

URL_HINT = "give an http(s) URL, e.g. --alert-webhook https://hooks.example.com/cohortsync"


def check_alert_url(url: str) -> str:
    """``url`` if it is an absolute http(s) URL with a host.

    Raises:
        RuleBroken: another scheme, no host, or spaces in it.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or " " in url.strip():
        raise RuleBroken(f"alert webhook {_shown(url)!r} is not an http(s) URL", hint=URL_HINT)
    return url.strip()


def _shown(url: str) -> str:
    """A refused URL as a message quotes it: cut, since it may carry a token."""
    return url if len(url) <= 60 else url[:57] + "..."


def _bounded(what: str, *, most: float | None = None, unit: str = "") -> AfterValidator:
    def check(value: float) -> float:
        if math.isnan(value) or math.isinf(value):
            raise RuleBroken(f"{what} {value} is not a number", hint=f"give a number{unit}")
        if value < 0:
            raise RuleBroken(f"{what} {value:g} is negative", hint=f"give 0 or more{unit}")
        if most is not None and value > most:
            raise RuleBroken(
                f"{what} {value:g} is above {most:g}", hint=f"give 0 to {most:g}{unit}"
            )
        return value

    return AfterValidator(check)


def _count(what: str) -> AfterValidator:
    def check(value: int) -> int:
        if value < 0:
            raise RuleBroken(f"{what} {value} is negative", hint="give 0 or more identifiers")
        return value

    return AfterValidator(check)


AlertUrl = Annotated[str, AfterValidator(check_alert_url)]
SizeChangePct = Annotated[float, _bounded("alert size change", most=100, unit=" percent")]
RefusedPct = Annotated[float, _bounded("alert refused share", most=100, unit=" percent")]
DurationSeconds = Annotated[float, _bounded("alert duration", unit=" seconds")]
Removals = Annotated[int, _count("alert removals")]


class Alerts(BaseModel):
    """Where a job's alerts go, in which format, and what makes a run alert.

    ``size_change_pct``: the cohort's size (the result's identifiers) differs
    from the last successful run's by more than this share of it.
    ``removals``: the run removes more than this many identifiers.
    ``duration_s``: the run takes longer than this. ``refused_pct``: more than
    this share of the objects a ``rest-attribute`` run sent were refused in
    its match report. ``hold``: a size change or removals trigger found in
    the plan holds the run back before anything is sent.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    webhook: AlertUrl
    format: AlertFormat = "json"
    on_failure: bool = True
    size_change_pct: SizeChangePct | None = None
    removals: Removals | None = None
    duration_s: DurationSeconds | None = None
    refused_pct: RefusedPct | None = None
    hold: bool = False

    @model_validator(mode="before")
    @classmethod
    def _known_format(cls, data: object) -> object:
        if isinstance(data, dict):
            chosen = data.get("format")
            if isinstance(chosen, str) and chosen not in ALERT_FORMATS:
                raise RuleBroken(
                    f"unknown alert format {chosen!r}",
                    hint='use json (a generic payload) or slack ({"text": ...})',
                )
        return data

    @model_validator(mode="after")
    def _hold_has_a_deviation(self) -> Self:
        if self.hold and self.size_change_pct is None and self.removals is None:
            raise RuleBroken(
                "alert hold needs a size change or removals threshold to hold a run for",
                hint="add --alert-size-change PCT or --alert-removals N, or drop --alert-hold",
            )
        return self


class Alerted(BaseModel):
    """The ``alerts`` field of a saved job: ``None`` alerts nobody."""

    alerts: Alerts | None = None


def alerts_from_options(
    *,
    webhook: str | None,
    format: str | None = None,
    on_failure: bool | None = None,
    size_change_pct: float | None = None,
    removals: int | None = None,
    duration_s: float | None = None,
    refused_pct: float | None = None,
    hold: bool | None = None,
) -> dict[str, object] | None:
    """The ``alerts`` mapping of command-line options; ``None`` when none was given.

    A threshold without a webhook would alert nobody, so it is refused.

    Raises:
        ConfigError: a setting was given without ``webhook``.
    """
    settings = {
        "format": format,
        "on_failure": on_failure,
        "size_change_pct": size_change_pct,
        "removals": removals,
        "duration_s": duration_s,
        "refused_pct": refused_pct,
        "hold": hold or None,
    }
    given = {key: value for key, value in settings.items() if value is not None}
    if webhook is None:
        if given:
            raise ConfigError(
                "alert settings were given without a webhook to post to",
                hint="add --alert-webhook URL",
            )
        return None
    return {"webhook": webhook, **given}
