"""Check a destination's credentials before saving them.

A request that touches nothing in Braze but goes through the same key checks
as a real export, so a bad key or a wrong endpoint is caught when the
authentication is created, not at 3 a.m. in a schedule:

- ``partner-cohort``: an empty ``cohort_changes``;
- ``rest-attribute``: ``/users/track`` with one update-only attributes object
  for an external id nobody has. ``_update_existing_only`` creates nobody, so
  Braze answers a success (200 or 201, perhaps with a non-fatal error for that
  object) when the key holds ``users.track``, and 401/403 when it does not.
"""

from __future__ import annotations

import asyncio

import orjson

from cohortsync.catalog.auths import (
    AuthRecord,
    auth_fields,
    check_secret_key,
    exists_already,
    get_auth,
    list_auths,
    save_auth,
    unknown_auth,
    upsert_auth,
)
from cohortsync.catalog.db import open_catalog
from cohortsync.definitions import Authentication, validated
from cohortsync.errors import ConfigError, RetriesExhausted
from cohortsync.export.client import PartnerClient, RetryPolicy
from cohortsync.export.rest_attribute import TRACK_PATH
from cohortsync.export.spec import REST_ATTRIBUTE, Destination
from cohortsync.settings import Settings

CHECK_COHORT_ID = "cohortsync-credentials-check"
CHECK_EXTERNAL_ID = "cohortsync-credentials-check-nobody"
CHECK_ATTRIBUTE = "cohortsync_credentials_check"


def check_body(destination: Destination) -> tuple[str, bytes]:
    """The path and body of the check request of ``destination``'s type."""
    if destination.type == REST_ATTRIBUTE:
        track = {
            "attributes": [
                {
                    "external_id": CHECK_EXTERNAL_ID,
                    "_update_existing_only": True,
                    CHECK_ATTRIBUTE: True,
                }
            ]
        }
        return TRACK_PATH, orjson.dumps(track)
    body = orjson.dumps(
        {
            "partner_api_key": destination.partner_api_key,
            "client_secret": destination.data_import_key,
            "cohort_id": CHECK_COHORT_ID,
            "cohort_changes": [],
        }
    )
    return "cohorts/users", body


def check_credentials(destination: Destination, *, timeout: float = 15.0) -> None:
    """Send the harmless request of :func:`check_body`; return when it is accepted.

    Raises:
        DestinationRefused: the server refused the keys (its message included).
        ConfigError: the endpoint could not be reached or kept failing.
    """
    policy = RetryPolicy(max_attempts=3, backoff_base=0.2, backoff_max=1.0, timeout=timeout)

    async def check() -> None:
        async with PartnerClient(destination, threads=1, policy=policy) as client:
            path, body = check_body(destination)
            await client.post(path, body, what="credentials check")

    try:
        asyncio.run(check())
    except RetriesExhausted as error:
        raise ConfigError(
            f"the endpoint {destination.endpoint} is unreachable or failing: {error.message}",
            hint="check the REST endpoint URL of the workspace and the network",
        ) from None


def create_checked_auth(auth: Authentication, settings: Settings) -> AuthRecord:
    """Save a new authentication once its endpoint accepts its key (``auth create``, the console).

    Nothing is saved when the name is taken, the secret key file is missing,
    or the endpoint refuses the key or cannot be reached.

    Raises:
        ConfigError: the name is taken, the key file is missing, or the
            endpoint is unreachable.
        DestinationRefused: the endpoint refused the key (its message included).
    """
    destination = checked_destination(auth, settings)  # a bad endpoint, before the catalog
    catalog = open_catalog(settings.catalog_path)
    try:
        if auth.name in {record.name for record in list_auths(catalog)}:
            raise exists_already(auth.name)
        check_secret_key(catalog, settings)
        check_credentials(destination)
        return save_auth(catalog, settings, auth)
    finally:
        catalog.dispose()


def update_checked_auth(
    name: str,
    settings: Settings,
    *,
    endpoint: str | None = None,
    partner: str | None = None,
    key: str | None = None,
) -> tuple[AuthRecord, bool]:
    """Give a saved authentication a new endpoint, partner or key once the endpoint accepts it.

    The rotation of a key without a gap (``auth update``): the saved
    authentication keeps working until the new key is checked, then the new
    one replaces it in place, so the saved queries, activations and schedules
    that name it take it at their next run. What is not given is kept. Returns
    the saved record and whether anything changed.

    Raises:
        ConfigError: no authentication has the name, the key file is missing,
            the change is invalid, or the endpoint is unreachable.
        DestinationRefused: the endpoint refused the key; the saved one is kept.
    """
    catalog = open_catalog(settings.catalog_path)
    try:
        saved = auth_fields(catalog, settings, name)
        if saved is None:
            raise unknown_auth(name)
        changes = {"endpoint": endpoint, "partner": partner, "data_import_key": key}
        fields = {**saved, **{k: v for k, v in changes.items() if v is not None}}
        auth = validated(Authentication, {"name": name, **fields})
        check_credentials(checked_destination(auth, settings))
        changed = upsert_auth(catalog, settings, auth)
        return get_auth(catalog, name), changed
    finally:
        catalog.dispose()


def checked_destination(auth: Authentication, settings: Settings) -> Destination:
    """The destination the credentials check of ``auth`` is sent to (``auth create|update``,
    ``apply``)."""
    if auth.type == REST_ATTRIBUTE:
        return Destination(
            endpoint=auth.endpoint,
            data_import_key=auth.data_import_key,
            partner_api_key="",
            auth_name=auth.name,
            type=REST_ATTRIBUTE,
        )
    return Destination(
        endpoint=auth.endpoint,
        data_import_key=auth.data_import_key,
        partner_api_key=settings.partner_api_key_for(auth.endpoint),
        partner=auth.partner,
        auth_name=auth.name,
    )
