"""Parsing the bodies of Braze's REST endpoints (``/users/*``).

Like the partner endpoints, these read the raw JSON themselves so that a
malformed body gets a 400 with a message naming the field, never a 500.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cohortsync.braze.profiles.identity_operations import (
    PRIORITIZATIONS,
    EmailToIdentify,
    UsersToDelete,
)
from cohortsync.braze.profiles.rest_operations import EXPORT_FIELDS, ExportRequest
from cohortsync.braze.store import Alias
from cohortsync.braze.validation import ApiError, is_identifier, parse_alias

MAX_ALIAS_OBJECTS = 50
MAX_EXPORT_IDS = 50
MAX_IDENTIFY_OBJECTS = 50
MAX_DELETE_IDS = 50
MERGE_BEHAVIORS = ("none", "merge")
IDENTIFY_KEYS = ("aliases_to_identify", "emails_to_identify", "phone_numbers_to_identify")
DELETE_KEYS = ("external_ids", "user_aliases", "braze_ids", "email_addresses", "phone_numbers")


def _array(
    body: dict[str, Any], key: str, limit: int, item: str, *, optional: bool = False
) -> list[Any]:
    """``body[key]``, an array of at most ``limit`` items; ``optional``: absent is empty."""
    value = body.get(key, [] if optional else None)
    if not isinstance(value, list) or len(value) > limit:
        raise ApiError(400, f"{key} must be an array of at most {limit} {item}")
    return value


def _objects(
    body: dict[str, Any], key: str, limit: int, item: str
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each object of the array ``body[key]``, with where it stands (``key[i]``)."""
    for index, value in enumerate(_array(body, key, limit, item)):
        where = f"{key}[{index}]"
        if not isinstance(value, dict):
            raise ApiError(400, f"{where} must be an object")
        yield where, value


def _external_id(value: Any, where: str) -> str:
    if not is_identifier(value) or not value:
        raise ApiError(400, f"{where}.external_id must be a non-empty string")
    return str(value)


def _alias(value: Any, where: str) -> Alias:
    alias = parse_alias(value)
    if alias is None or not alias[0] or not alias[1]:
        raise ApiError(
            400, f"{where} must be an object with non-empty string alias_name and alias_label"
        )
    return alias


def parse_alias_new(body: dict[str, Any]) -> list[tuple[str | None, Alias]]:
    """``{"user_aliases": [{"alias_name", "alias_label", "external_id"?}]}``."""
    items: list[tuple[str | None, Alias]] = []
    for where, item in _objects(body, "user_aliases", MAX_ALIAS_OBJECTS, "alias objects"):
        alias = _alias(item, where)
        external_id = item.get("external_id")
        items.append((None if external_id is None else _external_id(external_id, where), alias))
    return items


def parse_identify(
    body: dict[str, Any],
) -> tuple[list[tuple[str, Alias]], list[EmailToIdentify], bool]:
    """``{"aliases_to_identify"?, "emails_to_identify"?, "merge_behavior"?}``.

    One of the two arrays is required, at most 50 objects in all; the third
    value says whether ``merge_behavior`` is ``"merge"`` (the default).
    """
    if not any(key in body for key in IDENTIFY_KEYS):
        raise ApiError(400, f"one of {', '.join(IDENTIFY_KEYS)} is required")
    aliases = []
    if "aliases_to_identify" in body:
        for where, item in _objects(body, "aliases_to_identify", MAX_IDENTIFY_OBJECTS, "objects"):
            external_id = _external_id(item.get("external_id"), where)
            aliases.append((external_id, _alias(item.get("user_alias"), f"{where}.user_alias")))
    emails = []
    if "emails_to_identify" in body:
        for where, item in _objects(body, "emails_to_identify", MAX_IDENTIFY_OBJECTS, "objects"):
            emails.append(_email_to_identify(item, where))
    if "phone_numbers_to_identify" in body:
        for where, item in _objects(
            body, "phone_numbers_to_identify", MAX_IDENTIFY_OBJECTS, "objects"
        ):
            emails.append(_email_to_identify(item, where, "phone"))
    if len(aliases) + len(emails) > MAX_IDENTIFY_OBJECTS:
        raise ApiError(400, f"at most {MAX_IDENTIFY_OBJECTS} objects to identify per request")
    behavior = body.get("merge_behavior", "merge")
    if behavior not in MERGE_BEHAVIORS:
        raise ApiError(400, "merge_behavior must be one of 'none' or 'merge'")
    return aliases, emails, behavior == "merge"


def _email_to_identify(item: dict[str, Any], where: str, kind: str = "email") -> EmailToIdentify:
    """``{"external_id", "email" | "phone", "prioritization": [...]}``, checked as Braze
    documents it."""
    external_id = _external_id(item.get("external_id"), where)
    email, order = _prioritized_contact(item, kind, where)
    return EmailToIdentify(external_id, email, order, kind)


