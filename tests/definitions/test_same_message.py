"""The command line and ``apply`` refuse a bad value in the same words (the real executable)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from catalog_helpers import save_home_auth

COHORTSYNC = str(Path(sys.executable).with_name("cohortsync"))

ACTIVATION = (
    "activation", "create", "fr_vip", "--segment", "fr", "--auth", "prod",
    "--cohort-id", "fr_vip", "--map", "customer_id=user_ids",
)  # fmt: skip
ACTIVATION_YAML = """\
activations:
  - name: fr_vip
    segment: fr
    auth: prod
    cohort_id: fr_vip
    mapping: [customer_id=user_ids]
"""
QUERY = ("query", "save", "gold", "--sql", "SELECT 1 AS user_ids", "--export", "prod",
         "--cohort-id", "gold")  # fmt: skip
QUERY_YAML = """\
queries:
  - name: gold
    sql: SELECT 1 AS user_ids
    export:
      auth: prod
      cohort_id: gold
"""


def cohortsync(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [COHORTSYNC, *args], capture_output=True, text=True, timeout=60, env=dict(os.environ)
    )


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0].removeprefix("error: ")


@pytest.mark.parametrize(
    ("options", "yaml_lines", "message"),
    [
        (("--threads", "65"), "    threads: 65\n", "thread count 65 is above 64"),
        (("--threads", "0"), "    threads: 0\n", "thread count 0 is below 1"),
        (
            ("--operation", "mirror", "--max-remove-pct", "150"),
            "    operation: mirror\n    mirror: {max_remove_pct: 150}\n",
            "mirror max remove percentage 150.0 is not within 0..100",
        ),
        (("--schedule", "0 6 * *"), "    schedule: 0 6 * *\n", "cron expression '0 6 * *'"),
        (("--timezone", "Mars/Base"), "    timezone: Mars/Base\n", "unknown time zone 'Mars/Base'"),
    ],
)
def test_activation_create_and_apply_say_the_same(
    home: Path, tmp_path: Path, options: tuple[str, ...], yaml_lines: str, message: str
) -> None:
    from_cli = one_line_error(cohortsync(*ACTIVATION, *options))
    path = tmp_path / "cohortsync.yaml"
    path.write_text(ACTIVATION_YAML + yaml_lines)
    from_apply = one_line_error(cohortsync("apply", str(path)))
    assert from_cli.startswith(message)
    assert from_apply == f"{path}: activation fr_vip: {from_cli}"
    assert json.loads(cohortsync("activation", "list", "--json").stdout) == []


def test_query_save_and_apply_say_the_same(home: Path, tmp_path: Path) -> None:
    from_cli = one_line_error(cohortsync(*QUERY, "--threads", "65"))
    path = tmp_path / "cohortsync.yaml"
    path.write_text(QUERY_YAML + "      threads: 65\n")
    from_apply = one_line_error(cohortsync("apply", str(path)))
    assert from_cli == (
        "thread count 65 is above 64 (give auto or 1 to 64 threads, the requests in flight at once)"
    )
    assert from_apply == f"{path}: query gold: {from_cli}"
    activation = one_line_error(cohortsync(*ACTIVATION, "--threads", "65"))
    assert activation == from_cli


def test_activation_update_says_it_too(home: Path) -> None:
    """An update is checked by the same definition, after the stored one is read."""
    with duckdb.connect(str(home / "warehouse.duckdb")) as conn:
        conn.execute("CREATE TABLE customers AS SELECT 'c1' AS customer_id, 'FR' AS country")
    save_home_auth("prod", "http://127.0.0.1:9", "data-import-key-0001")
    parent = ("audience", "parent", "create", "customers", "--table", "customers")
    assert cohortsync(*parent, "--key", "customer_id").returncode == 0
    rules = '{"column": "country", "op": "=", "value": "FR"}'
    segment = cohortsync("segment", "create", "fr", "--parent", "customers", "--rules", rules)
    assert segment.returncode == 0, segment.stderr
    created = cohortsync(*ACTIVATION)
    assert created.returncode == 0, created.stderr
    again = (*ACTIVATION[:2], "again", *ACTIVATION[3:], "--threads", "65")
    from_create = one_line_error(cohortsync(*again))
    from_update = one_line_error(cohortsync("activation", "update", "fr_vip", "--threads", "65"))
    assert from_update == from_create
    assert from_update.startswith("thread count 65 is above 64")
    shown = json.loads(cohortsync("activation", "show", "fr_vip", "--json").stdout)
    assert shown["threads"] == "auto"  # the default, unchanged by the refused update
