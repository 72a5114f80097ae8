"""The exact error messages of the partner cohort import API (spec, section 2).

Clients show these to users, and tests compare them, so they live in one place.
"""

from __future__ import annotations

SUCCESS = "success"

INVALID_COHORT_ID = "cohort_id must be a valid string"
INVALID_COHORT_CHANGES = (
    "cohort_changes must be an array of objects each with key user_ids and/or device_ids "
    "mapping to an array of strings, or an aliases object"
)
TOO_MANY_IDENTIFIERS = "Only 1,000 user_ids, device_ids, and aliases are allowed per request"
INVALID_NAME = "name must be a non-empty string"
INVALID_CREATED_AT = "created_at must be a valid time as an ISO-8601 string"

INVALID_PARTNER_API_KEY = "Invalid Partner API key"
INVALID_CLIENT_SECRET = "Invalid client secret"
UNAUTHORIZED = "Unauthorized access"
RESOURCE_LOCKED = "Resource locked"
RATE_LIMITED = "Rate limited"
CONFLICT = "A concurrent request changed the same user first; retry the request"
STORE_UNAVAILABLE = "Service unavailable: the store is busy; retry with exponential backoff"
STORE_SCHEMA_MISMATCH = (
    "Internal error: the store's tables do not match this service's version; "
    "the operator must run 'cohortsync braze db upgrade' and restart the service"
)


def partner_not_enabled(client_secret: str) -> str:
    """The 401 message when the workspace has not enabled the URL's partner."""
    return f"Partner not enabled for client with client secret: {client_secret}"
