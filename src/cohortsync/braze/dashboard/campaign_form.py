"""The campaign and Canvas form: what was typed, checked before anything is saved.

The form is read into a :class:`CampaignForm` that keeps every value as
typed, so a refused form comes back exactly as the marketer left it. Its
:meth:`CampaignForm.check` finds every mistake it can at once (an empty
name, no segment to include, a message whose placeholder the service
cannot render, a step without a name) and words each under its field; the
library checks the same again when saving, and what only it can know (a
name already used) comes back from it as a :class:`ConfigError` that
:func:`field_of` puts under its field too.

Segment ids come from the browser: :meth:`CampaignForm.unknown_segments`
names the ones that are not the workspace's, which the route refuses as an
unknown address (404) before anything is counted or saved.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cohortsync.braze.campaigns import CHANNELS, Step, compile_message
from cohortsync.errors import ConfigError

MAX_STEPS = 20
"""A Canvas's steps in one form; more is a page nobody can read."""

CHANNEL_WORDS = {"email": "Email", "push": "Push", "webhook": "Webhook"}
INCLUDE_MISSING = "Choose at least one segment to include: they are who it reaches."
STEP_NAME_MISSING = "Name the step."
_STEP_FIELD = re.compile(r"step-(\d{1,2})-(name|message)")


def said(error: ConfigError) -> str:
    """An error as one line under a field: the message and what to do."""
    text = error.message + (f" ({error.hint})" if error.hint else "")
    return text[:1].upper() + text[1:]


@dataclass
class StepForm:
    """One step of a Canvas as typed: ``segment`` is a segment id or ``""`` (everyone)."""

    name: str = ""
    channel: str = "email"
    message: str = ""
    segment: str = ""


@dataclass
class CampaignForm:
    """A campaign (one step) or a Canvas (several) as typed in the form."""

    kind: str
    name: str = ""
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    steps: list[StepForm] = field(default_factory=lambda: [StepForm()])

    @classmethod
    def read(cls, kind: str, form: Mapping[str, Any], getlist: Any) -> CampaignForm:
        """The values of a posted form (``getlist(name)`` gives a repeated field's values).

        A campaign's one message is ``channel`` and ``message``; a Canvas's
        steps are ``step-N-name``, ``step-N-channel``, ``step-N-message`` and
        ``step-N-segment`` for N = 0, 1, ... as many as ``step-count`` says.
        """

        def text(name: str) -> str:
            value = form.get(name)
            return value if isinstance(value, str) else ""

        values = cls(
            kind=kind,
            name=text("name"),
            include=_unique(getlist("include")),
            exclude=_unique(getlist("exclude")),
        )
        if kind == "campaign":
            values.steps = [StepForm(channel=text("channel"), message=text("message"))]
        else:
            try:
                count = int(text("step-count") or "1")
            except ValueError:
                count = 1
            count = min(max(count, 1), MAX_STEPS)
            values.steps = [
                StepForm(
                    name=text(f"step-{n}-name"),
                    channel=text(f"step-{n}-channel"),
                    message=text(f"step-{n}-message"),
                    segment=text(f"step-{n}-segment"),
                )
                for n in range(count)
            ]
        return values

    @classmethod
    def of(cls, campaign: Mapping[str, Any]) -> CampaignForm:
        """The form of a saved campaign or Canvas, as ``get_campaign`` describes it."""
        return cls(
            kind=campaign["kind"],
            name=campaign["name"],
            include=[s["id"] for s in campaign["include_segments"]],
            exclude=[s["id"] for s in campaign["exclude_segments"]],
            steps=[
                StepForm(
                    name=s["name"],
                    channel=s["channel"],
                    message=s["message"],
                    segment=s["segment"]["id"] if s["segment"] else "",
                )
                for s in campaign["steps"]
            ],
        )

    @property
    def channel(self) -> str:
        return self.steps[0].channel

    @property
    def message(self) -> str:
        return self.steps[0].message

    def add_step(self) -> None:
        if len(self.steps) < MAX_STEPS:
            self.steps.append(StepForm(channel=self.steps[-1].channel))

    def remove_step(self, index: int) -> None:
        if len(self.steps) > 1 and 0 <= index < len(self.steps):
            del self.steps[index]

    def segment_ids(self) -> list[str]:
        """Every segment id the form names: included, excluded, narrowing a step."""
        return [*self.include, *self.exclude, *(s.segment for s in self.steps if s.segment)]

    def unknown_segments(self, known: Iterable[str]) -> list[str]:
        """The ids the form names that are not segments of the workspace."""
        mine = set(known)
        return [ref for ref in self.segment_ids() if ref not in mine]

    def check(self) -> dict[str, str]:
        """Every mistake of the form, by field name; empty when it may be saved."""
        errors: dict[str, str] = {}
        if problem := _name_error(self.kind, self.name):
            errors["name"] = problem
        if not self.include:
            errors["include"] = INCLUDE_MISSING
        for n, step in enumerate(self.steps):
            prefix = "" if self.kind == "campaign" else f"step-{n}-"
            if self.kind == "canvas" and not step.name.strip():
                errors[f"{prefix}name"] = STEP_NAME_MISSING
            if step.channel not in CHANNELS:
                errors[f"{prefix}channel"] = "Choose email, push or webhook."
            if problem := _message_error(step.message):
                errors[f"{prefix}message"] = problem
        return errors

    def library_steps(self) -> list[Step]:
        return [
            Step(name=s.name, channel=s.channel, message=s.message, segment=s.segment or None)
            for s in self.steps
        ]


