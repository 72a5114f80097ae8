"""The `cohortsync braze` commands, end to end on a real store file."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from support import run_cli, run_cli_in_process, served_url_on_stderr


@pytest.fixture
def cli(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``cohortsync braze ARGS`` in-process: parsed stdout, or stderr for an error ``expect``.

    In-process because each test makes dozens of calls; one interpreter each would
    double the suite's time.
    """
    monkeypatch.setenv("COHORTSYNC_BRAZE_DB", db_url)

    def call(*args: str, expect: int = 0) -> Any:
        done = run_cli_in_process("braze", *args, expect=expect)
        if expect != 0:
            return done.stderr
        return done.json() if done.stdout.strip() else None

    return call


def write_ndjson(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_administration_round_trip(cli: Any, tmp_path: Path) -> None:
    name = f"cli-{os.getpid()}-{time.monotonic_ns()}"
    workspace = cli("workspace", "create", name)
    assert (
        set(workspace) == {"id", "name", "rest_api_key", "allowed_sources"}
        and workspace["name"] == name
    )
    ws = str(workspace["id"])
    partner_key = f"pk-{time.monotonic_ns()}"
    partner = cli(
        "partner",
        "create",
        "treasuredata",
        "--display-name",
        "Treasure Data",
        "--api-key",
        partner_key,
    )
    assert partner["filter_name"] == "Treasure Data Cohorts"
    eu = cli(
        "partner", "create", "treasuredata", "--api-key", f"{partner_key}-eu", "--region", "eu"
    )
    assert {"key": f"{partner_key}-eu", "region": "eu"} in eu["api_keys"]
    assert cli("partner", "enable", "treasuredata", "--workspace", name)["enabled"] is True
    key = cli("key", "generate", "--workspace", ws)["data_import_key"]
    users = write_ndjson(
        tmp_path / "users.ndjson",
        [
            {
                "external_id": "u1",
                "aliases": [{"alias_label": "email", "alias_name": "a@x.io"}],
                "device_ids": ["d1"],
            },
            {"device_ids": ["d2"]},
            {},
        ],
    )
    loaded = cli("users", "load", str(users), "--workspace", ws)
    assert (loaded["lines"], loaded["users_created"], loaded["lines_without_identifiers"]) == (
        3,
        2,
        1,
    )
    again = cli("users", "load", str(users), "--workspace", ws)
    assert (again["users_created"], again["users_updated"]) == (0, 2)

    from cohortsync.braze.store import open_store

    store = open_store(os.environ["COHORTSYNC_BRAZE_DB"])
    from cohortsync.braze.server import serve_in_background

    with serve_in_background(store.url) as base_url:
        body = {"partner_api_key": partner_key, "client_secret": key, "cohort_id": "vip"}
        response = requests.post(
            f"{base_url}/partners/treasuredata/cohorts/users",
            json={**body, "cohort_changes": [{"user_ids": ["u1", "nobody"], "device_ids": ["d2"]}]},
            timeout=10,
        )
        assert response.status_code == 200
        [cohort] = cli("cohorts", "list", "--workspace", ws)
        assert cohort["size"] == 2
        assert cohort["identifiers"]["external_id"] == {"received": 2, "matched": 1, "dropped": 1}
        assert cli("cohorts", "members", "vip", "--workspace", ws) == [
            {
                "external_id": "u1",
                "aliases": [{"alias_label": "email", "alias_name": "a@x.io"}],
                "device_ids": ["d1"],
            },
            {"external_id": None, "aliases": [], "device_ids": ["d2"]},
        ]
        assert cli("cohorts", "lock", "vip", "--workspace", ws)["locked"] is True
        locked = requests.post(
            f"{base_url}/partners/treasuredata/cohorts/users",
            json={**body, "cohort_changes": [{"user_ids": ["u1"]}]},
            timeout=10,
        )
        assert locked.status_code == 423
        assert cli("cohorts", "unlock", "vip", "--workspace", ws)["locked"] is False
        segment = cli(
            "segment",
            "create",
            "known vip",
            "--workspace",
            ws,
            "--includes-cohort",
            "vip",
            "--external-id",
            "present",
        )
        assert "Treasure Data Cohorts includes" in segment["text_description"]
        assert [
            m["external_id"] for m in cli("segment", "members", "known vip", "--workspace", ws)
        ] == ["u1"]
        assert [s["name"] for s in cli("segment", "list", "--workspace", ws)] == ["known vip"]
        assert cli("key", "invalidate", key)["invalidated_at"]
        refused = requests.post(
            f"{base_url}/partners/treasuredata/cohorts/users",
            json={**body, "cohort_changes": []},
            timeout=10,
        )
        assert refused.status_code == 401
    store.close()


def test_user_errors_print_one_line_without_traceback(cli: Any, tmp_path: Path) -> None:
    err = cli("cohorts", "list", "--workspace", "no-such-workspace", expect=2)
    assert err.startswith("error: no workspace 'no-such-workspace'") and "Traceback" not in err
    workspace = cli("workspace", "create", f"err-{time.monotonic_ns()}")
    bad = tmp_path / "bad.ndjson"
    bad.write_text('{"external_id": "u1"}\n{"external_id": 5}\n')
    err = cli("users", "load", str(bad), "--workspace", str(workspace["id"]), expect=2)
    assert "line 2" in err and "external_id" in err and "Traceback" not in err
    err = cli(
        "users",
        "load",
        str(tmp_path / "missing.ndjson"),
        "--workspace",
        str(workspace["id"]),
        expect=2,
    )
    assert "cannot read" in err
    err = cli("key", "invalidate", "not-a-key", expect=2)
    assert "no such data import key" in err
    err = cli("partner", "create", "Bad Name", "--api-key", "k", expect=2)
    assert "URL" in err
    err = cli("segment", "create", "s", "--workspace", str(workspace["id"]), expect=2)
    assert "--includes-cohort" in err


def test_help_teaches_the_setup() -> None:
    completed = run_cli("braze", "--help")
    assert "workspace create" in completed.stdout and "serve" in completed.stdout


def test_serve_command_on_port_0_says_where_it_answers_and_stops(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'served.db'}"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cohortsync",
            "braze",
            "serve",
            "--port",
            "0",
            "--db",
            db,
            "--rate-limit",
            "100/minute",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base, printed = served_url_on_stderr(process)
        port = int(base.rsplit(":", 1)[1])
        assert base == f"http://127.0.0.1:{port}" and port > 0
        assert f"dashboard at {base}/dashboard" in printed
        response = requests.post(f"{base}/partners/treasuredata/cohorts/users", json={}, timeout=10)
        assert response.status_code == 401
        assert response.headers["X-RateLimit-Limit"] == "100"
    finally:
        process.terminate()
        _, rest = process.communicate(timeout=30)
    stderr = printed + rest
    assert process.returncode in (0, -15)
    assert "Finished server process" in stderr
    assert "rate limit 100/minute" in stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy_port = taken.getsockname()[1]
        busy = run_cli("braze", "serve", "--port", str(busy_port), "--db", db, expect=None)
    assert busy.returncode == 2
    assert f"cannot listen on 127.0.0.1:{busy_port}" in busy.stderr
    assert "Traceback" not in busy.stderr
