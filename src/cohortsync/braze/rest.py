"""Parsing the bodies of Braze's REST endpoints (``/users/*``).

Like the partner endpoints, these read the raw JSON themselves so that a
malformed body gets a 400 with a message naming the field, never a 500.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cohortsync.braze.profiles.rest_operations import TrackedUser
from cohortsync.braze.store import Alias
from cohortsync.braze.validation import ApiError, is_identifier, parse_alias

MAX_TRACK_ATTRIBUTES = 75
MAX_ALIAS_OBJECTS = 50
MAX_EXPORT_IDS = 50


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


def parse_track(body: dict[str, Any]) -> list[TrackedUser]:
    """``{"attributes": [...]}``: each object names a user by external_id or user_alias."""
    items = []
    for where, item in _objects(body, "attributes", MAX_TRACK_ATTRIBUTES, "attributes objects"):
        has_external = "external_id" in item
        if has_external == ("user_alias" in item):
            raise ApiError(400, f"{where} must hold exactly one of external_id and user_alias")
        update_only = item.get("_update_existing_only", False)
        if not isinstance(update_only, bool):
            raise ApiError(400, f"{where}._update_existing_only must be a boolean")
        custom = {
            key: value
            for key, value in item.items()
            if key not in ("external_id", "user_alias", "_update_existing_only")
        }
        if any("\x00" in key for key in custom):
            raise ApiError(400, f"{where} holds an attribute name with a NUL character")
        if has_external:
            items.append(
                TrackedUser(_external_id(item["external_id"], where), None, update_only, custom)
            )
        else:
            alias = _alias(item["user_alias"], f"{where}.user_alias")
            items.append(TrackedUser(None, alias, update_only, custom))
    return items


def parse_alias_new(body: dict[str, Any]) -> list[tuple[str | None, Alias]]:
    """``{"user_aliases": [{"alias_name", "alias_label", "external_id"?}]}``."""
    items: list[tuple[str | None, Alias]] = []
    raw = _array(body, "user_aliases", MAX_ALIAS_OBJECTS, "alias objects")
    for index, item in enumerate(raw):
        where = f"user_aliases[{index}]"
        alias = _alias(item, where)
        external_id = item.get("external_id")
        items.append((None if external_id is None else _external_id(external_id, where), alias))
    return items


def parse_identify(body: dict[str, Any]) -> list[tuple[str, Alias]]:
    """``{"aliases_to_identify": [{"external_id", "user_alias"}]}``."""
    items = []
    for where, item in _objects(body, "aliases_to_identify", MAX_ALIAS_OBJECTS, "objects"):
        external_id = _external_id(item.get("external_id"), where)
        items.append((external_id, _alias(item.get("user_alias"), f"{where}.user_alias")))
    return items


def parse_export(body: dict[str, Any]) -> tuple[list[str], list[Alias], str | None]:
    """``{"external_ids"?, "user_aliases"?, "device_id"?}``; at least one of them."""
    external_ids = _array(body, "external_ids", MAX_EXPORT_IDS, "strings", optional=True)
    if not all(is_identifier(value) for value in external_ids):
        raise ApiError(400, "external_ids must be an array of strings")
    raw_aliases = _array(body, "user_aliases", MAX_EXPORT_IDS, "aliases", optional=True)
    aliases = [_alias(item, f"user_aliases[{i}]") for i, item in enumerate(raw_aliases)]
    device_id = body.get("device_id")
    if device_id is not None and not is_identifier(device_id):
        raise ApiError(400, "device_id must be a string")
    fields = body.get("fields_to_export", [])
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise ApiError(400, "fields_to_export must be an array of strings")
    if not external_ids and not aliases and device_id is None:
        raise ApiError(400, "name users by external_ids, user_aliases or device_id")
    return list(external_ids), aliases, device_id
