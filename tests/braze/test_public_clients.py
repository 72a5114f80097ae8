"""A public Braze client library from PyPI against the sandbox's REST endpoints.

``braze-client-p311`` (the ``braze`` package: ``braze.client.BrazeClient``)
is ``braze-client`` with a dependency that imports on Python 3.11 (its
``tenacity`` 5 pin uses ``asyncio.coroutine``, gone in 3.11). It offers
``user_track``, ``user_export`` and ``user_delete``; it has no call for
``/users/alias/new`` or ``/users/identify``, so those go through the
sandbox's own tests (test_users_identity.py). Each test drives the library
as its README shows, against the real server.

The library's top package is named ``braze``, as this suite's folder is, so
its module is loaded from the installed distribution's file.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from types import ModuleType
from typing import Any

import pytest

from cohortsync.braze.profiles import lookup
from cohortsync.braze.sandbox import Sandbox

from .support import email


def _library() -> ModuleType:
    path = importlib.metadata.distribution("braze-client-p311").locate_file("braze/client.py")
    spec = importlib.util.spec_from_file_location("braze_client_library", str(path))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LIBRARY = _library()
BrazeClient: Any = LIBRARY.BrazeClient
BrazeClientError: Any = LIBRARY.BrazeClientError


@pytest.fixture
def client(sandbox: Sandbox) -> Any:
    return BrazeClient(api_key=sandbox.rest_api_key, api_url=sandbox.base_url)


def test_user_track_creates_and_updates_users(client: Any, sandbox: Sandbox) -> None:
    """``user_track`` posts attributes (and empty events and purchases arrays).

    https://www.braze.com/docs/api/endpoints/user_data/post_user_track/
    """
    answer = client.user_track(attributes=[{"external_id": "ann", "plan": "gold"}])
    assert answer["success"] is True
    assert answer["status_code"] in (200, 201)
    [ann] = lookup.find_users(sandbox.store, sandbox.workspace, external_id="ann")
    profile = lookup.user_profile(sandbox.store, sandbox.workspace, ann.braze_id)
    assert profile is not None and profile.attributes["plan"] == "gold"


def test_user_export_by_external_ids(client: Any, sandbox: Sandbox) -> None:
    """``user_export(external_ids=...)`` gets the profiles and the unknown ids back.

    https://www.braze.com/docs/api/endpoints/export/user_data/post_users_identifier/
    """
    sandbox.load_users([{"external_id": "ann", "aliases": [email("ann@x.io")]}])
    answer = client.user_export(external_ids=["ann", "nobody"])
    assert answer["success"] is True
    [user] = answer["users"]
    assert user["external_id"] == "ann"
    assert user["user_aliases"] == [email("ann@x.io")]
    assert answer["invalid_user_ids"] == ["nobody"]


def test_user_export_by_email(client: Any, sandbox: Sandbox) -> None:
    """``user_export(email=...)`` sends ``email_address``: the profile with that email.

    https://www.braze.com/docs/api/endpoints/export/user_data/post_users_identifier/
    """
    client.user_track(attributes=[{"external_id": "ann", "email": "ann@x.io"}])
    answer = client.user_export(email="ann@x.io", fields_to_export=["external_id"])
    assert answer["users"] == [{"external_id": "ann"}]


def test_user_delete_by_external_ids(client: Any, sandbox: Sandbox) -> None:
    """``user_delete`` posts ``external_ids``; the answer counts the deleted users.

    https://www.braze.com/docs/api/endpoints/user_data/post_user_delete/
    """
    sandbox.load_users([{"external_id": "ann", "device_ids": ["d1"]}, {"external_id": "bob"}])
    answer = client.user_delete(external_ids=["ann", "nobody"])
    assert answer["success"] is True
    assert answer["deleted"] == 1
    assert lookup.find_users(sandbox.store, sandbox.workspace, external_id="ann") == []
    assert lookup.find_users(sandbox.store, sandbox.workspace, device_id="d1") == []
    assert len(lookup.find_users(sandbox.store, sandbox.workspace, external_id="bob")) == 1


def test_a_wrong_key_raises_the_library_error_with_braze_message(sandbox: Sandbox) -> None:
    """A fatal error's ``message`` reaches the library's exception, as with Braze.

    https://www.braze.com/docs/api/errors/
    """
    wrong = BrazeClient(api_key="not-a-key", api_url=sandbox.base_url)
    with pytest.raises(BrazeClientError, match="Unauthorized access"):
        wrong.user_delete(external_ids=["ann"])
