"""``cohortsync apply``: a real catalog, a real warehouse, the CLI in a real process."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from cohortsync.apply import apply_file, load_file
from cohortsync.audience.activations import get_activation
from cohortsync.audience.segments import get_segment
from cohortsync.catalog.db import open_catalog
from cohortsync.catalog.schedules import get_schedule
from cohortsync.errors import ConfigError
from cohortsync.export.destinations import destination_for_auth
from cohortsync.queries import get_query
from cohortsync.settings import Settings
from support import run_cli

FILE = """\
version: 1
authentications:
  - name: braze-prod
    endpoint: https://rest.iad-01.braze.com
    data_import_key: ${BRAZE_KEY}
parents:
  - name: customers
    table: customers
    key: external_id
    description: every customer
segments:
  - name: gold
    parent: customers
    rules: {column: tier, op: "=", value: gold}
queries:
  - name: gold_by_sql
    sql: |
      SELECT external_id AS user_ids FROM customers WHERE tier = 'gold'
    export:
      auth: braze-prod
      cohort_id: gold-sql
      operation: mirror
      mirror: {max_remove_pct: 20}
    schedule: "0 6 * * *"
    timezone: Europe/Paris
  - name: count_customers
    sql: SELECT count(*) AS n FROM customers
activations:
  - name: gold_daily
    segment: gold
    auth: braze-prod
    cohort_id: gold
    cohort_name: Gold customers
    operation: mirror
    mapping: [external_id=user_ids, {attribute: email, output: email}]
    alias_column: email
    schedule: "*/30 * * * *"
