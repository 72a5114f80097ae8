"""Fuzzing the published OpenAPI document (schemathesis): no input makes a 500.

Each generated request is sent twice to the real server: as generated (so
mostly refused by the key checks) and with valid credentials swapped in, so
that body validation, matching and the store see the fuzzed data too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from cohortsync.braze.sandbox import Sandbox, running_sandbox

from .support import email, unique


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def fuzz_sandbox(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Sandbox]:
    if request.param == "sqlite":
        db_url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'braze.db'}"
    else:
        db_url = str(request.getfixturevalue("postgres_url"))
    with running_sandbox(
        db_url, workspace_name=unique("ws"), partner_api_key=unique("pk")
    ) as sandbox:
        sandbox.load_users(
            [{"external_id": "u1", "aliases": [email("a@x.io")]}, {"device_ids": ["d1"]}]
        )
        yield sandbox


def with_credentials(case: Any, sandbox: Sandbox) -> None:
    """Swap valid keys into a generated case, keeping everything else it fuzzed."""
    if case.path.startswith("/partners/"):
        case.path_parameters = {**(case.path_parameters or {}), "partner": sandbox.partner}
        if isinstance(case.body, dict):
            case.body = {
                **case.body,
                "partner_api_key": sandbox.partner_api_key,
                "client_secret": sandbox.data_import_key,
            }


def test_no_input_makes_a_server_error(fuzz_sandbox: Sandbox) -> None:
    api = schemathesis.openapi.from_url(f"{fuzz_sandbox.base_url}/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    # partner, users (track, alias, identify, delete, export), segments, campaigns, the outbox
    assert len(operations) == 14
    headers = {"Authorization": f"Bearer {fuzz_sandbox.rest_api_key}"}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
        def fuzz(case: Any) -> None:
            case.call_and_validate(checks=[not_a_server_error])
            with_credentials(case, fuzz_sandbox)
            case.call_and_validate(headers=headers, checks=[not_a_server_error])

        fuzz()
