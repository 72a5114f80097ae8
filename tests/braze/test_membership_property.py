"""Random sequences of adds and removes, checked against a model of the matching rules."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cohortsync.braze.sandbox import Sandbox, running_sandbox

from .support import PartnerClient, email, unique

# The population: identified users (external id, alias, maybe a device), anonymous
# users with a device and maybe an alias, and identifiers that match nobody.
IDENTIFIED = {
    f"id{i}": {"alias": f"id{i}@x.io", "device": f"idev{i}" if i % 2 else None} for i in range(4)
}
ANONYMOUS = {
    f"anon{i}": {"alias": f"anon{i}@x.io" if i % 2 else None, "device": f"adev{i}"}
    for i in range(3)
}


def population() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for ext, ids in IDENTIFIED.items():
        row: dict[str, Any] = {"external_id": ext, "aliases": [email(ids["alias"])]}
        if ids["device"]:
            row["device_ids"] = [ids["device"]]
        rows.append(row)
    for ids in ANONYMOUS.values():
        row = {"device_ids": [ids["device"]]}
        if ids["alias"]:
            row["aliases"] = [email(ids["alias"])]
        rows.append(row)
    return rows


# Every identifier a request may carry, with the person it names under Braze's
# rules (None: nobody, e.g. a device id of an identified user or an unknown id).
IDENTIFIERS: list[tuple[str, str, str | None]] = [
    *(("user_ids", ext, ext) for ext in IDENTIFIED),
    ("user_ids", "ghost", None),
    *(("aliases", ids["alias"], ext) for ext, ids in IDENTIFIED.items()),
    *(("aliases", ids["alias"], key) for key, ids in ANONYMOUS.items() if ids["alias"]),
    ("aliases", "ghost@x.io", None),
    *(("device_ids", ids["device"], None) for ids in IDENTIFIED.values() if ids["device"]),
    *(("device_ids", ids["device"], key) for key, ids in ANONYMOUS.items()),
    ("device_ids", "ghost-device", None),
]

change = st.tuples(st.lists(st.sampled_from(IDENTIFIERS), max_size=6), st.booleans())
request = st.lists(change, min_size=1, max_size=3)


def body_of(identifiers: list[tuple[str, str, str | None]], remove: bool) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for kind, value, _ in identifiers:
        body.setdefault(kind, []).append(email(value) if kind == "aliases" else value)
    if not body:
        body["user_ids"] = []
    if remove:
        body["should_remove"] = True
    return body


def person_of(member: dict[str, Any]) -> str:
    if member["external_id"]:
        return str(member["external_id"])
    device = member["device_ids"][0]
    return next(key for key, ids in ANONYMOUS.items() if ids["device"] == device)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def loaded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Sandbox]:
    if request.param == "sqlite":
        db_url = f"sqlite:///{tmp_path_factory.mktemp('property') / 'braze.db'}"
    else:
        db_url = str(request.getfixturevalue("postgres_url"))
    with running_sandbox(
        db_url, workspace_name=unique("ws"), partner_api_key=unique("pk")
    ) as sandbox:
        sandbox.load_users(population())
        yield sandbox


cohort_numbers = itertools.count()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(requests=st.lists(request, min_size=1, max_size=5))
def test_membership_follows_the_model(
    loaded: Sandbox, requests: list[list[tuple[list[tuple[str, str, str | None]], bool]]]
) -> None:
    client = PartnerClient(loaded)
    cohort_id = f"prop-{next(cohort_numbers)}"
    model: set[str] = set()
    received = matched = 0
    for changes in requests:
        response = client.change(cohort_id, *(body_of(ids, remove) for ids, remove in changes))
        assert response.status_code == 200, response.text
        for identifiers, remove in changes:
            for _, _, person in identifiers:
                received += 1
                if person is None:
                    continue
                matched += 1
                if remove:
                    model.discard(person)
                else:
                    model.add(person)
    if not received:
        assert cohort_id not in {c["cohort_id"] for c in loaded.cohorts()}
        return
    assert sorted(person_of(m) for m in loaded.members(cohort_id)) == sorted(model)
    [cohort] = [c for c in loaded.cohorts() if c["cohort_id"] == cohort_id]
    assert sum(c["received"] for c in cohort["identifiers"].values()) == received
    assert sum(c["matched"] for c in cohort["identifiers"].values()) == matched
    assert cohort["size"] == len(model)