"""


def write(tmp_path: Path, text: str, name: str = "cohortsync.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("BRAZE_KEY", "import-key-0001")
    monkeypatch.setenv("COHORTSYNC_PARTNER_API_KEY", "partner-key")
    return "import-key-0001"


def test_apply_creates_everything_then_changes_nothing(
    customers: Path, key: str, tmp_path: Path
) -> None:
    path = write(tmp_path, FILE)
    first = run_cli("apply", str(path))
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        "+ authentication braze-prod",
        "+ parent customers",
        "+ segment gold",
        "+ query gold_by_sql",
        "+ query count_customers",
        "+ activation gold_daily",
        "6 created, 0 updated, 0 unchanged",
    ]
    destination = destination_for_auth("braze-prod")
    assert destination.data_import_key == key
    query = get_query("gold_by_sql")
    assert query.export is not None and query.export.mirror.max_remove_pct == 20
    assert (query.schedule, query.timezone) == ("0 6 * * *", "Europe/Paris")
    activation = get_activation("gold_daily")
    assert [mapping.model_dump() for mapping in activation.mapping] == [
        {"attribute": "external_id", "output": "user_ids"},
        {"attribute": "email", "output": "email"},
    ]
    catalog = open_catalog(Settings().catalog_path)
    scheduled = get_schedule(catalog, "activation", "gold_daily")
    assert scheduled is not None and scheduled.cron == "*/30 * * * *"
    before = (get_segment("gold").updated_at, get_query("gold_by_sql").updated_at, scheduled.anchor)

    second = run_cli("apply", str(path), "--json")
    assert second.returncode == 0, second.stderr
    document = orjson.loads(second.stdout)
    assert document["changed"] is False
    assert document["summary"] == {"create": 0, "update": 0, "unchanged": 6}
    after_schedule = get_schedule(catalog, "activation", "gold_daily")
    assert after_schedule is not None
    after = (
        get_segment("gold").updated_at,
        get_query("gold_by_sql").updated_at,
        after_schedule.anchor,
    )
    assert after == before
    assert "import-key-0001" not in first.stdout + second.stdout


def test_an_edit_updates_only_what_changed(customers: Path, key: str, tmp_path: Path) -> None:
    apply_file(write(tmp_path, FILE))
    edited = FILE.replace("value: gold}", "value: silver}").replace('"0 6 * * *"', '"0 7 * * *"')
    result = apply_file(write(tmp_path, edited, "edited.yaml"))
    changed = {(c.kind, c.name): (c.action, c.fields) for c in result.changes}
    assert changed[("segment", "gold")] == ("update", ("rules",))
    assert changed[("query", "gold_by_sql")] == ("update", ("schedule",))
    assert {
        v[0] for k, v in changed.items() if k not in {("segment", "gold"), ("query", "gold_by_sql")}
    } == {"unchanged"}
    assert get_segment("gold").rules["value"] == "silver"
    assert get_query("gold_by_sql").schedule == "0 7 * * *"


def test_a_new_key_in_the_environment_updates_the_authentication(
    customers: Path, key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, FILE)
    apply_file(path)
    monkeypatch.setenv("BRAZE_KEY", "import-key-0002")
    result = apply_file(path)
    [auth] = [c for c in result.changes if c.kind == "authentication"]
    assert (auth.action, auth.fields) == ("update", ("data_import_key",))
    assert destination_for_auth("braze-prod").data_import_key == "import-key-0002"


def test_dry_run_prints_the_plan_and_changes_nothing(
    customers: Path, key: str, tmp_path: Path
) -> None:
    done = run_cli("apply", str(write(tmp_path, FILE)), "--dry-run")
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout.splitlines()[-1] == "plan: 6 would be created, 0 would be updated, 0 unchanged"
    )
    with pytest.raises(ConfigError, match="no saved query named 'gold_by_sql'"):
        get_query("gold_by_sql")
    with pytest.raises(ConfigError, match=r"^no authentication named 'braze-prod'"):
        destination_for_auth("braze-prod")


def test_a_missing_variable_fails_before_anything_changes(customers: Path, tmp_path: Path) -> None:
    path = write(tmp_path, FILE)
    done = run_cli("apply", str(path), env={"BRAZE_KEY": None}, expect=2)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"error: {path}: authentications[0].data_import_key: environment variable BRAZE_KEY "
        "is not set (export BRAZE_KEY before running 'cohortsync apply')"
    )
    with pytest.raises(ConfigError, match=r"^no authentication named 'braze-prod'"):
        destination_for_auth("braze-prod")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "authentications:\n  - {name: a, endpoint: https://x, data_import_key: abc123}\n",
            "authentications[0].data_import_key is written in the file; secrets are refused",
        ),
        (
            "parents:\n  - {name: p, table: t, key: k, warehouse: 'postgresql://u:pw@h/db'}\n",
            "parents[0].warehouse holds a password in the file",
        ),
        (
            "queries:\n  - {name: q, sql: SELECT 1, colour: red}\n",
            "queries[0].colour: Extra inputs",
        ),
        (
            "queries:\n  - {name: q, sql: SELECT 1}\n  - {name: q, sql: SELECT 2}\n",
            "declared twice",
        ),
        (
            "queries: [{name: q, sql: 'SELECT 1', schedule: '0 6 * *'}]\n",
            "query q: cron expression",
        ),
        (
            "activations:\n  - {name: a, segment: s, auth: x, cohort_id: c, mapping: [], op: 1}\n",
            "activations[0]",
        ),
        ("queries: [ {name: q\n", "line"),
        ("- just a list\n", "must be a mapping"),
        ("queries:\n  - {name: q, sql: 'SELECT ${NOPE_VAR_X}'}\n", "NOPE_VAR_X is not set"),
    ],
)
def test_bad_files_are_refused_with_the_place(
    customers: Path, tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)) as raised:
        apply_file(write(tmp_path, text))
    assert message in str(raised.value)


def test_env_references_and_escapes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = "queries:\n  - name: q\n    sql: \"SELECT '$${literal}' AS x FROM ${SCHEMA}.t\"\n"
    loaded = load_file(write(tmp_path, text), environ={"SCHEMA": "sales"})
    assert loaded.queries[0].sql == "SELECT '${literal}' AS x FROM sales.t"


def test_an_activation_saves_skip_invalid_and_an_edit_names_it(
    customers: Path, key: str, tmp_path: Path
) -> None:
    skipping = FILE.replace('    schedule: "*/30 * * * *"\n', "    skip_invalid: true\n")
    apply_file(write(tmp_path, skipping))
    assert get_activation("gold_daily").skip_invalid is True
    result = apply_file(write(tmp_path, skipping.replace("skip_invalid: true", "threads: 8")))
    [change] = [c for c in result.changes if c.kind == "activation"]
    assert (change.action, change.fields) == ("update", ("threads", "skip_invalid"))
    activation = get_activation("gold_daily")
    assert (activation.skip_invalid, activation.threads) == (False, 8)
