"""``cohortsync auth create --type rest-attribute``: a REST API key, checked, saved, shown.

The check is a real ``POST /users/track`` to a local server that follows
Braze's documentation of the endpoint
(https://www.braze.com/docs/api/endpoints/user_data/post_user_track/).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from export.conftest import CliRunner
from export.track_server import REST_API_KEY, TrackServer


@pytest.fixture
def track(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TrackServer]:
    monkeypatch.setenv("COHORTSYNC_REST_API_KEY", REST_API_KEY)
    server = TrackServer().start()
    yield server
    server.stop()


def create(cli: CliRunner, track: TrackServer, name: str = "rest", *extra: str, **kw: str):
    return cli(
        "auth", "create", name, "--type", "rest-attribute", "--endpoint", track.url, *extra, **kw
    )


def test_the_key_is_checked_by_an_update_only_track_then_saved_encrypted(
    track: TrackServer, cli: CliRunner, home: Path
) -> None:
    result = create(cli, track, "rest", "--json")
    assert result.returncode == 0, result.stderr
    (check,) = track.requests
    assert check.path == "/users/track" and check.status == 201
    assert check.headers["Authorization"] == f"Bearer {REST_API_KEY}"
    (item,) = check.body["attributes"]
    assert item["_update_existing_only"] is True and "external_id" in item
    assert track.profiles == {}  # nobody created
    saved = json.loads(result.stdout)
    assert saved["type"] == "rest-attribute"
    assert saved["rest_api_key"] == "****" + REST_API_KEY[-4:]
    assert REST_API_KEY.encode() not in (home / "catalog.db").read_bytes()

    (listed,) = json.loads(cli("auth", "list", "--json").stdout)
    assert listed["type"] == "rest-attribute" and listed["endpoint"] == track.url
    human = cli("auth", "list").stdout
    assert "rest-attribute" in human and REST_API_KEY not in human
    shown = cli("auth", "show", "rest")
    assert shown.returncode == 0
    assert "rest-attribute" in shown.stdout and "REST API key" in shown.stdout
    assert "****" + REST_API_KEY[-4:] in shown.stdout and REST_API_KEY not in shown.stdout


def test_the_key_from_stdin(track: TrackServer, cli: CliRunner, monkeypatch) -> None:
    monkeypatch.delenv("COHORTSYNC_REST_API_KEY")
    result = create(cli, track, "rest", "--rest-api-key", "-", stdin=REST_API_KEY + "\n")
    assert result.returncode == 0, result.stderr
    missing = create(cli, track, "other")
    assert missing.returncode == 2 and "no REST API key given" in missing.stderr
    literal = create(cli, track, "other", "--rest-api-key", REST_API_KEY)
    assert literal.returncode == 2 and "not the key itself" in literal.stderr


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_is_not_saved_and_the_hint_names_users_track(
    track: TrackServer, cli: CliRunner, status: int
) -> None:
    track.script(status, "Invalid API key: the key lacks a permission")
    result = create(cli, track)
    assert result.returncode == 4
    assert f"HTTP {status} Invalid API key: the key lacks a permission" in result.stderr
    assert "users.track permission" in result.stderr
    assert json.loads(cli("auth", "list", "--json").stdout) == []


def test_a_wrong_key_is_refused_by_the_server(
    track: TrackServer, cli: CliRunner, monkeypatch
) -> None:
    monkeypatch.setenv("COHORTSYNC_REST_API_KEY", "rest-wrong-0000000000")
    result = create(cli, track)
    assert result.returncode == 4 and "HTTP 401" in result.stderr
    assert "rest-wrong-0000000000" not in result.stderr
    assert json.loads(cli("auth", "list", "--json").stdout) == []


def test_partner_options_are_refused_with_the_rest_type(track: TrackServer, cli: CliRunner) -> None:
    result = create(cli, track, "rest", "--partner", "acme")
    assert result.returncode == 2 and "belong to --type partner-cohort" in result.stderr
    other = cli("auth", "create", "p", "--endpoint", track.url, "--rest-api-key", "-")
    assert other.returncode == 2 and "belongs to --type rest-attribute" in other.stderr
    assert track.requests == []


def test_update_rotates_the_rest_api_key_from_the_environment(
    track: TrackServer, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert create(cli, track).returncode == 0
    rotated = "rest-test-rotated-9876543210"
    track.rest_api_key = rotated  # Braze: a new REST API key with users.track
    monkeypatch.setenv("COHORTSYNC_REST_API_KEY", rotated)
    updated = cli("auth", "update", "rest", "--json")
    assert updated.returncode == 0, updated.stderr
    assert json.loads(updated.stdout)["rest_api_key"] == "****" + rotated[-4:]
    assert track.requests[-1].headers["Authorization"] == f"Bearer {rotated}"
    partner_option = cli("auth", "update", "rest", "--data-import-key", "-", stdin="x\n")
    assert partner_option.returncode == 2
    assert "belong to partner-cohort authentications" in partner_option.stderr
