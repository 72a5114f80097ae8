"""A saved authentication: a workspace's REST endpoint, its secret and the delivery type."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from cohortsync.definitions.fields import DEFAULT_PARTNER, Definition
from cohortsync.definitions.invalid import RuleBroken

AuthType = Literal["partner-cohort", "rest-attribute"]
AUTH_TYPES: tuple[AuthType, ...] = ("partner-cohort", "rest-attribute")


def _endpoint(endpoint: str) -> str:
    """An http(s) URL without its trailing slashes (API paths are appended to it)."""
    if not endpoint.startswith(("http://", "https://")):
        raise RuleBroken(
            f"the endpoint {endpoint!r} is not an http(s) URL",
            hint="give the workspace's REST endpoint, e.g. https://rest.iad-01.braze.com",
        )
    return endpoint.rstrip("/")


class Authentication(Definition):
    """A workspace's endpoint and secret key, under a name exports refer to.

    ``type`` is how exports through it deliver: ``partner-cohort`` (the
    cohort import API; the key is the workspace's data import key) or
    ``rest-attribute`` (a custom attribute through ``/users/track``; the key
    is a REST API key with the ``users.track`` permission). Both keys live in
    ``data_import_key``, one secret field, as in the export's destination.

    The key is a secret: it never shows in the model's repr, the catalog
    stores it encrypted, and ``apply`` takes it only from the environment.
    """

    kind = "authentication"

    endpoint: Annotated[str, AfterValidator(_endpoint)]
    data_import_key: str = Field(min_length=1, repr=False)
    partner: str = Field(default=DEFAULT_PARTNER, min_length=1)
    type: AuthType = "partner-cohort"
