"""User Search: a user found by external id, alias or device id, and the profile.

The search is a GET form (it changes nothing, and its address can be shared):
``by`` names the identifier kind of :data:`lookup.LOOKUP_KINDS`, and the
fields of that kind carry the identifier. Every lookup and profile read is
scoped by the checked workspace, so a user of another workspace is never
found and its braze id under this workspace's path answers 404.

A profile's custom attributes are JSON values of any type; they are shown
by type (text, number, boolean, date, array, object) so that a marketer
reads ``false`` as a boolean and ``["a", "b"]`` as two values, not as text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from cohortsync.braze.dashboard.context import DashboardDep, WorkspaceDep
from cohortsync.braze.profiles import lookup
from cohortsync.errors import ConfigError
from cohortsync.web.pages import readable_time

router = APIRouter()

KIND_CHOICES = (
    ("external_id", "External ID"),
    ("alias", "User alias (label and name)"),
    ("device_id", "Device ID"),
)
"""The search form's choices, in :data:`lookup.LOOKUP_KINDS` order."""
FIELDS = ("external_id", "alias_label", "alias_name", "device_id")
ISO_DATE = re.compile(
    r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$"
)


@dataclass
class Search:
    """What the search form asked for, and what it found."""

    by: str = "external_id"
    values: dict[str, str] = field(default_factory=lambda: dict.fromkeys(FIELDS, ""))
    errors: dict[str, str] = field(default_factory=dict)
    asked: bool = False
    found: list[lookup.FoundUser] = field(default_factory=list)

    @property
    def described(self) -> str:
        """The identifier searched for, in words: ``external id 'u1'``."""
        if self.by == "alias":
            label, name = self.values["alias_label"], self.values["alias_name"]
            return f"alias {name!r} (label {label!r})"
        if self.by == "device_id":
            return f"device id {self.values['device_id']!r}"
        return f"external id {self.values['external_id']!r}"


@dataclass(frozen=True)
class AttributeRow:
    """One custom attribute as the profile shows it."""

    name: str
    kind: str
    text: str = ""
    items: tuple[str, ...] = ()
    raw: str = ""


@router.get("/w/{workspace_id}/users")
def user_search(request: Request, dashboard: DashboardDep, workspace: WorkspaceDep) -> Response:
    """The search form; with ``by`` in the query, the users holding that identifier."""
    search = _read_search(dict(request.query_params))
    if search.asked and not search.errors:
        search.found = _find(dashboard, workspace.id, search)
    return dashboard.render(
        request,
        "dashboard/users_search.html",
        workspace,
        {"search": search, "kinds": KIND_CHOICES},
        status_code=400 if search.errors else 200,
    )


@router.get("/w/{workspace_id}/users/{user_id}")
def user_page(
    request: Request, dashboard: DashboardDep, workspace: WorkspaceDep, user_id: str
) -> Response:
    """The profile: identifiers, attributes, cohorts, segments and messages received."""
    profile = None
    if user_id.isdigit():
        profile = lookup.user_profile(dashboard.store, workspace.id, int(user_id))
    if profile is None:
        raise ConfigError(
            f"unknown user {user_id} in this workspace",
            hint="Find the user by external id, alias or device id on User Search.",
        )
    return dashboard.render(
        request,
        "dashboard/users_profile.html",
        workspace,
        {
            "profile": profile,
            "attributes": attribute_rows(profile.attributes),
            "launches": lookup.RECENT_LAUNCHES,
        },
    )


def _read_search(query: dict[str, str]) -> Search:
    search = Search()
    search.values = {name: query.get(name, "").strip() for name in FIELDS}
    if "by" not in query:
        return search
    search.asked = True
    search.by = query["by"]
    if search.by not in lookup.LOOKUP_KINDS:
        search.errors["by"] = "Choose External ID, User alias or Device ID."
        search.by = "external_id"
        return search
    needed = ("alias_label", "alias_name") if search.by == "alias" else (search.by,)
    words = {
        "external_id": "the external id",
        "alias_label": "the alias label (e.g. email)",
        "alias_name": "the alias name",
        "device_id": "the device id",
    }
    for name in needed:
        if not search.values[name]:
            search.errors[name] = f"Type {words[name]}."
    return search


def _find(dashboard: DashboardDep, workspace_id: int, search: Search) -> list[lookup.FoundUser]:
    values = search.values
    if search.by == "alias":
        alias = (values["alias_label"], values["alias_name"])
        return lookup.find_users(dashboard.store, workspace_id, alias=alias)
    if search.by == "device_id":
        return lookup.find_users(dashboard.store, workspace_id, device_id=values["device_id"])
    return lookup.find_users(dashboard.store, workspace_id, external_id=values["external_id"])


def attribute_rows(attributes: dict[str, Any]) -> list[AttributeRow]:
    """The custom attributes by name, each with its type and a readable value."""
    return [_attribute(name, value) for name, value in sorted(attributes.items())]


def _attribute(name: str, value: Any) -> AttributeRow:
    if value is None:
        return AttributeRow(name, "blank", "blank")
    if isinstance(value, bool):
        return AttributeRow(name, "boolean", "true" if value else "false")
    if isinstance(value, int | float):
        return AttributeRow(name, "number", str(value))
    if isinstance(value, str):
        if ISO_DATE.match(value):
            return AttributeRow(name, "date", readable_time(value), raw=value)
        return AttributeRow(name, "text", value)
    if isinstance(value, list):
        items = tuple(item if isinstance(item, str) else _json(item) for item in value)
        return AttributeRow(name, "array", items=items)
    return AttributeRow(name, "object", orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()
