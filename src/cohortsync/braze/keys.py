"""Credentials: REST API keys, partner API keys and data import keys.

Every request is checked against the store, never a cache, so that a data
import key refused after ``key invalidate`` is refused on the very next call.
The partner checks run in the spec's order: partner API key, client secret,
partner enabled.

A key restricted to source addresses (:mod:`.sources`) sent from any other
address is answered as a key that does not exist (401 ``Invalid client
secret``, or the REST API's ``Unauthorized access``), so that a caller out
of the allowlist learns nothing of the key, not even that it is real; the
check is part of the key's lookup, before the body's shape is checked and
before anything is written.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

import sqlalchemy as sa

from cohortsync.braze import messages
from cohortsync.braze.sources import allows
from cohortsync.braze.store import account_queries
from cohortsync.braze.validation import ApiError


def new_key() -> str:
    """A fresh random key, shaped like Braze's (a UUID-like hex string)."""
    raw = secrets.token_hex(16)
    return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"


FINGERPRINT_LENGTH = 12


def key_fingerprint(key: str) -> str:
    """The first 12 hex digits of the key's SHA-256: names a key without revealing it.

    The dashboard shows and invalidates keys by fingerprint, and each cohort
    change records the fingerprint of the key that sent it, so a key is never
    displayed again after the page that generated it.
    """
    return hashlib.sha256(key.encode()).hexdigest()[:FINGERPRINT_LENGTH]


@dataclass(frozen=True)
class PartnerCaller:
    """Who is calling a partner endpoint, once the credentials have passed.

    ``key_fingerprint`` is the :func:`key_fingerprint` of the data import key
    that passed; the cohort's change history records it.
    """

    workspace_id: int
    partner_id: int
    key_fingerprint: str = ""


def authenticate_partner(
    conn: sa.Connection,
    partner_name: str,
    partner_api_key: str | None,
    client_secret: str | None,
    source: str | None = None,
) -> PartnerCaller:
    """Check a partner call's two keys, sent from address ``source``; raise the spec's 401
    on the first failure."""
    row = account_queries.partner_credentials(
        conn, partner_name, partner_api_key or "", client_secret or ""
    )
    if row is None:
        raise ApiError(401, messages.INVALID_PARTNER_API_KEY)
    if row.workspace_id is None or not allows(row.allowed_sources, source):
        raise ApiError(401, messages.INVALID_CLIENT_SECRET)
    if row.key_partner_id != row.partner_id:
        # A real data import key, but issued for another partner's integration.
        raise ApiError(401, messages.UNAUTHORIZED)
    if not row.enabled:
        raise ApiError(401, messages.partner_not_enabled(client_secret or ""))
    return PartnerCaller(
        workspace_id=int(row.workspace_id),
        partner_id=int(row.partner_id),
        key_fingerprint=key_fingerprint(client_secret or ""),
    )


def authenticate_rest(
    conn: sa.Connection, authorization: str | None, source: str | None = None
) -> int:
    """The workspace id of a ``Bearer <REST API key>`` header sent from ``source``, else 401."""
    scheme, _, token = (authorization or "").partition(" ")
    found = None
    if scheme.lower() == "bearer" and token.strip():
        found = account_queries.workspace_of_rest_key(conn, token.strip())
    if found is None or not allows(found[1], source):
        raise ApiError(
            401,
            messages.UNAUTHORIZED,
            errors=["send the workspace's REST API key as 'Authorization: Bearer KEY'"],
        )
    return found[0]