def field_error(kind: str, field: str, value: str) -> str:
    """The mistake of one field as typed (``""``: none), worded as :meth:`CampaignForm.check`
    words it: the form's live check while the marketer types."""
    if field == "name":
        return _name_error(kind, value)
    matched = _STEP_FIELD.fullmatch(field)
    part = matched.group(2) if matched and kind == "canvas" else field
    if part == "message" and (matched or kind == "campaign"):
        return _message_error(value)
    if part == "name" and matched:
        return "" if value.strip() else STEP_NAME_MISSING
    return ""


def _name_error(kind: str, value: str) -> str:
    word = "campaign" if kind == "campaign" else "Canvas"
    return "" if value.strip() else f"Give the {word} a name."


def _message_error(value: str) -> str:
    try:
        compile_message(value)
    except ConfigError as error:
        return said(error)
    return ""


def field_of(error: ConfigError) -> str:
    """The field a library error on saving belongs under (``""``: the whole form)."""
    if "exists already" in error.message or "name must not be empty" in error.message:
        return "name"
    if "Target Audience" in error.message:
        return "include"
    return ""


def local_input(moment: str | None) -> str:
    """A stored UTC time as a ``datetime-local`` input's value (``2026-12-24T09:00``)."""
    if not moment:
        return ""
    return datetime.fromisoformat(moment).astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


def read_send_at(value: str, now: datetime | None = None) -> datetime:
    """The ``Send at`` input (a UTC wall time, ``2026-12-24T09:00``) as an aware time.

    Raises:
        ConfigError: empty, unreadable, or not in the future (a past time would
            launch at once; *Launch now* says that plainly).
    """
    if not value.strip():
        raise ConfigError("choose a date and time to send at", hint="the time is in UTC")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ConfigError(
            f"cannot read the time {value!r}", hint="pick it in the date and time field"
        ) from None
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    if moment <= (now or datetime.now(UTC)):
        raise ConfigError(
            f"{moment:%Y-%m-%d %H:%M} UTC has passed",
            hint="pick a time in the future, or use Launch now",
        )
    return moment


def _unique(values: Iterable[Any]) -> list[str]:
    return list(dict.fromkeys(v for v in values if isinstance(v, str) and v))
