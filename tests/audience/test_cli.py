"""Each audience command through the real ``cohortsync`` executable, in a temp home."""

from __future__ import annotations

import json
from pathlib import Path

from cohortsync.audience.activations import list_activations
from cohortsync.audience.parents import create_parent, list_parents
from cohortsync.audience.segments import create_segment, list_segments

from .conftest import INJECTION, cli, cli_json


def test_parent_commands(warehouse: Path) -> None:
    created = cli(
        "audience", "parent", "create", "customers", "--table", "customers", "--key", "customer_id"
    )
    assert "created parent customers" in created.stdout
    shown = cli_json("audience", "parent", "show", "customers")
    assert shown["table"] == "customers" and shown["key"] == "customer_id"
    assert {"name": "age", "type": "int32"} in shown["columns"]
    assert "customer_id" in cli("audience", "parent", "list").stdout
    missing = cli(
        "audience", "parent", "create", "x", "--table", "customers", "--key", "nope", code=2
    )
    assert missing.stderr.startswith("error: unknown key column 'nope' in table customers")
    assert "Traceback" not in missing.stderr
    cli("audience", "parent", "delete", "customers")
    assert list_parents() == []


def test_segment_commands(warehouse: Path, tmp_path: Path) -> None:
    create_parent("customers", "customers", "customer_id")
    rules = {
        "and": [
            {"column": "country", "op": "=", "value": "FR"},
            {"not": {"column": "age", "op": "<", "value": 30}},
        ]
    }
    cli(
        "segment",
        "create",
        "fr_30",
        "--parent",
        "customers",
        "--rules",
        json.dumps(rules["and"][0]),
    )
    cli("segment", "update", "fr_30", "--rules", json.dumps(rules))
    shown = cli_json("segment", "show", "fr_30")
    assert shown["size"] == 2
    assert [row["customer_id"] for row in shown["sample"]] == ["c2", "c6"]
    assert shown["params"] == ["FR", 30]

    rules_file = tmp_path / "tricky.json"
    rules_file.write_text(json.dumps({"column": "nickname", "op": "=", "value": INJECTION}))
    cli("segment", "create", "tricky", "--parent", "customers", "--rules", str(rules_file))
    tricky = cli("segment", "show", "tricky").stdout
    assert "1 row\n" in tricky and "ana@x.io" in tricky and "bob@x.io" not in tricky

    assert [s["name"] for s in cli_json("segment", "list")] == ["fr_30", "tricky"]
    wrong = cli(
        "segment",
        "create",
        "bad",
        "--parent",
        "customers",
        "--rules",
        '{"column": "age", "op": "like", "value": "1%"}',
        code=2,
    )
    assert wrong.stderr.startswith("error: 'like' needs a text column")
    cli("segment", "delete", "tricky")
    assert [s.name for s in list_segments()] == ["fr_30"]


def test_activation_commands(warehouse: Path, auth: str) -> None:
    create_parent("customers", "customers", "customer_id")
    create_segment("fr", "customers", {"column": "country", "op": "=", "value": "FR"})
    refused = cli(
        "activation",
        "create",
        "vip",
        "--segment",
        "fr",
        "--auth",
        auth,
        "--cohort-id",
        "vip",
        "--map",
        "customer_id=external_id",
        code=2,
    )
    assert refused.stderr.strip() == (
        "error: output name 'external_id' of mapping customer_id=external_id is not allowed "
        "(allowed output names: user_ids, device_ids (or set --alias-column to send aliases))"
    )
    created = cli_json(
        "activation",
        "create",
        "vip",
        "--segment",
        "fr",
        "--auth",
        auth,
        "--cohort-id",
        "vip",
        "--cohort-name",
        "VIP",
        "--operation",
        "mirror",
        "--alias-column",
        "email",
        "--map",
        "customer_id=user_ids",
        "--map",
        "email=email",
        "--threads",
        "2",
        "--description",
        "French VIPs",
        "--schedule",
        "0 6 * * *",
        "--timezone",
        "Europe/Paris",
    )
    assert created["mapping"] == ["customer_id=user_ids", "email=email"]
    assert (created["operation"], created["schedule"], created["threads"]) == (
        "mirror",
        "0 6 * * *",
        2,
    )
    cli("activation", "update", "vip", "--no-schedule", "--operation", "add")
    shown = cli_json("activation", "show", "vip")
    assert (shown["schedule"], shown["operation"]) == (None, "add")
    assert shown["sql"] == (
        'SELECT "customer_id" AS "user_ids", "email" AS "email" FROM "customers" '
        'WHERE "country" = ?'
    )
    assert shown["runs"] == []
    assert [a["name"] for a in cli_json("activation", "list")] == ["vip"]
    no_key = cli("activation", "run", "vip", code=2)
    assert no_key.stderr.startswith("error: no partner API key")
    shown_text = cli("activation", "show", "vip").stdout
    assert "failed" in shown_text and "no partner API key" in shown_text
    cli("activation", "delete", "vip")
    assert list_activations() == []


def test_help_teaches_the_rule_format_and_the_mapping() -> None:
    segment_help = cli("segment", "--help").stdout
    assert '"op"' in segment_help and "between" in segment_help and "is not null" in segment_help
    activation_help = cli("activation", "create", "--help").stdout
    assert "user_ids" in activation_help and "--cast-to-string" in activation_help


def test_unknown_names_are_one_line_errors(home: Path) -> None:
    done = cli("segment", "show", "nothing", code=2)
    assert done.stderr == "error: no segment named 'nothing' (see 'cohortsync segment list')\n"
