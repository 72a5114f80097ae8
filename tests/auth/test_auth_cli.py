"""``cohortsync auth``: credentials checked before saving, encrypted at rest, never shown."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from export.conftest import CliRunner
from export.partner_server import CLIENT_SECRET, PartnerServer
from support import unused_port


def create(
    cli: CliRunner,
    partner: PartnerServer,
    name: str = "prod",
    *extra: str,
    key: str = CLIENT_SECRET,
):
    return cli("auth", "create", name, "--endpoint", partner.url, "--data-import-key", key, *extra)


def test_create_checks_with_an_empty_change_then_saves_encrypted(
    partner: PartnerServer, cli: CliRunner, home: Path
) -> None:
    result = create(cli, partner, "prod", "--json")
    assert result.returncode == 0, result.stderr
    (check,) = partner.requests
    assert check.path == "/partners/treasuredata/cohorts/users"
    assert check.body["cohort_changes"] == []
    assert check.body["client_secret"] == CLIENT_SECRET
    assert check.body["partner_api_key"] == partner.partner_api_key
    saved = json.loads(result.stdout)
    assert saved["name"] == "prod" and saved["data_import_key"] == "****" + CLIENT_SECRET[-4:]

    key_file = home / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert CLIENT_SECRET.encode() not in (home / "catalog.db").read_bytes()

    listed = cli("auth", "list", "--json")
    assert listed.returncode == 0
    (entry,) = json.loads(listed.stdout)
    assert entry["endpoint"] == partner.url and entry["partner"] == "treasuredata"
    assert entry["data_import_key"] == "****" + CLIENT_SECRET[-4:]
    human = cli("auth", "list")
    assert "prod" in human.stdout and CLIENT_SECRET not in human.stdout


def test_refused_credentials_are_not_saved(partner: PartnerServer, cli: CliRunner) -> None:
    result = create(cli, partner, "prod", key="dik-wrong-000000000000")
    assert result.returncode == 4
    assert "HTTP 401 Partner not enabled for client with client secret" in result.stderr
    assert "dik-wrong-000000000000" not in result.stderr
    assert json.loads(cli("auth", "list", "--json").stdout) == []


def test_unreachable_endpoint_is_not_saved(
    home: Path, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COHORTSYNC_PARTNER_API_KEY", "pk-test")
    with unused_port() as port:  # refused while the command runs: nothing can listen there
        result = cli(
            "auth", "create", "prod", "--endpoint", f"http://127.0.0.1:{port}",
            "--data-import-key", CLIENT_SECRET,
        )  # fmt: skip
    assert result.returncode == 2
    assert f"the endpoint http://127.0.0.1:{port} is unreachable" in result.stderr
    assert json.loads(cli("auth", "list", "--json").stdout) == []


def test_key_from_stdin_or_environment(
    partner: PartnerServer, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    from_stdin = cli(
        "auth", "create", "a", "--endpoint", partner.url, "--data-import-key", "-",
        stdin=CLIENT_SECRET + "\n",
    )  # fmt: skip
    assert from_stdin.returncode == 0, from_stdin.stderr
    monkeypatch.setenv("COHORTSYNC_DATA_IMPORT_KEY", CLIENT_SECRET)
    from_env = cli("auth", "create", "b", "--endpoint", partner.url)
    assert from_env.returncode == 0, from_env.stderr
    assert [r.body["client_secret"] for r in partner.requests] == [CLIENT_SECRET] * 2


def test_duplicate_name_and_delete(partner: PartnerServer, cli: CliRunner) -> None:
    assert create(cli, partner).returncode == 0
    again = create(cli, partner)
    assert again.returncode == 2 and "exists already" in again.stderr
    assert len(partner.requests) == 1  # refused before checking again
    deleted = cli("auth", "delete", "prod")
    assert deleted.returncode == 0 and "deleted" in deleted.stdout
    missing = cli("auth", "delete", "prod")
    assert missing.returncode == 2 and "no authentication named 'prod'" in missing.stderr


def test_export_with_a_saved_auth(
    partner: PartnerServer, cli: CliRunner, warehouse: Callable[[str], None]
) -> None:
    assert create(cli, partner).returncode == 0
    warehouse("CREATE TABLE t AS SELECT 'u' || i AS user_ids FROM range(5) r(i)")
    result = cli("export", "--auth", "prod", "--table", "t", "--cohort-id", "c", "--json")
    assert result.returncode == 0, result.stderr
    assert sorted(v for _, v, _ in partner.identifiers()) == [f"u{i}" for i in range(5)]
    unknown = cli("export", "--auth", "nope", "--table", "t", "--cohort-id", "c")
    assert unknown.returncode == 2 and "no authentication named 'nope'" in unknown.stderr


def test_a_key_file_readable_by_others_is_refused(
    partner: PartnerServer, cli: CliRunner, home: Path
) -> None:
    assert create(cli, partner).returncode == 0
    os.chmod(home / "secret.key", 0o644)
    result = cli("export", "--auth", "prod", "--table", "t", "--cohort-id", "c")
    assert result.returncode == 2
    assert "has mode 0644, readable by others" in result.stderr
    assert "chmod 600" in result.stderr


def test_help_teaches(cli: CliRunner, home: Path) -> None:
    result = cli("auth", "create", "--help")
    assert result.returncode == 0
    assert "COHORTSYNC_DATA_IMPORT_KEY" in result.stdout and "cohort_changes" in result.stdout


def test_the_partner_key_comes_from_the_endpoint_region(
    partner: PartnerServer, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COHORTSYNC_PARTNER_API_KEY")
    monkeypatch.setenv("COHORTSYNC_PARTNER_API_KEY_EU", "pk-eu-only")
    missing = create(cli, partner)
    assert missing.returncode == 2  # 127.0.0.1 is not an EU host: the EU key does not apply
    assert "no partner API key for the US region" in missing.stderr
    assert partner.requests == []
    monkeypatch.setenv("COHORTSYNC_PARTNER_API_KEY_US", partner.partner_api_key)
    assert create(cli, partner).returncode == 0
    assert partner.requests[0].body["partner_api_key"] == partner.partner_api_key


def test_update_rotates_the_key_in_place_once_the_endpoint_accepts_it(
    partner: PartnerServer, cli: CliRunner, home: Path, warehouse: Callable[[str], None]
) -> None:
    """The rotation without a gap: the saved key works until the new one is checked."""
    assert create(cli, partner).returncode == 0
    warehouse("CREATE TABLE t AS SELECT 'u' || i AS user_ids FROM range(5) r(i)")
    new_key = "dik-test-rotated-00000000"
    partner.client_secret = new_key  # Braze: the new key made, the old one invalidated

    refused = cli("auth", "update", "prod", "--data-import-key", "-", stdin="dik-wrong-1111\n")
    assert refused.returncode == 4, refused.stderr
    assert "dik-wrong-1111" not in refused.stderr and "Traceback" not in refused.stderr
    listed = json.loads(cli("auth", "list", "--json").stdout)
    assert listed[0]["data_import_key"] == "****" + CLIENT_SECRET[-4:]  # the saved key is kept

    updated = cli("auth", "update", "prod", "--data-import-key", "-", "--json", stdin=new_key)
    assert updated.returncode == 0, updated.stderr
    shown = json.loads(updated.stdout)
    assert shown["changed"] is True and shown["data_import_key"] == "****" + new_key[-4:]
    assert partner.requests[-1].body["client_secret"] == new_key  # checked before saving
    assert new_key.encode() not in (home / "catalog.db").read_bytes()

    exported = cli("export", "--auth", "prod", "--table", "t", "--cohort-id", "c")
    assert exported.returncode == 0, exported.stderr
    assert partner.requests[-1].body["client_secret"] == new_key

    again = cli("auth", "update", "prod", "--data-import-key", new_key)
    assert again.returncode == 0 and "already had that endpoint, partner and key" in again.stdout


def test_update_refuses_what_it_cannot_change(
    partner: PartnerServer, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert create(cli, partner).returncode == 0
    before = len(partner.requests)
    monkeypatch.delenv("COHORTSYNC_DATA_IMPORT_KEY", raising=False)
    nothing = cli("auth", "update", "prod")
    assert (
        nothing.returncode == 2 and "nothing to change in authentication 'prod'" in nothing.stderr
    )
    other_type = cli("auth", "update", "prod", "--rest-api-key", "rk-1")
    assert other_type.returncode == 2
    assert "--rest-api-key belongs to rest-attribute authentications" in other_type.stderr
    unknown = cli("auth", "update", "nope", "--data-import-key", CLIENT_SECRET)
    assert unknown.returncode == 2 and "no authentication named 'nope'" in unknown.stderr
    assert len(partner.requests) == before  # refused before any request


def saved_tokens(home: Path) -> dict[str, bytes]:
    import sqlite3

    with sqlite3.connect(home / "catalog.db") as catalog:
        return dict(catalog.execute("SELECT name, encrypted_key FROM auths").fetchall())


def test_rekey_re_encrypts_every_saved_key_and_retires_the_old_secret_key(
    partner: PartnerServer, cli: CliRunner, home: Path, warehouse: Callable[[str], None]
) -> None:
    from cryptography.fernet import Fernet, InvalidToken

    assert create(cli, partner, "a").returncode == 0
    assert create(cli, partner, "b").returncode == 0
    old_key = (home / "secret.key").read_bytes().strip()
    before = saved_tokens(home)

    done = cli("auth", "rekey", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["re_encrypted"] == 2
    key_file = home / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    [new_key] = key_file.read_bytes().split()
    assert new_key != old_key
    after = saved_tokens(home)
    assert after.keys() == before.keys() and all(after[n] != before[n] for n in after)
    for token in after.values():
        assert Fernet(new_key).decrypt(token) == CLIENT_SECRET.encode()
        with pytest.raises(InvalidToken):
            Fernet(old_key).decrypt(token)  # a copy of the old key file reads nothing now

    warehouse("CREATE TABLE t AS SELECT 'u' || i AS user_ids FROM range(3) r(i)")
    exported = cli("export", "--auth", "b", "--table", "t", "--cohort-id", "c")
    assert exported.returncode == 0, exported.stderr
    assert partner.requests[-1].body["client_secret"] == CLIENT_SECRET


def test_a_rekey_stopped_after_its_first_step_leaves_every_key_readable_and_runs_again(
    partner: PartnerServer, cli: CliRunner, home: Path
) -> None:
    from cohortsync.secrets import add_new_key

    assert create(cli, partner, "a").returncode == 0
    add_new_key(home)  # the key file as a rekey leaves it when stopped after its first step
    assert len((home / "secret.key").read_bytes().split()) == 2
    shown = cli("auth", "list", "--json")
    assert shown.returncode == 0, shown.stderr
    assert create(cli, partner, "b").returncode == 0  # saved meanwhile, under the new key

    done = cli("auth", "rekey")
    assert done.returncode == 0, done.stderr
    assert "re-encrypted 2 saved key(s)" in done.stdout
    assert len((home / "secret.key").read_bytes().split()) == 1
    assert cli("auth", "update", "a", "--data-import-key", CLIENT_SECRET).returncode == 0


def test_rekey_without_the_key_file_says_so_in_one_line(
    partner: PartnerServer, cli: CliRunner, home: Path
) -> None:
    assert create(cli, partner, "a").returncode == 0
    before = saved_tokens(home)
    (home / "secret.key").unlink()
    refused = cli("auth", "rekey")
    assert refused.returncode == 2
    assert refused.stderr.startswith(f"error: the secret key file {home / 'secret.key'} is missing")
    assert "Traceback" not in refused.stderr
    assert saved_tokens(home) == before
