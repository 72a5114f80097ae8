"""``cohortsync braze users load`` is all or nothing, or says exactly what it loaded.

Through the real executable, on SQLite and PostgreSQL stores: a bad line at
25,001 fails the load with one line naming the file, the line, the reason and
"nothing was loaded", and the store holds no new user, alias or device (rows
counted before and after). ``--continue-on-error`` loads the good lines and
names the bad ones; Ctrl-C says what was loaded and exits 6.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from cohortsync.braze.store import open_store, user_aliases, user_devices, users, workspaces
from support import wait_for

from .conftest import CliRunner, assert_one_line_error, wait_until_open

LINES = 30_000
BAD_LINE = 25_001


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'braze.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def workspace(cli: CliRunner, db_url: str) -> str:
    name = f"ws-{uuid.uuid4().hex[:10]}"
    done = cli("braze", "workspace", "create", name, "--db", db_url)
    assert done.returncode == 0, done.stderr
    return name


def _count(db_url: str, workspace: str) -> dict[str, int]:
    """Users, aliases and devices of the workspace, counted in the store itself."""
    store = open_store(db_url)
    try:
        with store.read() as conn:
            ws = conn.execute(
                sa.select(workspaces.c.id).where(workspaces.c.name == workspace)
            ).scalar_one()
            return {
                table.name: int(
                    conn.execute(
                        sa.select(sa.func.count())
                        .select_from(table)
                        .where(table.c.workspace_id == ws)
                    ).scalar_one()
                )
                for table in (users, user_aliases, user_devices)
            }
    finally:
        store.close()


def _line(i: int) -> dict[str, Any]:
    return {
        "external_id": f"u{i}",
        "aliases": [{"alias_label": "email", "alias_name": f"u{i}@x.io"}],
        "device_ids": [f"d{i}"],
    }


def _write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def _good(count: int, start: int = 1) -> list[bytes]:
    return [orjson.dumps(_line(i)) for i in range(start, start + count)]


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (b'{"external_id": 5}', "external_id is not a non-empty string"),
        (b'{"external_id": "u', "not valid JSON"),
        (b'{"device_ids": ["' + b"d" * 600 + b'"]}', "at most 512 characters"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"external_id": "\xff\xfe"}', "not valid JSON"),
    ],
    ids=["not-a-string", "broken-json", "too-long", "not-an-object", "not-utf8"],
)
def test_a_bad_line_loads_nothing(
    cli: CliRunner, db_url: str, workspace: str, tmp_path: Path, bad: bytes, reason: str
) -> None:
    existing = _write(tmp_path / "existing.ndjson", _good(10, start=900_000))
    loaded = cli("braze", "users", "load", str(existing), "--workspace", workspace, "--db", db_url)
    assert loaded.returncode == 0, loaded.stderr
    before = _count(db_url, workspace)
    assert before["braze_users"] == 10
    lines = _good(LINES)
    lines[BAD_LINE - 1] = bad
    path = _write(tmp_path / "users.ndjson", lines)
    done = cli("braze", "users", "load", str(path), "--workspace", workspace, "--db", db_url)
    assert_one_line_error(done, 2, f"{path} line {BAD_LINE}: ", reason, "nothing was loaded")
    assert done.stdout == ""
    assert _count(db_url, workspace) == before


def test_continue_on_error_loads_the_good_lines_and_names_the_bad(
    cli: CliRunner, db_url: str, workspace: str, tmp_path: Path
) -> None:
    lines = _good(LINES)
    bad_lines = [3, 17, BAD_LINE]
    for number in bad_lines:
        lines[number - 1] = b'{"external_id": ""}'
    lines.insert(99, b"")  # a blank line is skipped but counted in the numbering
    lines[200] = b"{oops"  # line 201 of the file
    path = _write(tmp_path / "users.ndjson", lines)
    done = cli(
        "braze",
        "users",
        "load",
        str(path),
        "--workspace",
        workspace,
        "--db",
        db_url,
        "--continue-on-error",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    report = orjson.loads(done.stdout)
    failed = [3, 17, 201, BAD_LINE + 1]
    assert report["lines_failed"] == 4
    assert [f["line"] for f in report["failures"]] == failed
    assert "not valid JSON" in report["failures"][2]["reason"]
    assert report["lines"] == LINES - 4
    assert report["users_created"] == LINES - 4
    assert _count(db_url, workspace)["braze_users"] == LINES - 4
    [warning] = [line for line in done.stderr.splitlines() if line.strip()]
    assert warning.startswith(f"warning: {path}: loaded {LINES - 4:,} lines, 4 failed: line 3:")


def test_failures_listed_are_capped_but_all_counted(
    cli: CliRunner, db_url: str, workspace: str, tmp_path: Path
) -> None:
    path = _write(tmp_path / "users.ndjson", [b"7"] * 50 + _good(5))
    done = cli(
        "braze", "users", "load", str(path), "--workspace", workspace, "--db", db_url,
        "--continue-on-error", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = orjson.loads(done.stdout)
    assert report["lines_failed"] == 50 and len(report["failures"]) == 20
    assert report["lines"] == 5
    assert "(and 47 more)" in done.stderr


def test_ctrl_c_messages(db_url: str, workspace: str, tmp_path: Path, home: Path) -> None:
    """One line each: nothing loaded (default), how many lines loaded (continue mode)."""
    path = _write(tmp_path / "big.ndjson", _good(600_000))
    before = _count(db_url, workspace)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("COHORTSYNC_")}
    environment["COHORTSYNC_HOME"] = str(home)
    for extra in ((), ("--continue-on-error",)):
        options = ["--workspace", workspace, "--db", db_url, *extra]
        process = subprocess.Popen(
            [sys.executable, "-m", "cohortsync", "braze", "users", "load", str(path), *options],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
        )
        if extra:  # wait for the first chunks to commit, so that some are loaded
            wait_for(
                lambda: _count(db_url, workspace)["braze_users"] != before["braze_users"],
                60,
                what="the first chunks of the load to commit",
                interval=0.2,
                process=process,
            )
        else:
            wait_until_open(process, path)
            time.sleep(0.5)  # into the load: the file takes far longer than this
        assert process.poll() is None
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
        done = subprocess.CompletedProcess(process.args, process.returncode, out, err)
        if not extra:
            assert_one_line_error(
                done, 6, f"users load of {path} was interrupted", "nothing was loaded"
            )
            assert _count(db_url, workspace) == before
        else:
            line = assert_one_line_error(done, 6, "interrupted after loading", "stay loaded")
            loaded = int(line.split("after loading ")[1].split(" lines")[0].replace(",", ""))
            assert loaded > 0 and loaded % 20_000 == 0
            assert _count(db_url, workspace)["braze_users"] == before["braze_users"] + loaded
