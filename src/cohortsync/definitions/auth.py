"""A saved authentication: a workspace's REST endpoint and its data import key."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from cohortsync.definitions.fields import DEFAULT_PARTNER, Definition
from cohortsync.definitions.invalid import RuleBroken


def _endpoint(endpoint: str) -> str:
    """An http(s) URL without its trailing slashes (API paths are appended to it)."""
    if not endpoint.startswith(("http://", "https://")):
        raise RuleBroken(
            f"the endpoint {endpoint!r} is not an http(s) URL",
            hint="give the workspace's REST endpoint, e.g. https://rest.iad-01.braze.com",
        )
    return endpoint.rstrip("/")


class Authentication(Definition):
    """A workspace's endpoint and data import key, under a name exports refer to.

    The key is a secret: it never shows in the model's repr, the catalog
    stores it encrypted, and ``apply`` takes it only from the environment.
    """

    kind = "authentication"

    endpoint: Annotated[str, AfterValidator(_endpoint)]
    data_import_key: str = Field(min_length=1, repr=False)
    partner: str = Field(default=DEFAULT_PARTNER, min_length=1)
