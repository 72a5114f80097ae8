"""`cohortsync braze users find` through the real executable.

A workspace with an identified user (alias, device, attributes, a cohort, a
segment, a message received) and an anonymous one, beside another workspace
whose user must never be found from the first.
"""

from __future__ import annotations

import json
from pathlib import Path

from cohortsync.braze import admin, campaigns
from cohortsync.braze.profiles import rest_operations
from cohortsync.braze.sandbox import provision
from cohortsync.braze.store import open_store
from support import run_cli


def test_find_a_user_by_each_identifier_and_print_the_profile(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'braze.db'}"
    store = open_store(db_url)
    try:
        acme = provision(store, workspace_name="acme")
        globex = provision(store, workspace_name="globex")
        acme.load_users(
            [
                {
                    "external_id": "ada",
                    "aliases": [{"alias_label": "email", "alias_name": "ada@x.io"}],
                    "device_ids": ["ios-ada"],
                },
                {"device_ids": ["kiosk"]},
            ]
        )
        globex.load_users([{"external_id": "gx", "device_ids": ["gx-phone"]}])
        tracked = rest_operations.TrackedUser("ada", None, False, {"plan": "gold", "vip": True})
        assert rest_operations.track_users(store, acme.workspace, [tracked]) == []
        admin.create_segment(store, "Identified", workspace="acme", external_id=True)
        campaigns.create_campaign(
            store,
            "Hello",
            workspace="acme",
            channel="email",
            message="Hi {{${plan}}} member",
            segments=["Identified"],
        )
        campaigns.launch_campaign(store, "Hello", workspace="acme")
    finally:
        store.close()

    def find(*args: str, expect: int = 0) -> str:
        result = run_cli(
            "braze", "users", "find", "-w", "acme", *args, "--db", db_url,
            home=tmp_path, expect=expect,
        )  # fmt: skip
        return result.stdout if expect != 2 else result.stderr

    by_id = find("--external-id", "ada")
    assert by_id.startswith("ada (braze id ") and "aliases: email:ada@x.io" in by_id
    assert "device ids: ios-ada" in by_id
    assert find("--alias-label", "email", "--alias-name", "ada@x.io") == by_id
    assert find("--device-id", "ios-ada") == by_id
    [anonymous] = json.loads(find("--device-id", "kiosk", "--json"))
    assert anonymous["anonymous"] is True and anonymous["device_ids"] == ["kiosk"]

    profile = find("--external-id", "ada", "--profile")
    assert '    plan: "gold"' in profile and "    vip: true" in profile
    assert "segments: Identified" in profile and "cohorts: none" in profile
    assert "'Hello' by email: Hi gold member" in profile
    [document] = json.loads(find("--external-id", "ada", "--profile", "--json"))
    assert document["attributes"] == {"plan": "gold", "vip": True}
    assert document["messages"][0]["message"] == "Hi gold member"

    # Another workspace's user is never found; nobody found exits 1.
    missing = find("--external-id", "gx", expect=1)
    assert missing.strip() == "no user with external id 'gx' in workspace acme"
    assert json.loads(find("--device-id", "gx-phone", "--json", expect=1)) == []
    half = find("--alias-label", "email", expect=2)
    assert "needs both --alias-label and --alias-name" in half and "Traceback" not in half
    two = find("--external-id", "ada", "--device-id", "ios-ada", expect=2)
    assert "a user lookup takes one identifier, not 2" in two
