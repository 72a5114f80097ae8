"""Parsing the body of ``/users/track``: what is fatal (400) and what is one object's.

Braze's rules (https://www.braze.com/docs/api/endpoints/user_data/post_user_track/):
``attributes``, ``events`` and ``purchases`` are each optional, at most 75
objects each, and a request needs at least one of them. A body of the wrong
shape as a whole is refused (400); an object that is invalid among valid ones
is not: it becomes a non-fatal error ``{"type", "input_array", "index"}``
and the valid objects are processed.

Each object addresses one profile (https://www.braze.com/docs/api/objects_filters/user_attributes_object/)
by ``external_id``, ``user_alias`` or ``braze_id``, else by ``email`` or
``phone``. ``_update_existing_only`` defaults to false for an external id
(the profile is created), to true for an alias (an alias-only profile is
created only when it is explicitly false) and is always true for a
``braze_id``, which never creates a profile.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from typing import Any

import orjson

from cohortsync.braze.profiles.fields import PROFILE_FIELDS, check_field, parse_time
from cohortsync.braze.profiles.tracking import CustomOp, Ref, TrackObject, object_error
from cohortsync.braze.validation import ApiError, is_identifier, parse_alias

MAX_OBJECTS = 75
ARRAYS = ("attributes", "events", "purchases")
IDENTIFIER_REQUIRED = (
    "'external_id' or 'braze_id' or 'user_alias' or 'email' or 'phone' is required"
)
_RESERVED = frozenset(
    {"external_id", "user_alias", "braze_id", "_update_existing_only", "push_token_import"}
)
_CREATES_BY_DEFAULT = {"external_id": True, "user_alias": False, "email": True, "phone": True}
MAX_QUANTITY = 100
_ADDRESSING: tuple[str, ...] = ("external_id", "user_alias", "braze_id")
_CONTACTS: tuple[str, ...] = ("email", "phone")


@dataclass(frozen=True)
class TrackRequest:
    """The valid objects, the non-fatal errors, and which arrays the body sent."""

    objects: list[TrackObject]
    errors: list[dict[str, Any]]
    sent: dict[str, int]


class _Invalid(Exception):
    """This object is invalid; the message is the error's ``type``."""


def parse_track(body: dict[str, Any]) -> TrackRequest:
    """The objects of a ``/users/track`` body, in order: attributes, events, purchases."""
    present = [name for name in ARRAYS if name in body]
    if not present:
        raise ApiError(
            400, "the request must hold attributes, events or purchases (arrays of objects)"
        )
    objects: list[TrackObject] = []
    errors: list[dict[str, Any]] = []
    sent: dict[str, int] = {}
    for array in present:
        items = body[array]
        if not isinstance(items, list) or len(items) > MAX_OBJECTS:
            raise ApiError(400, f"{array} must be an array of at most {MAX_OBJECTS} objects")
        sent[array] = len(items)
        for index, item in enumerate(items):
            try:
                objects.append(_parse_object(array, index, item))
            except _Invalid as invalid:
                errors.append(object_error(str(invalid), array, index))
    return TrackRequest(objects, errors, sent)


def _parse_object(array: str, index: int, item: Any) -> TrackObject:
    if not isinstance(item, dict):
        raise _Invalid(f"{array} objects must be JSON objects")
    ref, consumed = _ref(item)
    update_only = _update_only(item, ref[0])
    if array == "attributes":
        profile, custom = _attributes(item, consumed)
        return TrackObject(array, index, ref, update_only, profile=profile, custom=custom)
    row = _event(item) if array == "events" else _purchase(item)
    return TrackObject(array, index, ref, update_only, row=row)


def _ref(item: dict[str, Any]) -> tuple[Ref, str]:
    """The profile the object addresses, and the key that named it."""
    if "external_id" in item and "user_alias" not in item and "braze_id" not in item:
        value = item["external_id"]  # the usual case, first
        if not is_identifier(value) or not value:
            raise _Invalid("external_id must be a non-empty string")
        return ("external_id", value), "external_id"
    named: list[str] = [k for k in _ADDRESSING if k in item]
    if len(named) > 1:
        raise _Invalid("only one of 'external_id', 'user_alias' and 'braze_id' may be given")
    if not named:
        named = [k for k in _CONTACTS if k in item][:1]
    if not named:
        raise _Invalid(IDENTIFIER_REQUIRED)
    key = named[0]
    value = item[key]
    if key == "user_alias":
        alias = parse_alias(value)
        if alias is None or not alias[0] or not alias[1]:
            raise _Invalid(
                "user_alias must be an object with non-empty string alias_name and alias_label"
            )
        return (key, alias), key
    if not is_identifier(value) or not value:
        raise _Invalid(f"{key} must be a non-empty string")
    if key == "braze_id":
        if not value.isdigit():
            raise _Invalid("braze_id is not a braze_id of this workspace")
        return (key, int(value)), key
    if key in ("email", "phone"):
        try:
            return (key, check_field(key, value)), key
        except ValueError as error:
            raise _Invalid(str(error)) from None
    return (key, value), key


