"""The *Attribute mode* and *Attribute name* fields of the query and activation forms.

They belong to a ``rest-attribute`` authentication only: a run whose query
or activation carries attribute settings through a partner-cohort
authentication is refused. So the server decides from the chosen
authentication whether the fields are shown (the form re-renders them when
the authentication changes), and a form for any other authentication leaves
them out of what it saves.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from typing import Any

from cohortsync.catalog.auths import AuthRecord
from cohortsync.definitions.fields import AttributeMode, attribute_name
from cohortsync.export.spec import REST_ATTRIBUTE

MODE_OPTIONS = [
    ("array", "array: one list of cohort ids"),
    ("boolean", "boolean: one per cohort"),
]


def is_rest_attribute(auth: str, auths: Iterable[AuthRecord]) -> bool:
    """Whether ``auth`` names a saved ``rest-attribute`` authentication of ``auths``."""
    return any(saved.name == auth and saved.type == REST_ATTRIBUTE for saved in auths)


def attribute_values(form: Mapping[str, Any]) -> dict[str, str]:
    """The two fields as typed (a form without them gives the defaults)."""
    mode = form.get("attribute_mode")
    attribute = form.get("attribute")
    return {
        "attribute_mode": mode.strip() if isinstance(mode, str) and mode.strip() else "array",
        "attribute": attribute.strip() if isinstance(attribute, str) else "",
    }


def attribute_data(values: Mapping[str, Any], shown: bool) -> dict[str, Any]:
    """The definition's attribute fields: left out unless the fields are shown."""
    if not shown:
        return {}
    return {"attribute_mode": values["attribute_mode"], "attribute": values["attribute"] or None}


def attribute_context(values: Mapping[str, Any], shown: bool, base_url: str) -> dict[str, Any]:
    """What ``console/_attribute_fields.html`` shows, and where it re-renders itself from."""
    mode: AttributeMode = "boolean" if values.get("attribute_mode") == "boolean" else "array"
    cohort_id = values.get("cohort_id") or "<cohort id>"
    default = attribute_name(mode, None, cohort_id)
    return {
        "attribute_shown": shown,
        "attribute_mode_options": MODE_OPTIONS,
        "attribute_default": default,
        "attribute_mode_attrs": f'hx-post="{html.escape(base_url)}" hx-trigger="change" '
        'hx-target="#attribute-fields" hx-swap="outerHTML"',
        "attribute_name_attrs": f'placeholder="{html.escape(default)}"',
    }
