"""The Create Activation form read as an :class:`~cohortsync.definitions.Activation`'s data.

A form posts text, checkboxes and numbered output mapping rows
(``map-N-attribute|output``); the definition wants typed fields, a mirror's
guards and a list of mappings, and a saved activation must show again in
the same fields. Reading both ways lives here, next to the blank form of a
new activation, whose only values are the definitions' defaults.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from starlette.datastructures import FormData

from cohortsync.catalog.audiences import SavedActivation
from cohortsync.console.alert_form import (
    alert_data,
    alert_problems,
    alert_values,
    saved_alert_values,
)
from cohortsync.console.attribute_form import attribute_data, attribute_values
from cohortsync.definitions import field_problems
from cohortsync.definitions.activation import DEVICE_IDS, USER_IDS
from cohortsync.definitions.fields import DEFAULT_MAX_REMOVE_PCT, DEFAULT_THREADS

ALIAS_OUTPUT = "alias"  # the mapping row's choice for "the alias column's name"


@dataclass
class MappingRow:
    attribute: str = ""
    output: str = USER_IDS  # user_ids, device_ids or ALIAS_OUTPUT


_MAP_FIELD = re.compile(r"map-(\d+)-(attribute|output)")


def mapping_from_form(form: FormData) -> list[MappingRow]:
    rows: dict[int, dict[str, str]] = {}
    for key, raw in form.multi_items():
        if match := _MAP_FIELD.fullmatch(key):
            rows.setdefault(int(match[1]), {})[match[2]] = raw if isinstance(raw, str) else ""
    return [
        MappingRow(row.get("attribute", ""), row.get("output", USER_IDS))
        for _, row in sorted(rows.items())
    ]


def activation_values(form: FormData) -> dict[str, Any]:
    """The activation form's fields as typed, for the definition and to show again."""

    def text(name: str) -> str:
        value = form.get(name, "")
        return value.strip() if isinstance(value, str) else ""

    return {
        "name": text("name"),
        "description": text("description"),
        "auth": text("auth"),
        "cohort_id": text("cohort_id"),
        "cohort_name": text("cohort_name"),
        "operation": text("operation") or "add",
        "alias_column": text("alias_column"),
        "threads": text("threads"),
        "cast_to_string": form.get("cast_to_string") == "on",
        "skip_invalid": form.get("skip_invalid") == "on",
        "allow_empty": form.get("allow_empty") == "on",
        "max_remove_pct": text("max_remove_pct"),
        **attribute_values(form),
        "schedule": text("schedule"),
        "timezone": text("timezone") or "UTC",
        **alert_values(form),
    }


def activation_data(
    values: Mapping[str, Any], mapping: list[MappingRow], segment: str, *, rest_attribute: bool
) -> dict[str, Any]:
    """The :class:`Activation` fields of the form; empty optional fields are left unset.

    The attribute fields only for a ``rest-attribute`` authentication.
    """
    alias = values["alias_column"] or None
    return {
        "name": values["name"],
        "segment": segment,
        "description": values["description"] or None,
        "auth": values["auth"],
        "cohort_id": values["cohort_id"],
        "cohort_name": values["cohort_name"] or None,
        "operation": values["operation"],
        "alias_column": alias,
        "threads": values["threads"] or DEFAULT_THREADS,
        "cast_to_string": values["cast_to_string"],
        "skip_invalid": values["skip_invalid"],
        "mirror": {
            "allow_empty": values["allow_empty"],
            "max_remove_pct": values["max_remove_pct"] or DEFAULT_MAX_REMOVE_PCT,
        },
        **attribute_data(values, rest_attribute),
        "schedule": values["schedule"] or None,
        "timezone": values["timezone"],
        "alerts": alert_data(values),
        "mapping": [
            {
                "attribute": row.attribute,
                "output": (alias or ALIAS_OUTPUT) if row.output == ALIAS_OUTPUT else row.output,
            }
            for row in mapping
            if row.attribute
        ],
    }


def values_of(activation: SavedActivation) -> tuple[dict[str, Any], list[MappingRow]]:
    """A saved activation as the form shows it."""
    values = {
        "name": activation.name,
        "description": activation.description or "",
        "auth": activation.auth,
        "cohort_id": activation.cohort_id,
        "cohort_name": activation.cohort_name or "",
        "operation": activation.operation,
        "alias_column": activation.alias_column or "",
        "threads": str(activation.threads),
        "cast_to_string": activation.cast_to_string,
        "skip_invalid": activation.skip_invalid,
        "allow_empty": activation.mirror.allow_empty,
        "max_remove_pct": _number_text(activation.mirror.max_remove_pct),
        "attribute_mode": activation.attribute_mode,
        "attribute": activation.attribute or "",
        "schedule": activation.schedule or "",
        "timezone": activation.timezone,
        **saved_alert_values(activation.alerts),
    }
    mapping = [
        MappingRow(
            m.attribute,
            m.output if m.output in (USER_IDS, DEVICE_IDS) else ALIAS_OUTPUT,
        )
        for m in activation.mapping
    ]
    return values, mapping


def _number_text(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


def new_activation_values() -> dict[str, Any]:
    """A new activation's form: every field blank but those the definitions give a default."""
    return {
        **activation_values(FormData()),
        "threads": str(DEFAULT_THREADS),
        "max_remove_pct": _number_text(DEFAULT_MAX_REMOVE_PCT),
    }


def activation_problems(error: ValidationError) -> dict[str, str]:
    """Field problems keyed by the form's field names; the model's own rules are the mapping's."""
    shown, problems = alert_problems(field_problems(error))
    for path, message in problems.items():
        if path == "__root__" or path.startswith("mapping"):
            shown.setdefault("mapping", message)
        elif path.startswith("mirror."):
            shown[path.removeprefix("mirror.")] = message
        else:
            shown[path] = message
    return shown
