"""``cohortsync runs list`` and ``runs show``: the run history as people and scripts see it."""

from __future__ import annotations

from collections.abc import Callable

from runs_helpers import export_args, runs_json

from export.partner_server import PartnerServer
from support import run_cli


def test_list_and_show_record_every_export(
    partner: PartnerServer, warehouse: Callable[[str], None]
) -> None:
    warehouse("CREATE TABLE t AS SELECT 'u' || i AS user_ids FROM range(1500) r(i)")
    assert run_cli(*export_args(partner, "--operation", "add"), expect=None).returncode == 0
    assert run_cli(*export_args(partner, cohort="other"), expect=None).returncode == 0
    warehouse("DROP TABLE t")
    failed = run_cli(*export_args(partner), expect=None)
    assert failed.returncode == 3

    runs = runs_json("list")
    assert [(r["cohort_id"], r["operation"], r["status"]) for r in runs] == [
        ("vip", "mirror", "failed"),
        ("other", "mirror", "succeeded"),
        ("vip", "add", "succeeded"),
    ]
    assert [r["operation"] for r in runs_json("list", "--cohort", "vip")] == ["mirror", "add"]
    assert [r["cohort_id"] for r in runs_json("list", "--status", "failed")] == ["vip"]
    assert len(runs_json("list", "--limit", "1")) == 1

    succeeded = runs[1]
    shown = runs_json("show", succeeded["id"])
    assert shown["report"]["sent_total"] == 1500
    assert shown["report"]["mirror"]["entries"] == 1500
    assert shown["acknowledged_batches"] == 2
    assert shown["finished_at"] >= shown["started_at"]
    assert "data_import_key" not in shown["job"]["destination"]
    assert partner.client_secret not in str(shown)

    text = run_cli("runs", "show", runs[0]["id"], expect=None)
    assert text.returncode == 0
    assert "failed" in text.stdout
    assert "Table" in text.stdout or "table" in text.stdout
    listed = run_cli("runs", "list", expect=None)
    assert succeeded["id"] in listed.stdout


def test_unknown_run_and_status_are_usage_errors(home: object) -> None:
    missing = run_cli("runs", "show", "nope", expect=None)
    assert missing.returncode == 2
    assert "no export run with id 'nope'" in missing.stderr
    assert "Traceback" not in missing.stderr
    status = run_cli("runs", "list", "--status", "done", expect=None)
    assert status.returncode == 2
    assert "unknown --status 'done'" in status.stderr
    empty = run_cli("runs", "list", expect=None)
    assert empty.returncode == 0
    assert "no export runs yet" in empty.stdout
