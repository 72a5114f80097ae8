"""Messages with Braze's personalisation placeholders, checked once and rendered fast.

A message is text with placeholders in Braze's Liquid spelling::

    Hi {{${first_name}}}!
    Hi {{${first_name} | default: 'there'}}, your plan is {{custom_attribute.${plan}}}.

``${name}`` reads Braze's profile field ``name`` when it is one
(``${first_name}``, ``${email}``, ... kept apart from custom attributes by
``/users/track``), else the custom attribute ``name``;
``custom_attribute.${name}`` always reads the custom attribute; ``${user_id}``
is the profile's external id. An attribute the profile lacks renders empty,
or the ``default`` (which also replaces an empty string and ``false``, as
Liquid's ``default`` filter does). Nothing else of Liquid is supported, and
saying so at save time is the point of :func:`compile_message`: a campaign
whose message the service cannot render is refused when it is saved, not
when it is launched.

A compiled :class:`Template` renders in Python (:meth:`Template.render`, for
previews) and compiles to one SQL expression over the users table
(:func:`cohortsync.braze.store.campaign_queries.message_expression`), so a
launch renders a million messages inside the database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from cohortsync.braze.profiles.fields import COLUMN_FIELDS, PROFILE_FIELDS
from cohortsync.errors import ConfigError

PLACEHOLDER_HINT = (
    "write {{${first_name}}}, {{custom_attribute.${plan}}} or "
    "{{${first_name} | default: 'there'}}; other Liquid is not supported"
)
EXTERNAL_ID = "user_id"
"""The placeholder name (``${user_id}``) that renders the profile's external id."""

_ATTRIBUTE = r"[A-Za-z_][A-Za-z0-9_]{0,254}"
_PLACEHOLDER = re.compile(
    r"\{\{\s*(?P<custom>custom_attribute\.)?\$\{(?P<name>" + _ATTRIBUTE + r")\}\s*"
    r"(?:\|\s*default\s*:\s*(?:'(?P<single>[^']*)'|\"(?P<double>[^\"]*)\")\s*)?\}\}"
)
_OPENINGS = re.compile(r"\{\{|\{%")


@dataclass(frozen=True)
class Slot:
    """One placeholder: the attribute it reads, its default (None: render empty), and
    where the attribute lives: ``custom`` (``users.attributes``), ``profile`` (Braze's
    profile fields, ``users.standard``) or ``column`` (``users.email``, ``users.phone``)."""

    attribute: str
    default: str | None = None
    source: str = "custom"


def _source(name: str, custom: bool) -> str:
    if custom:
        return "custom"
    if name in COLUMN_FIELDS:
        return "column"
    return "profile" if name in PROFILE_FIELDS else "custom"


Part = str | Slot


@dataclass(frozen=True)
class Template:
    """A checked message: literal text and :class:`Slot` parts, in order."""

    source: str
    parts: tuple[Part, ...]

    @property
    def slots(self) -> tuple[Slot, ...]:
        return tuple(part for part in self.parts if isinstance(part, Slot))

    @property
    def attributes(self) -> tuple[str, ...]:
        """The attribute names the message reads, each once, in order of appearance."""
        return tuple(dict.fromkeys(slot.attribute for slot in self.slots))

    def render(self, attributes: dict[str, Any] | None, external_id: str | None = None) -> str:
        """The message for one profile (the launch renders the same text in SQL)."""
        values = attributes or {}
        pieces = []
        for part in self.parts:
            if isinstance(part, str):
                pieces.append(part)
                continue
            if part.attribute == EXTERNAL_ID:
                text = external_id
            else:
                text = attribute_text(values.get(part.attribute))
            if not text and part.default is not None:
                text = part.default
            pieces.append(text or "")
        return "".join(pieces)


def attribute_text(value: Any) -> str | None:
    """How an attribute value prints in a message: None for nothing, ``''`` for false.

    Strings as they are, numbers as JSON writes them, ``true``; objects and
    arrays as their JSON. ``false`` prints empty so that ``default`` replaces
    it, as in Liquid.
    """
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if value is True:
        return "true"
    if value is False:
        return ""
    return orjson.dumps(value).decode()


def compile_message(source: str, *, where: str = "message") -> Template:
    """Check a message's placeholders and compile it.

    Raises:
        ConfigError: the message is empty, or a ``{{``/``{%`` does not open a
            supported placeholder (the error quotes it and says where it is).
    """
    if not source.strip():
        raise ConfigError(f"the {where} is empty", hint="write the text the users will get")
    parts: list[Part] = []
    position = 0
    for match in _PLACEHOLDER.finditer(source):
        _check_literal(source, position, match.start(), where)
        if match.start() > position:
            parts.append(source[position : match.start()])
        default = match.group("single")
        if default is None:
            default = match.group("double")
        name = match.group("name")
        parts.append(Slot(name, default, _source(name, match.group("custom") is not None)))
        position = match.end()
    _check_literal(source, position, len(source), where)
    if position < len(source):
        parts.append(source[position:])
    return Template(source, tuple(parts))


def _check_literal(source: str, start: int, end: int, where: str) -> None:
    found = _OPENINGS.search(source, start, end)
    if found is None:
        return
    closing = source.find("}}" if found.group() == "{{" else "%}", found.start())
    shown = source[found.start() : closing + 2 if closing >= 0 else found.start() + 40]
    column = found.start() + 1
    raise ConfigError(
        f"the {where} has a placeholder this service cannot render at character {column}: "
        f"{shown!r}",
        hint=PLACEHOLDER_HINT,
    )
