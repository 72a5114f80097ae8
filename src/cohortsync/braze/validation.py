"""Reading and checking request bodies by hand, before anything is written.

FastAPI's own validation answers 422 with its own wording and runs before the
handler, but the partner API must check the partner key, the client secret and
the partner's enablement *before* the body's shape, and answer with the spec's
exact messages. So handlers read the raw body here: content type, size and
JSON syntax first, then typed parsers that raise :class:`ApiError` with the
message a client can act on. Nothing reaches the store unless it parsed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from cohortsync.braze import messages
from cohortsync.braze.store import MAX_IDENTIFIER_LENGTH, Alias

MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_IDENTIFIERS_PER_REQUEST = 1000


class ApiError(Exception):
    """An error answer: HTTP status, the ``message`` and optional ``errors``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        errors: list[Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"message": self.message}
        if self.errors:
            payload["errors"] = self.errors
        return payload


async def read_json_object(
    content_type: str | None, content_length: str | None, chunks: AsyncIterator[bytes]
) -> dict[str, Any]:
    """The request body as a JSON object, or an :class:`ApiError` saying why not.

    The size is checked on the declared length and again while reading, so a
    client that lies about it cannot make the service buffer more than 4 MiB.
    """
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise ApiError(
            415,
            f"Content-Type must be application/json, not {content_type or 'missing'}",
        )
    too_large = ApiError(413, f"Request body is larger than {MAX_BODY_BYTES} bytes (4 MiB)")
    if (
        content_length is not None
        and content_length.isdigit()
        and int(content_length) > MAX_BODY_BYTES
    ):
        raise too_large
    body = bytearray()
    async for chunk in chunks:
        body.extend(chunk)
        if len(body) > MAX_BODY_BYTES:
            raise too_large
    try:
        value = orjson.loads(bytes(body))
    except orjson.JSONDecodeError as error:
        raise ApiError(400, f"Request body is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise ApiError(400, "Request body must be a JSON object")
    return value


def is_identifier(value: Any) -> bool:
    """A string the store can hold as an identifier (bounded, no NUL character)."""
    return isinstance(value, str) and len(value) <= MAX_IDENTIFIER_LENGTH and "\x00" not in value


def credential(value: Any) -> str | None:
    """A key from the body, or None when it is absent or not a usable string."""
    return value if is_identifier(value) and value else None


def cohort_id_of(body: dict[str, Any]) -> str:
    value = body.get("cohort_id")
    if not is_identifier(value) or not value:
        raise ApiError(400, messages.INVALID_COHORT_ID)
    return str(value)


@dataclass(frozen=True)
class CohortDefinition:
    """The body of ``POST /partners/{partner}/cohorts``."""

    cohort_id: str
    name: str
    created_at: str


def parse_cohort_definition(body: dict[str, Any]) -> CohortDefinition:
    cohort_id = cohort_id_of(body)
    name = body.get("name")
    if not is_identifier(name) or not str(name).strip():
        raise ApiError(400, messages.INVALID_NAME)
    created_at = body.get("created_at")
    if not isinstance(created_at, str):
        raise ApiError(400, messages.INVALID_CREATED_AT)
    return CohortDefinition(cohort_id, str(name), parse_timestamp(created_at))


def parse_timestamp(text: str) -> str:
    """An ISO-8601 timestamp normalised to UTC; naive times are taken as UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ApiError(400, messages.INVALID_CREATED_AT) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC).isoformat(timespec="milliseconds")
    except OverflowError:
        raise ApiError(400, messages.INVALID_CREATED_AT) from None


@dataclass(frozen=True)
class CohortChange:
    """One object of ``cohort_changes``: identifiers to add, or to remove."""

    user_ids: tuple[str, ...] = ()
    device_ids: tuple[str, ...] = ()
    aliases: tuple[Alias, ...] = ()
    should_remove: bool = False

    @property
    def size(self) -> int:
        return len(self.user_ids) + len(self.device_ids) + len(self.aliases)


@dataclass(frozen=True)
class MembershipChanges:
    """The body of ``POST /partners/{partner}/cohorts/users``."""

    cohort_id: str
    changes: tuple[CohortChange, ...]

    @property
    def size(self) -> int:
        return sum(change.size for change in self.changes)


def parse_membership_changes(body: dict[str, Any]) -> MembershipChanges:
    cohort_id = cohort_id_of(body)
    raw = body.get("cohort_changes")
    if not isinstance(raw, list):
        raise ApiError(400, messages.INVALID_COHORT_CHANGES)
    changes = tuple(_parse_change(item, index) for index, item in enumerate(raw))
    parsed = MembershipChanges(cohort_id, changes)
    if parsed.size > MAX_IDENTIFIERS_PER_REQUEST:
        raise ApiError(
            400,
            messages.TOO_MANY_IDENTIFIERS,
            errors=[f"this request holds {parsed.size} identifiers"],
        )
    return parsed


def _parse_change(item: Any, index: int) -> CohortChange:
    def invalid(detail: str) -> ApiError:
        return ApiError(
            400, messages.INVALID_COHORT_CHANGES, errors=[f"cohort_changes[{index}]: {detail}"]
        )

    if not isinstance(item, dict):
        raise invalid("not an object")
    if not any(key in item for key in ("user_ids", "device_ids", "aliases")):
        raise invalid("has none of user_ids, device_ids, aliases")
    user_ids = _strings(item.get("user_ids", []), "user_ids", invalid)
    device_ids = _strings(item.get("device_ids", []), "device_ids", invalid)
    aliases = parse_aliases(item.get("aliases", []), "aliases", invalid)
    should_remove = item.get("should_remove", False)
    if not isinstance(should_remove, bool):
        raise invalid("should_remove is not a boolean")
    return CohortChange(user_ids, device_ids, aliases, should_remove)


def _strings(value: Any, key: str, invalid: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not are_identifiers(value):
        raise invalid(
            f"{key} is not an array of strings (at most {MAX_IDENTIFIER_LENGTH} characters)"
        )
    return tuple(value)


def are_identifiers(values: list[Any]) -> bool:
    """:func:`is_identifier` for every item, at C speed (requests carry a thousand)."""
    if not values:
        return True
    try:
        joined = "\x01".join(values)
    except TypeError:
        return False
    return "\x00" not in joined and max(map(len, values)) <= MAX_IDENTIFIER_LENGTH


def parse_alias(value: Any) -> Alias | None:
    """``(alias_label, alias_name)`` from an alias object, or None when malformed."""
    if not isinstance(value, dict):
        return None
    label, name = value.get("alias_label"), value.get("alias_name")
    if not is_identifier(label) or not is_identifier(name):
        return None
    return (str(label), str(name))


def parse_aliases(value: Any, key: str, invalid: Any) -> tuple[Alias, ...]:
    if not isinstance(value, list):
        raise invalid(f"{key} is not an array of alias objects")
    aliases = []
    for item in value:
        alias = parse_alias(item)
        if alias is None:
            raise invalid(f"{key} holds an item without string alias_label and alias_name")
        aliases.append(alias)
    return tuple(aliases)
