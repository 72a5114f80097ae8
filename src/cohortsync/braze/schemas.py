"""Request and response schemas published in the service's OpenAPI document.

Handlers validate raw bodies themselves (see :mod:`.validation`) so that the
statuses and messages follow the spec; these JSON Schemas describe the same
shapes for readers and for fuzzers such as schemathesis.
"""

from __future__ import annotations

from typing import Any

from cohortsync.braze.store import MAX_IDENTIFIER_LENGTH
from cohortsync.braze.validation import MAX_IDENTIFIERS_PER_REQUEST

_STRING = {"type": "string", "maxLength": MAX_IDENTIFIER_LENGTH}
_KEY = {**_STRING, "description": "A key, sent in the body as Braze's partner API does."}

ALIAS: dict[str, Any] = {
    "type": "object",
    "required": ["alias_name", "alias_label"],
    "properties": {"alias_name": _STRING, "alias_label": _STRING},
}

COHORT_DEFINITION: dict[str, Any] = {
    "type": "object",
    "required": ["partner_api_key", "client_secret", "cohort_id", "name", "created_at"],
    "properties": {
        "partner_api_key": _KEY,
        "client_secret": {**_KEY, "description": "The workspace's data import key."},
        "cohort_id": {**_STRING, "minLength": 1, "description": "Unique per workspace."},
        "name": {**_STRING, "minLength": 1, "description": "Shown in the segment filter."},
        "created_at": {
            "type": "string",
            "format": "date-time",
            "example": "2021-01-21T19:20:30+05:00",
        },
    },
}

COHORT_CHANGE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "user_ids": {"type": "array", "items": _STRING, "description": "External ids."},
        "device_ids": {"type": "array", "items": _STRING},
        "aliases": {"type": "array", "items": ALIAS},
        "should_remove": {"type": "boolean", "default": False},
    },
    "anyOf": [{"required": ["user_ids"]}, {"required": ["device_ids"]}, {"required": ["aliases"]}],
}

MEMBERSHIP_CHANGES: dict[str, Any] = {
    "type": "object",
    "required": ["partner_api_key", "client_secret", "cohort_id", "cohort_changes"],
    "properties": {
        "partner_api_key": _KEY,
        "client_secret": {**_KEY, "description": "The workspace's data import key."},
        "cohort_id": {**_STRING, "minLength": 1},
        "cohort_changes": {
            "type": "array",
            "items": COHORT_CHANGE,
            "description": (
                f"At most {MAX_IDENTIFIERS_PER_REQUEST} identifiers in all objects together."
            ),
        },
    },
}

_PROFILE_REF = {
    "external_id": _STRING,
    "user_alias": ALIAS,
    "braze_id": _STRING,
    "email": _STRING,
    "phone": _STRING,
    "_update_existing_only": {
        "type": "boolean",
        "description": "Default false with external_id, email or phone; true with user_alias; "
        "always true with braze_id.",
    },
}
_TIME = {"type": "string", "format": "date-time", "example": "2026-11-28T12:00:00Z"}


def _track_array(description: str, **properties: Any) -> dict[str, Any]:
    return {
        "type": "array",
        "maxItems": 75,
        "items": {
            "type": "object",
            "description": description,
            "properties": {**_PROFILE_REF, **properties},
        },
    }


TRACK: dict[str, Any] = {
    "type": "object",
    "description": "At least one of the three arrays. An invalid object is a non-fatal "
    "error (status 201, `errors`), not a 400.",
    "properties": {
        "attributes": _track_array(
            "A profile (one of external_id, user_alias, braze_id, email, phone), then Braze "
            "profile fields (first_name, email, country, dob, ...) and custom attributes; "
            'null removes one, {"inc": n}, {"add": [...]}, {"remove": [...]} change one.'
        ),
        "events": _track_array(
            "A custom event of a profile.",
            name={**_STRING, "minLength": 1},
            time=_TIME,
            app_id=_STRING,
            properties={"type": "object"},
        ),
        "purchases": _track_array(
            "A purchase of a profile.",
            product_id={**_STRING, "minLength": 1},
            currency={"type": "string", "minLength": 3, "maxLength": 3, "example": "USD"},
            price={"type": "number"},
            quantity={"type": "integer", "minimum": 1, "maximum": 100, "default": 1},
            time=_TIME,
            app_id=_STRING,
            properties={"type": "object"},
        ),
    },
    "anyOf": [{"required": ["attributes"]}, {"required": ["events"]}, {"required": ["purchases"]}],
}

ALIAS_NEW: dict[str, Any] = {
    "type": "object",
    "required": ["user_aliases"],
    "properties": {
        "user_aliases": {
            "type": "array",
            "maxItems": 50,
            "items": {
                "type": "object",
                "required": ["alias_name", "alias_label"],
                "properties": {
                    "external_id": _STRING,
                    "alias_name": _STRING,
                    "alias_label": _STRING,
                },
            },
        }
    },
}

