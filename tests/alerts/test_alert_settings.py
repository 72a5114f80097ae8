"""The alert settings: one definition read by ``query save``, ``activation`` and ``apply``.

Bad values are refused in one line (exit 2) before anything is saved; the
saved settings show in ``show`` and ``show --json``, and an activation's
alerts change field by field with ``activation update``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from alerts.conftest import Cli
from alerts.receiver import Receiver

SQL = "SELECT external_id AS user_ids FROM customers"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--alert-webhook", "ftp://hooks.example.com/x"],
         "alert webhook 'ftp://hooks.example.com/x' is not an http(s) URL"),
        (["--alert-webhook", "https://"], "is not an http(s) URL"),
        (["--alert-webhook", "https://h.example/x", "--alert-removals", "-1"],
         "alert removals -1 is negative"),
        (["--alert-webhook", "https://h.example/x", "--alert-size-change", "150"],
         "alert size change 150 is above 100"),
        (["--alert-webhook", "https://h.example/x", "--alert-refused-pct", "-5"],
         "alert refused share -5 is negative"),
        (["--alert-webhook", "https://h.example/x", "--alert-duration", "-1"],
         "alert duration -1 is negative"),
        (["--alert-webhook", "https://h.example/x", "--alert-hold"],
         "alert hold needs a size change or removals threshold"),
        (["--alert-removals", "5"], "alert settings were given without a webhook"),
    ],
)  # fmt: skip
def test_bad_settings_are_refused_in_one_line(
    cli: Cli, auth: str, customers: Callable[[int], None], options: list[str], message: str
) -> None:
    done = cli("query", "save", "vip", "--sql", SQL, "--export", auth, "--cohort-id", "vip",
               *options)  # fmt: skip
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: ") and message in line, line
    assert cli("query", "show", "vip").returncode == 2  # nothing saved


def test_a_format_other_than_json_or_slack_is_a_usage_error(cli: Cli, auth: str) -> None:
    done = cli("query", "save", "vip", "--sql", SQL, "--alert-webhook", "https://h.example/x",
               "--alert-format", "xml")  # fmt: skip
    assert done.returncode == 2 and "xml" in done.stderr


def test_query_show_gives_the_saved_alerts(
    cli: Cli,
    auth: str,
    receiver: Receiver,
    customers: Callable[[int], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    saved = cli(
        "query", "save", "vip", "--sql", SQL, "--export", auth, "--cohort-id", "vip",
        "--alert-webhook", receiver.url, "--alert-format", "slack", "--no-alert-on-failure",
        "--alert-size-change", "20", "--alert-removals", "100", "--alert-duration", "600",
        "--alert-refused-pct", "5", "--alert-hold", "--json",
    )  # fmt: skip
    assert saved.returncode == 0, saved.stderr
    alerts = {
        "webhook": receiver.url,
        "format": "slack",
        "on_failure": False,
        "size_change_pct": 20.0,
        "removals": 100,
        "duration_s": 600.0,
        "refused_pct": 5.0,
        "hold": True,
    }
    assert json.loads(saved.stdout)["query"]["alerts"] == alerts
    assert json.loads(cli("query", "show", "vip", "--json").stdout)["alerts"] == alerts
    text = cli("query", "show", "vip").stdout
    line = next(line for line in text.splitlines() if line.startswith("alerts:"))
    assert "t0ken" not in line  # the path of a webhook is often its token
    assert "(slack), not on failure, size change > 20%, removals > 100" in line
    assert line.endswith("duration > 600 s, refused > 5%, hold")
    again = cli(
        "query", "save", "vip", "--sql", SQL, "--export", auth, "--cohort-id", "vip",
        "--alert-webhook", receiver.url, "--alert-format", "slack", "--no-alert-on-failure",
        "--alert-size-change", "20", "--alert-removals", "100", "--alert-duration", "600",
        "--alert-refused-pct", "5", "--alert-hold", "--json",
    )  # fmt: skip
    assert json.loads(again.stdout)["outcome"] == "unchanged"
    plain = cli("query", "save", "vip", "--sql", SQL, "--export", auth, "--cohort-id", "vip",
                "--json")  # fmt: skip
    assert json.loads(plain.stdout)["outcome"] == "updated"
    assert json.loads(plain.stdout)["query"]["alerts"] is None


def test_activation_alerts_are_created_shown_updated_and_removed(
    cli: Cli, auth: str, receiver: Receiver, customers: Callable[[int], None]
) -> None:
    steps = [
        ("audience", "parent", "create", "customers", "--table", "customers",
         "--key", "external_id"),
        ("segment", "create", "all", "--parent", "customers", "--rules",
         '{"column": "external_id", "op": "!=", "value": ""}'),
    ]  # fmt: skip
    for step in steps:
        assert cli(*step).returncode == 0, step
    created = cli(
        "activation", "create", "vip", "--segment", "all", "--auth", auth, "--cohort-id", "vip",
        "--map", "external_id=user_ids", "--alert-webhook", receiver.url,
        "--alert-removals", "3", "--json",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["alerts"] == {
        "webhook": receiver.url, "format": "json", "on_failure": True, "size_change_pct": None,
        "removals": 3, "duration_s": None, "refused_pct": None, "hold": False,
    }  # fmt: skip
    updated = cli("activation", "update", "vip", "--alert-format", "slack", "--alert-size-change",
                  "30", "--alert-hold", "--json")  # fmt: skip
    assert updated.returncode == 0, updated.stderr
    alerts = json.loads(updated.stdout)["alerts"]
    assert (alerts["format"], alerts["size_change_pct"], alerts["removals"], alerts["hold"]) == (
        "slack", 30.0, 3, True,
    )  # fmt: skip
    shown = json.loads(cli("activation", "show", "vip", "--json").stdout)
    assert shown["alerts"] == alerts
    assert "removals > 3" in cli("activation", "show", "vip").stdout
    bad = cli("activation", "update", "vip", "--alert-size-change", "101")
    assert bad.returncode == 2 and "alert size change 101 is above 100" in bad.stderr
    removed = cli("activation", "update", "vip", "--no-alerts", "--json")
    assert json.loads(removed.stdout)["alerts"] is None
    orphan = cli("activation", "update", "vip", "--alert-removals", "3")
    assert orphan.returncode == 2 and "without a webhook" in orphan.stderr


def test_apply_reads_an_alerts_mapping(
    cli: Cli, auth: str, receiver: Receiver, customers: Callable[[int], None], tmp_path: Path
) -> None:
    document = tmp_path / "cohortsync.yaml"
    document.write_text(
        "queries:\n"
        "  - name: vip\n"
        f"    sql: {SQL}\n"
        f"    export: {{auth: {auth}, cohort_id: vip, operation: mirror}}\n"
        "    alerts:\n"
        f"      webhook: {receiver.url}\n"
        "      format: slack\n"
        "      removals: 3\n"
        "      hold: true\n"
    )
    applied = cli("apply", str(document))
    assert applied.returncode == 0, applied.stderr
    assert "+ query vip" in applied.stdout
    alerts = json.loads(cli("query", "show", "vip", "--json").stdout)["alerts"]
    assert (alerts["format"], alerts["removals"], alerts["hold"]) == ("slack", 3, True)
    assert "= query vip (unchanged)" in cli("apply", str(document)).stdout
    document.write_text(document.read_text().replace("removals: 3", "removals: 4"))
    assert "~ query vip (alerts)" in cli("apply", str(document)).stdout
    document.write_text(document.read_text().replace("removals: 4", "removals: -4"))
    refused = cli("apply", str(document))
    assert refused.returncode == 2
    assert "alert removals -4 is negative" in refused.stderr
    document.write_text(document.read_text().replace("removals: -4", "colour: red"))
    refused = cli("apply", str(document))
    assert refused.returncode == 2 and "alerts.colour" in refused.stderr