def _update_only(item: dict[str, Any], kind: str) -> bool:
    value = item.get("_update_existing_only")
    if value is not None and not isinstance(value, bool):
        raise _Invalid("_update_existing_only must be true or false")
    if kind == "braze_id":
        return True
    return (not _CREATES_BY_DEFAULT[kind]) if value is None else value


def _attributes(item: dict[str, Any], consumed: str) -> tuple[dict[str, Any], tuple[CustomOp, ...]]:
    """Profile fields (checked; None removes) and custom attribute operations."""
    profile: dict[str, Any] = {}
    custom: list[CustomOp] = []
    for name, value in item.items():
        if name in _RESERVED or name == consumed:
            continue
        if name in PROFILE_FIELDS:
            try:
                profile[name] = check_field(name, value)
            except ValueError as error:
                raise _Invalid(str(error)) from None
            continue
        if not name or "\x00" in name or len(name) > 255:
            raise _Invalid("custom attribute names must be 1 to 255 characters without NUL")
        _operations(name, value, custom)
    return profile, tuple(custom)


_ARRAY_OPERATIONS = frozenset({"add", "remove"})
_INCREMENT = frozenset({"inc"})


def _operations(name: str, value: Any, into: list[CustomOp]) -> None:
    """Append the attribute's operations to ``into`` (the key views compare as sets,
    without building one per attribute)."""
    if value is None:
        into.append((name, "unset", None))
        return
    if isinstance(value, dict) and value:
        keys = value.keys()
        if keys <= _ARRAY_OPERATIONS:
            for op in ("remove", "add"):
                if op in value:
                    if not isinstance(value[op], list):
                        raise _Invalid(f"{name}: {op} takes an array of values")
                    into.append((name, op, value[op]))
            return
        if keys == _INCREMENT:
            step = value["inc"]
            if not isinstance(step, int | float) or isinstance(step, bool):
                raise _Invalid(f"{name}: inc takes a number")
            into.append((name, "inc", step))
            return
    into.append((name, "set", value))


def _time(item: dict[str, Any]) -> str:
    value = item.get("time")
    parsed = parse_time(value) if isinstance(value, str) else None
    if parsed is None:
        raise _Invalid("time must be a time as an ISO-8601 string")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).isoformat(timespec="milliseconds")


def _extras(item: dict[str, Any]) -> dict[str, Any]:
    properties = item.get("properties")
    if properties is not None and not isinstance(properties, dict):
        raise _Invalid("properties must be an object")
    app_id = item.get("app_id")
    if app_id is not None and not is_identifier(app_id):
        raise _Invalid("app_id must be a string")
    return {
        "app_id": app_id,
        "properties": orjson.dumps(properties).decode() if properties else None,
        "time": _time(item),
    }


def _event(item: dict[str, Any]) -> dict[str, Any]:
    """An event object (https://www.braze.com/docs/api/objects_filters/event_object/)."""
    name = item.get("name")
    if not is_identifier(name) or not name:
        raise _Invalid("name must be a non-empty string")
    return {"name": name, **_extras(item)}


def _purchase(item: dict[str, Any]) -> dict[str, Any]:
    """A purchase object (https://www.braze.com/docs/api/objects_filters/purchase_object/)."""
    product = item.get("product_id")
    if not is_identifier(product) or not product:
        raise _Invalid("product_id must be a non-empty string")
    currency = item.get("currency")
    if not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha():
        raise _Invalid("currency must be an ISO 4217 alphabetic currency code, such as USD")
    price = item.get("price")
    if not isinstance(price, int | float) or isinstance(price, bool):
        raise _Invalid("price must be a number")
    quantity = item.get("quantity", 1)
    if (
        not isinstance(quantity, int)
        or isinstance(quantity, bool)
        or not 0 < quantity <= MAX_QUANTITY
    ):
        raise _Invalid(f"quantity must be an integer from 1 to {MAX_QUANTITY}")
    return {
        "product_id": product,
        "currency": currency.upper(),
        "price": float(price),
        "quantity": quantity,
        **_extras(item),
    }