def _contact(item: Any, kind: str, where: str) -> tuple[str, str, tuple[str, ...]]:
    """``{"email" | "phone": ..., "prioritization": [...]}`` of ``/users/delete``."""
    if not isinstance(item, dict):
        raise ApiError(400, f"{where} must be an object with {kind} and prioritization")
    value, order = _prioritized_contact(item, kind, where)
    return kind, value, order


def _prioritized_contact(
    item: dict[str, Any], kind: str, where: str
) -> tuple[str, tuple[str, ...]]:
    """The e-mail address or phone number of ``item`` and its ``prioritization``, checked.

    Braze picks among the users who share the address in the order of
    ``prioritization``: distinct values, at most one of ``identified`` and
    ``unidentified``.
    """
    value = item.get(kind)
    if not is_identifier(value) or not value:
        raise ApiError(400, f"{where}.{kind} must be a non-empty string")
    order = item.get("prioritization")
    if (
        not isinstance(order, list)
        or not order
        or any(entry not in PRIORITIZATIONS for entry in order)
        or len(set(order)) != len(order)
        or {"identified", "unidentified"} <= set(order)
    ):
        raise ApiError(
            400,
            f"{where}.prioritization must be a non-empty array of distinct values among "
            f"{', '.join(PRIORITIZATIONS)}, with at most one of identified and unidentified",
        )
    return str(value), tuple(order)


def parse_delete(body: dict[str, Any]) -> UsersToDelete:
    """``{"external_ids" | "user_aliases" | "braze_ids": [...]}``: exactly one, up to 50."""
    present = [key for key in DELETE_KEYS if key in body]
    if len(present) != 1:
        raise ApiError(
            400,
            "name the users by exactly one of external_ids, user_aliases, braze_ids, "
            "email_addresses, phone_numbers",
        )
    [key] = present
    values = _array(body, key, MAX_DELETE_IDS, "aliases" if key == "user_aliases" else "strings")
    if key == "user_aliases":
        return UsersToDelete(
            aliases=tuple(_alias(item, f"user_aliases[{i}]") for i, item in enumerate(values))
        )
    if key in ("email_addresses", "phone_numbers"):
        kind = "email" if key == "email_addresses" else "phone"
        return UsersToDelete(
            contacts=tuple(_contact(item, kind, f"{key}[{i}]") for i, item in enumerate(values))
        )
    if not all(is_identifier(value) for value in values):
        raise ApiError(400, f"{key} must be an array of strings")
    if key == "external_ids":
        return UsersToDelete(external_ids=tuple(values))
    return UsersToDelete(braze_ids=tuple(values))


def parse_export(body: dict[str, Any]) -> ExportRequest:
    """``/users/export/ids``: at least one of ``external_ids``, ``user_aliases``,
    ``device_id``, ``braze_id``, ``email_address`` and ``phone``; ``fields_to_export``
    names Braze's export fields (see :data:`EXPORT_FIELDS`)."""
    external_ids = _array(body, "external_ids", MAX_EXPORT_IDS, "strings", optional=True)
    if not all(is_identifier(value) for value in external_ids):
        raise ApiError(400, "external_ids must be an array of strings")
    raw_aliases = _array(body, "user_aliases", MAX_EXPORT_IDS, "aliases", optional=True)
    aliases = [_alias(item, f"user_aliases[{i}]") for i, item in enumerate(raw_aliases)]
    single: dict[str, str | None] = {}
    for key in ("device_id", "braze_id", "email_address", "phone"):
        value = body.get(key)
        if value is not None and (not is_identifier(value) or not value):
            raise ApiError(400, f"{key} must be a non-empty string")
        single[key] = value
    fields = body.get("fields_to_export", [])
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise ApiError(400, "fields_to_export must be an array of strings")
    unknown = [name for name in fields if name not in EXPORT_FIELDS]
    if unknown:
        raise ApiError(
            400,
            f"fields_to_export holds unknown fields: {', '.join(unknown)}",
            errors=[f"the fields are {', '.join(EXPORT_FIELDS)}"],
        )
    if not external_ids and not aliases and not any(v is not None for v in single.values()):
        raise ApiError(
            400,
            "name users by external_ids, user_aliases, device_id, braze_id, email_address or phone",
        )
    email = single["email_address"]
    return ExportRequest(
        external_ids=list(external_ids),
        aliases=aliases,
        device_id=single["device_id"],
        braze_id=single["braze_id"],
        email=None if email is None else email.lower(),
        phone=single["phone"],
        fields=list(fields),
    )