IDENTIFY: dict[str, Any] = {
    "type": "object",
    "properties": {
        "aliases_to_identify": {
            "type": "array",
            "maxItems": 50,
            "items": {
                "type": "object",
                "required": ["external_id", "user_alias"],
                "properties": {"external_id": _STRING, "user_alias": ALIAS},
            },
        },
        "emails_to_identify": {
            "type": "array",
            "maxItems": 50,
            "items": {
                "type": "object",
                "required": ["external_id", "email", "prioritization"],
                "properties": {
                    "external_id": _STRING,
                    "email": _STRING,
                    "prioritization": {
                        "type": "array",
                        "minItems": 1,
                        "uniqueItems": True,
                        "items": {
                            "type": "string",
                            "enum": [
                                "identified",
                                "unidentified",
                                "most_recently_updated",
                                "least_recently_updated",
                            ],
                        },
                    },
                },
            },
        },
        "phone_numbers_to_identify": {
            "type": "array",
            "maxItems": 50,
            "items": {
                "type": "object",
                "required": ["external_id", "phone", "prioritization"],
                "properties": {
                    "external_id": _STRING,
                    "phone": _STRING,
                    "prioritization": {
                        "type": "array",
                        "minItems": 1,
                        "uniqueItems": True,
                        "items": {
                            "type": "string",
                            "enum": [
                                "identified",
                                "unidentified",
                                "most_recently_updated",
                                "least_recently_updated",
                            ],
                        },
                    },
                },
            },
        },
        "merge_behavior": {"type": "string", "enum": ["none", "merge"], "default": "merge"},
    },
    "anyOf": [
        {"required": ["aliases_to_identify"]},
        {"required": ["emails_to_identify"]},
        {"required": ["phone_numbers_to_identify"]},
    ],
}

DELETE: dict[str, Any] = {
    "type": "object",
    "description": "Exactly one of the five arrays; an email or phone with its prioritization.",
    "properties": {
        "external_ids": {"type": "array", "maxItems": 50, "items": _STRING},
        "user_aliases": {"type": "array", "maxItems": 50, "items": ALIAS},
        "braze_ids": {"type": "array", "maxItems": 50, "items": _STRING},
        "email_addresses": {
            "type": "array",
            "maxItems": 50,
            "items": {
                "type": "object",
                "properties": {
                    "email": _STRING,
                    "prioritization": {"type": "array", "items": _STRING},
                },
                "required": ["email", "prioritization"],
            },
        },
        "phone_numbers": {
            "type": "array",
            "maxItems": 50,
            "items": {
                "type": "object",
                "properties": {
                    "phone": _STRING,
                    "prioritization": {"type": "array", "items": _STRING},
                },
                "required": ["phone", "prioritization"],
            },
        },
    },
    "oneOf": [
        {"required": ["external_ids"]},
        {"required": ["user_aliases"]},
        {"required": ["braze_ids"]},
        {"required": ["email_addresses"]},
        {"required": ["phone_numbers"]},
    ],
}

EXPORT_IDS: dict[str, Any] = {
    "type": "object",
    "description": "At least one identifier.",
    "properties": {
        "external_ids": {"type": "array", "maxItems": 50, "items": _STRING},
        "user_aliases": {"type": "array", "maxItems": 50, "items": ALIAS},
        "device_id": _STRING,
        "braze_id": _STRING,
        "email_address": _STRING,
        "phone": _STRING,
        "fields_to_export": {
            "type": "array",
            "items": {"type": "string"},
            "description": "Only these fields of each profile (default: all).",
        },
    },
}

MESSAGE: dict[str, Any] = {
    "type": "object",
    "required": ["message"],
    "properties": {
        "message": {"type": "string"},
        "errors": {"type": "array", "items": {}},
    },
}


def json_body(schema: dict[str, Any]) -> dict[str, Any]:
    """``openapi_extra`` documenting a required JSON request body."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The error answers of a route, each a ``{"message"}`` body."""
    reasons = {
        400: "The body is not what the endpoint takes; the message says which field.",
        401: "A key is wrong, invalidated, or the partner is not enabled.",
        404: "No such segment.",
        409: "A concurrent request created the same user first; retry.",
        413: "The body is larger than 4 MiB.",
        415: "The body is not application/json.",
        423: "An administrator locked the cohort; retry with backoff.",
        429: "Rate limited; wait Retry-After seconds.",
        500: "The store's schema does not match the service: retrying will not help.",
        503: "The store is busy; retry with exponential backoff.",
    }
    return {
        status: {
            "description": reasons[status],
            "content": {"application/json": {"schema": MESSAGE}},
        }
        for status in statuses
    }
