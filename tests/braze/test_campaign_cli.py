"""`cohortsync braze campaign|canvas` through the real executable.

A workspace with three users (one without first name, one anonymous), a
segment of the identified ones, then a campaign and a Canvas created,
launched and read back from the outbox as a person at a terminal does.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from cohortsync.braze.server import serve_in_background
from support import run_cli

USERS = [{"external_id": "ana"}, {"external_id": "bo"}, {"device_ids": ["anonymous-device"]}]


def set_first_name(db_url: str, rest_api_key: str, external_id: str, first_name: str) -> None:
    """Give a profile its first name as Braze users get one: POST /users/track."""
    with serve_in_background(db_url) as url:
        answer = httpx.post(
            f"{url}/users/track",
            headers={"Authorization": f"Bearer {rest_api_key}"},
            json={"attributes": [{"external_id": external_id, "first_name": first_name}]},
        )
        assert answer.json() == {"attributes_processed": 1, "message": "success"}


def test_a_campaign_and_a_canvas_from_create_to_the_outbox(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'braze.db'}"
    db = ("--db", db_url)

    def cli(*args: str, expect: int = 0) -> str:
        result = run_cli("braze", *args, *db, home=tmp_path, expect=expect)
        return result.stdout if expect == 0 else result.stderr

    workspace = json.loads(cli("workspace", "create", "acme"))
    users = tmp_path / "users.ndjson"
    users.write_text("".join(json.dumps(user) + "\n" for user in USERS))
    cli("users", "load", str(users), "--workspace", "acme")
    set_first_name(db_url, workspace["rest_api_key"], "ana", "Ana")
    cli("segment", "create", "identified", "--workspace", "acme", "--external-id", "present")

    made = json.loads(
        cli("campaign", "create", "welcome", "-w", "acme", "--channel", "email",
            "--message", "Hi {{${first_name} | default: 'there'}}!", "--segment", "identified",
            "--json")
    )  # fmt: skip
    assert made["status"] == "draft" and made["steps"][0]["channel"] == "email"
    launched = json.loads(cli("campaign", "launch", "welcome", "-w", "acme", "--json"))
    assert launched["messages"] == 2
    sends = json.loads(cli("campaign", "sends", "welcome", "-w", "acme", "--json"))
    assert sorted((s["external_id"], s["message"]) for s in sends["sends"]) == [
        ("ana", "Hi Ana!"),
        ("bo", "Hi there!"),
    ]
    again = cli("campaign", "launch", "welcome", "-w", "acme", expect=2)
    assert again.startswith("error: ") and "Traceback" not in again

    cli("segment", "create", "anonymous", "--workspace", "acme", "--external-id", "absent")
    cli("canvas", "create", "onboarding", "-w", "acme", "--segment", "identified",
        "--segment", "anonymous",
        "--step", "hello|push|Welcome {{${first_name}}}",
        "--step", "follow up|email|Still there?|identified")  # fmt: skip
    canvas = json.loads(cli("canvas", "launch", "onboarding", "-w", "acme", "--json"))
    assert [step["messages"] for step in canvas["by_step"]] == [3, 2]

    bad = cli("campaign", "create", "broken", "-w", "acme", "--channel", "sms",
              "--message", "x", "--segment", "identified", expect=2)  # fmt: skip
    assert "sms" in bad and "Traceback" not in bad
    missing = cli("campaign", "create", "nobody", "-w", "acme", "--channel", "push",
                  "--message", "x", "--segment", "no-such-segment", expect=2)  # fmt: skip
    assert "no-such-segment" in missing
    listed = json.loads(cli("campaign", "list", "-w", "acme", "--json"))
    assert [c["name"] for c in listed] == ["welcome"]  # the refused ones were not saved
