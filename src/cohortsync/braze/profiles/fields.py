"""Braze's user profile fields: which attribute names they are, and what each accepts.

Braze's user attributes object (https://www.braze.com/docs/api/objects_filters/user_attributes_object/)
sets *profile fields* (``first_name``, ``email``, ``country``, ...) when an
attribute has one of their names, and custom attributes otherwise. The
store keeps the two apart, as Braze does: ``email`` and ``phone`` in columns
(profiles are addressed by them), the other fields in one JSON object.

Each field's check returns the value to store or raises ``ValueError`` with
the reason, which becomes the ``type`` of a non-fatal error: one bad field
makes its attributes object invalid, not the request.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from functools import cache
from typing import Any
from zoneinfo import available_timezones

COLUMN_FIELDS = ("email", "phone")
"""Profile fields kept in their own columns of ``braze_users``."""

_SUBSCRIPTION_STATES = ("opted_in", "subscribed", "unsubscribed")
_GENDERS = ("M", "F", "O", "N", "P")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DOB = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _string(name: str) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a string")
        return value

    return check


def _one_of(name: str, allowed: tuple[str, ...]) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if value not in allowed:
            raise ValueError(f"{name} must be one of {', '.join(allowed)}")
        return value

    return check


def _email(value: Any) -> Any:
    if not isinstance(value, str) or not _EMAIL.match(value):
        raise ValueError("email is not a valid email address")
    return value.lower()


def _dob(value: Any) -> Any:
    if not isinstance(value, str) or not _DOB.match(value):
        raise ValueError("dob must be a date as YYYY-MM-DD")
    try:
        date.fromisoformat(value)
    except ValueError:
        raise ValueError("dob must be a date as YYYY-MM-DD") from None
    return value


def _time(name: str) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if not isinstance(value, str) or parse_time(value) is None:
            raise ValueError(f"{name} must be a time as an ISO-8601 string")
        return value

    return check


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def _time_zone(value: Any) -> Any:
    if not isinstance(value, str) or value not in _zones():
        raise ValueError("time_zone must be a time zone name of the IANA database")
    return value


def _boolean(name: str) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false")
        return value

    return check


def _kind(name: str, kind: type) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if not isinstance(value, kind):
            raise ValueError(f"{name} must be an {'object' if kind is dict else 'array'}")
        return value

    return check


def _location(value: Any) -> Any:
    if not isinstance(value, dict) or not all(
        isinstance(value.get(k), int | float) and not isinstance(value.get(k), bool)
        for k in ("latitude", "longitude")
    ):
        raise ValueError("current_location must be an object with numbers latitude and longitude")
    return value


PROFILE_FIELDS: dict[str, Callable[[Any], Any]] = {
    "country": _string("country"),
    "current_location": _location,
    "date_of_first_session": _time("date_of_first_session"),
    "date_of_last_session": _time("date_of_last_session"),
    "dob": _dob,
    "email": _email,
    "email_subscribe": _one_of("email_subscribe", _SUBSCRIPTION_STATES),
    "email_open_tracking_disabled": _boolean("email_open_tracking_disabled"),
    "email_click_tracking_disabled": _boolean("email_click_tracking_disabled"),
    "facebook": _kind("facebook", dict),
    "first_name": _string("first_name"),
    "gender": _one_of("gender", _GENDERS),
    "home_city": _string("home_city"),
    "image_url": _string("image_url"),
    "language": _string("language"),
    "last_name": _string("last_name"),
    "marked_email_as_spam_at": _time("marked_email_as_spam_at"),
    "phone": _string("phone"),
    "push_subscribe": _one_of("push_subscribe", _SUBSCRIPTION_STATES),
    "push_tokens": _kind("push_tokens", list),
    "subscription_groups": _kind("subscription_groups", list),
    "time_zone": _time_zone,
    "twitter": _kind("twitter", dict),
}
"""Braze's user profile fields (the attributes object's "Braze user profile fields"),
each with its check. ``null`` removes any of them and is never checked."""

EXPORTED_FIELDS = (
    "first_name", "last_name", "email", "dob", "home_city", "country", "phone", "language",
    "time_zone", "gender", "email_subscribe", "push_subscribe", "current_location",
    "date_of_first_session", "date_of_last_session", "image_url",
)  # fmt: skip
"""The profile fields ``/users/export/ids`` shows at the top level of a profile."""


def check_field(name: str, value: Any) -> Any:
    """The value to store for the profile field ``name`` (None removes it)."""
    if value is None:
        return None
    return PROFILE_FIELDS[name](value)


def parse_time(value: str) -> datetime | None:
    """An ISO-8601 time (``Z`` or an offset; a date alone is midnight UTC), or None."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed
