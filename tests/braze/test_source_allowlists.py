"""Keys restricted to source addresses: refused from elsewhere as an unknown key is.

A real server on loopback; the clients bind their own source address
(127.0.0.1 or 127.0.0.2, both loopback on Linux), so the server sees a
real peer address, never a header. Each refused request is checked to
have written nothing: no cohort, no member, no profile.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cohortsync.braze import admin, messages
from cohortsync.braze.keys import key_fingerprint
from cohortsync.braze.sandbox import Sandbox, provision
from cohortsync.braze.server import serve_in_background
from cohortsync.braze.sources import allows, encode_sources, parse_sources
from cohortsync.braze.store import open_store
from cohortsync.errors import ConfigError
from support import run_cli

from .support import PARTNER

ALLOWED = "127.0.0.1"
OTHER = "127.0.0.2"
REST_REFUSAL = {
    "message": messages.UNAUTHORIZED,
    "errors": ["send the workspace's REST API key as 'Authorization: Bearer KEY'"],
}


@pytest.fixture
def from_address(sandbox: Sandbox) -> Iterator[dict[str, httpx.Client]]:
    """An HTTP client per source address, each bound to it."""
    clients = {
        address: httpx.Client(
            base_url=sandbox.base_url,
            transport=httpx.HTTPTransport(local_address=address),
            timeout=30,
        )
        for address in (ALLOWED, OTHER)
    }
    try:
        yield clients
    finally:
        for client in clients.values():
            client.close()


def cohort_body(sandbox: Sandbox, cohort_id: str, *user_ids: str, **extra: Any) -> dict[str, Any]:
    return {
        "partner_api_key": sandbox.partner_api_key,
        "client_secret": sandbox.data_import_key,
        "cohort_id": cohort_id,
        "cohort_changes": [{"user_ids": list(user_ids)}],
        **extra,
    }


def define_body(sandbox: Sandbox, cohort_id: str) -> dict[str, Any]:
    return {
        "partner_api_key": sandbox.partner_api_key,
        "client_secret": sandbox.data_import_key,
        "cohort_id": cohort_id,
        "name": cohort_id,
        "created_at": "2021-01-21T19:20:30+05:00",
    }


def change(client: httpx.Client, body: dict[str, Any]) -> httpx.Response:
    return client.post(f"/partners/{PARTNER}/cohorts/users", json=body)


def track(client: httpx.Client, sandbox: Sandbox, external_id: str) -> httpx.Response:
    return client.post(
        "/users/track",
        json={"attributes": [{"external_id": external_id, "plan": "gold"}]},
        headers={"Authorization": f"Bearer {sandbox.rest_api_key}"},
    )


def export_ids(client: httpx.Client, sandbox: Sandbox, *external_ids: str) -> httpx.Response:
    return client.post(
        "/users/export/ids",
        json={"external_ids": list(external_ids)},
        headers={"Authorization": f"Bearer {sandbox.rest_api_key}"},
    )


# ---------------------------------------------------------------- partner endpoints


def test_a_data_import_key_for_one_address_is_refused_from_another_and_nothing_is_written(
    sandbox: Sandbox, from_address: dict[str, httpx.Client]
) -> None:
    sandbox.load_users([{"external_id": "u1"}, {"external_id": "u2"}])
    admin.set_key_sources(sandbox.store, sandbox.data_import_key, [ALLOWED])

    unknown = change(
        from_address[ALLOWED], {**cohort_body(sandbox, "vip", "u1"), "client_secret": "x"}
    )
    refused = change(from_address[OTHER], cohort_body(sandbox, "vip", "u1"))
    assert refused.status_code == unknown.status_code == 401
    assert refused.json() == unknown.json() == {"message": messages.INVALID_CLIENT_SECRET}
    defined = from_address[OTHER].post(
        f"/partners/{PARTNER}/cohorts", json=define_body(sandbox, "vip")
    )
    assert defined.status_code == 401
    assert defined.json() == {"message": messages.INVALID_CLIENT_SECRET}
    assert sandbox.cohorts() == []

    accepted = change(from_address[ALLOWED], cohort_body(sandbox, "vip", "u1"))
    assert accepted.status_code == 200, accepted.text
    assert [m["external_id"] for m in sandbox.members("vip")] == ["u1"]
    [cohort] = sandbox.cohorts()
    assert cohort["identifiers"]["external_id"]["received"] == 1


def test_the_refusal_comes_before_the_body_shape_the_lock_and_the_write(
    sandbox: Sandbox, from_address: dict[str, httpx.Client]
) -> None:
    sandbox.load_users([{"external_id": "u1"}])
    change(from_address[OTHER], cohort_body(sandbox, "vip", "u1")).raise_for_status()
    sandbox.lock("vip")
    admin.set_key_sources(sandbox.store, sandbox.data_import_key, [ALLOWED])
    # A bad shape (400 from an allowed source) and a locked cohort (423) are still 401 here.
    bad_shape = {**cohort_body(sandbox, "vip"), "cohort_changes": "nope"}
    assert change(from_address[ALLOWED], bad_shape).status_code == 400
    assert change(from_address[OTHER], bad_shape).status_code == 401
    assert change(from_address[ALLOWED], cohort_body(sandbox, "vip", "u1")).status_code == 423
    assert change(from_address[OTHER], cohort_body(sandbox, "vip", "u1")).status_code == 401
    [cohort] = sandbox.cohorts()
    assert cohort["identifiers"]["external_id"]["received"] == 1


def test_a_cidr_range_allows_every_address_in_it(
    sandbox: Sandbox, from_address: dict[str, httpx.Client]
) -> None:
    sandbox.load_users([{"external_id": "u1"}, {"external_id": "u2"}])
    admin.set_key_sources(sandbox.store, sandbox.data_import_key, ["127.0.0.0/8"])
    assert change(from_address[ALLOWED], cohort_body(sandbox, "vip", "u1")).status_code == 200
    assert change(from_address[OTHER], cohort_body(sandbox, "vip", "u2")).status_code == 200
    assert [m["external_id"] for m in sandbox.members("vip")] == ["u1", "u2"]


def test_a_key_without_allowlist_accepts_any_source_and_a_change_applies_at_once(
    sandbox: Sandbox, from_address: dict[str, httpx.Client]
) -> None:
    sandbox.load_users([{"external_id": "u1"}])
    assert change(from_address[OTHER], cohort_body(sandbox, "vip", "u1")).status_code == 200
    admin.set_key_sources(sandbox.store, key_fingerprint(sandbox.data_import_key), ["10.0.0.0/8"])
    assert change(from_address[OTHER], cohort_body(sandbox, "vip", "u1")).status_code == 401
    assert change(from_address[ALLOWED], cohort_body(sandbox, "vip", "u1")).status_code == 401
    admin.set_key_sources(sandbox.store, sandbox.data_import_key, None)
    assert change(from_address[OTHER], cohort_body(sandbox, "vip", "u1")).status_code == 200


def test_another_key_of_the_workspace_keeps_its_own_allowlist(
    sandbox: Sandbox, from_address: dict[str, httpx.Client]
) -> None:
    sandbox.load_users([{"external_id": "u1"}])
    restricted = admin.generate_key(sandbox.store, workspace=sandbox.workspace, allow=[ALLOWED])[
        "data_import_key"
    ]
    body = {**cohort_body(sandbox, "vip", "u1"), "client_secret": restricted}
    assert change(from_address[OTHER], body).status_code == 401
    assert change(from_address[OTHER], cohort_body(sandbox, "vip", "u1")).status_code == 200


# ---------------------------------------------------------------- REST endpoints


def test_a_rest_api_key_for_one_address_is_refused_from_another_and_nothing_is_written(
    sandbox: Sandbox, from_address: dict[str, httpx.Client]
) -> None:
    admin.set_key_sources(sandbox.store, sandbox.rest_api_key, [ALLOWED])
    refused = track(from_address[OTHER], sandbox, "new-user")
    assert refused.status_code == 401
    assert refused.json() == REST_REFUSAL
    unknown = from_address[ALLOWED].post(
        "/users/track",
        json={"attributes": [{"external_id": "new-user"}]},
        headers={"Authorization": "Bearer not-a-key"},
    )
    assert unknown.json() == refused.json()
    assert export_ids(from_address[OTHER], sandbox, "new-user").status_code == 401
    listed = from_address[OTHER].get(
        "/segments/list", headers={"Authorization": f"Bearer {sandbox.rest_api_key}"}
    )
    assert listed.status_code == 401 and listed.json() == REST_REFUSAL
    assert export_ids(from_address[ALLOWED], sandbox, "new-user").json()["users"] == []

    accepted = track(from_address[ALLOWED], sandbox, "new-user")
    assert accepted.status_code == 200, accepted.text
    [user] = export_ids(from_address[ALLOWED], sandbox, "new-user").json()["users"]
    assert user["custom_attributes"] == {"plan": "gold"}


def test_a_rest_api_key_allowed_for_a_range_answers_both_addresses(
    sandbox: Sandbox, from_address: dict[str, httpx.Client]
) -> None:
    admin.set_key_sources(sandbox.store, key_fingerprint(sandbox.rest_api_key), ["127.0.0.0/8"])
    assert track(from_address[ALLOWED], sandbox, "a").status_code == 200
    assert track(from_address[OTHER], sandbox, "b").status_code == 200
    users = export_ids(from_address[OTHER], sandbox, "a", "b").json()["users"]
    assert sorted(u["external_id"] for u in users) == ["a", "b"]


def test_a_rest_api_key_restricted_leaves_the_data_import_keys_alone(
    sandbox: Sandbox, from_address: dict[str, httpx.Client]
) -> None:
    sandbox.load_users([{"external_id": "u1"}])
    admin.set_key_sources(sandbox.store, sandbox.rest_api_key, [ALLOWED])
    assert change(from_address[OTHER], cohort_body(sandbox, "vip", "u1")).status_code == 200
    assert track(from_address[OTHER], sandbox, "u1").status_code == 401


# ---------------------------------------------------------------- IPv6 peers


def served_on(tmp_path: Path, host: str) -> Any:
    """A provisioned store and the server listening on ``host`` over it."""
    db_url = f"sqlite:///{tmp_path / 'braze.db'}"
    store = open_store(db_url)
    sandbox = provision(store, workspace_name="v6")
    sandbox.load_users([{"external_id": "u1"}])
    return store, sandbox, serve_in_background(db_url, host=host)


def test_ipv6_peers_are_checked_against_ipv6_entries(tmp_path: Path) -> None:
    store, sandbox, serving = served_on(tmp_path, "::1")
    try:
        with serving as url:
            sandbox.base_url = url
            with httpx.Client(base_url=url, timeout=30) as client:
                admin.set_key_sources(store, sandbox.data_import_key, ["127.0.0.1"])
                assert change(client, cohort_body(sandbox, "vip", "u1")).status_code == 401
                admin.set_key_sources(store, sandbox.data_import_key, ["::1"])
                assert change(client, cohort_body(sandbox, "vip", "u1")).status_code == 200
                admin.set_key_sources(store, sandbox.rest_api_key, ["fd00::/8"])
                assert track(client, sandbox, "u1").status_code == 401
                admin.set_key_sources(store, sandbox.rest_api_key, ["::/0"])
                assert track(client, sandbox, "u1").status_code == 200
    finally:
        store.close()


def test_an_ipv4_client_of_an_ipv6_socket_counts_as_its_ipv4_address(tmp_path: Path) -> None:
    # The socket is IPv6; the client's IPv4 address reaches the service as ::ffff:127.0.0.1.
    store, sandbox, serving = served_on(tmp_path, "::ffff:127.0.0.1")
    try:
        with serving as url:
            port = url.rsplit(":", 1)[1]
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
                admin.set_key_sources(store, sandbox.data_import_key, ["127.0.0.2"])
                assert change(client, cohort_body(sandbox, "vip", "u1")).status_code == 401
                admin.set_key_sources(store, sandbox.data_import_key, ["127.0.0.1"])
                assert change(client, cohort_body(sandbox, "vip", "u1")).status_code == 200
        assert [m["external_id"] for m in sandbox.members("vip")] == ["u1"]
    finally:
        store.close()


# ---------------------------------------------------------------- the rules and the commands


def test_allowlists_read_ipv4_ipv6_and_cidr_and_refuse_what_is_not_an_address() -> None:
    assert parse_sources(["10.0.0.0/8", " 127.0.0.1", "::1", "fd00::/8", "10.0.0.0/8"]) == [
        "10.0.0.0/8",
        "127.0.0.1/32",
        "::1/128",
        "fd00::/8",
    ]
    for bad in ("10.0.0.1/8", "nope", "300.1.1.1", "::1/129", ""):
        with pytest.raises(ConfigError, match="cannot read the allowed source"):
            parse_sources([bad])
    stored = encode_sources(["10.0.0.0/8", "fd00::/8"])
    assert allows(stored, "10.1.2.3") and allows(stored, "fd00::1")
    assert allows(stored, "::ffff:10.1.2.3")  # IPv4 seen through a dual-stack socket
    assert not allows(stored, "11.0.0.1") and not allows(stored, "fe80::1")
    assert not allows(stored, None) and not allows(stored, "testclient")
    assert allows(None, None) and allows(None, "11.0.0.1")


def test_the_commands_set_show_and_clear_allowlists(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'braze.db'}"
    workspace = json.loads(
        run_cli("braze", "workspace", "create", "demo", "--allow", "127.0.0.1", "--db", db).stdout
    )
    assert workspace["allowed_sources"] == ["127.0.0.1/32"]
    run_cli("braze", "partner", "create", "treasuredata", "--api-key", "pk", "--db", db)
    made = json.loads(
        run_cli(
            "braze", "key", "generate", "-w", "demo", "--allow", "10.0.0.0/8",
            "--allow", "fd00::/8", "--db", db,
        ).stdout
    )  # fmt: skip
    assert made["allowed_sources"] == ["10.0.0.0/8", "fd00::/8"]

    bad = run_cli(
        "braze", "key", "generate", "-w", "demo", "--allow", "10.0.0.1/8", "--db", db, expect=2
    )
    assert "cannot read the allowed source '10.0.0.1/8'" in bad.stderr
    assert "Traceback" not in bad.stderr

    listed = json.loads(run_cli("braze", "key", "list", "-w", "demo", "--json", "--db", db).stdout)
    assert [(k["type"], k["allowed_sources"]) for k in listed] == [
        ("rest_api_key", ["127.0.0.1/32"]),
        ("data_import_key", ["10.0.0.0/8", "fd00::/8"]),
    ]
    assert listed[1]["fingerprint"] == key_fingerprint(made["data_import_key"])
    assert listed[1]["partner"] == "treasuredata"
    assert made["data_import_key"] not in json.dumps(listed)
    assert workspace["rest_api_key"] not in json.dumps(listed)
    text = run_cli("braze", "key", "list", "-w", "demo", "--db", db).stdout
    assert (
        f"{listed[1]['fingerprint']}  treasuredata key  active  sources: 10.0.0.0/8, fd00::/8"
        in text
    )

    cleared = json.loads(
        run_cli("braze", "key", "allow", listed[1]["fingerprint"], "--clear", "--db", db).stdout
    )
    assert cleared["allowed_sources"] is None and cleared["type"] == "data_import_key"
    again = json.loads(
        run_cli(
            "braze", "key", "allow", workspace["rest_api_key"], "--allow", "::1", "--db", db
        ).stdout
    )
    assert again == {
        "type": "rest_api_key",
        "fingerprint": listed[0]["fingerprint"],
        "workspace": workspace["id"],
        "allowed_sources": ["::1/128"],
    }
    text = run_cli("braze", "key", "list", "-w", "demo", "--db", db).stdout
    assert "REST API key  active  sources: ::1/128" in text
    assert "treasuredata key  active  sources: any" in text

    neither = run_cli("braze", "key", "allow", listed[0]["fingerprint"], "--db", db, expect=2)
    assert "either --allow" in neither.stderr
    both = run_cli(
        "braze", "key", "allow", listed[0]["fingerprint"], "--clear", "--allow", "::1", "--db", db,
        expect=2,
    )  # fmt: skip
    assert "either --allow" in both.stderr
    unknown = run_cli("braze", "key", "allow", "0123456789ab", "--clear", "--db", db, expect=2)
    assert "no such data import key or REST API key" in unknown.stderr
