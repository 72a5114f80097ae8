"""Delivery as a custom attribute through ``POST /users/track`` (``--type rest-attribute``).

Against a local server that follows Braze's documentation of the endpoint
(https://www.braze.com/docs/api/endpoints/user_data/post_user_track/, see
:mod:`export.track_server`): the exact bodies sent, mirror entries and exits,
guards, the device-id refusal, 75-object batches, the non-fatal errors in the
report, the dry run's plan with the key masked.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from cohortsync.errors import CohortsyncError, ConfigError, DestinationRefused, SourceError
from cohortsync.export.run import run_export
from cohortsync.export.spec import REST_ATTRIBUTE, Destination, ExportSpec, MirrorOptions, Source
from export.track_server import REST_API_KEY, UNKNOWN_USER, TrackServer
from support import run_cli

Warehouse = Callable[[str], None]


@pytest.fixture
def track(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TrackServer]:
    monkeypatch.setenv("COHORTSYNC_REST_API_KEY", REST_API_KEY)
    monkeypatch.setenv("COHORTSYNC_HTTP_BACKOFF_BASE", "0.01")
    monkeypatch.setenv("COHORTSYNC_HTTP_BACKOFF_MAX", "0.05")
    server = TrackServer().start()
    yield server
    server.stop()


def spec_of(
    track: TrackServer,
    source: Source,
    *,
    operation: str = "add",
    mode: str = "array",
    attribute: str | None = None,
    alias_column: str | None = None,
    mirror: MirrorOptions | None = None,
    threads: int = 2,
) -> ExportSpec:
    destination = Destination(
        endpoint=track.url,
        data_import_key=REST_API_KEY,
        partner_api_key="",
        type=REST_ATTRIBUTE,
        attribute_mode=mode,  # type: ignore[arg-type]
        attribute=attribute,
    )
    return ExportSpec(
        source=source,
        destination=destination,
        cohort_id="vip",
        operation=operation,  # type: ignore[arg-type]
        alias_column=alias_column,
        threads=threads,
        mirror=mirror or MirrorOptions(),
    )


def ids_table(warehouse: Warehouse, start: int, stop: int, name: str = "t") -> None:
    warehouse(
        f"CREATE OR REPLACE TABLE {name} AS SELECT 'u' || i::VARCHAR AS user_ids "
        f"FROM range({start}, {stop}) r(i)"
    )


def users(start: int, stop: int) -> set[tuple[str, ...]]:
    return {("external_id", f"u{i}") for i in range(start, stop)}


def test_add_sends_the_array_operator_update_only_and_bearer_key(
    track: TrackServer, warehouse: Warehouse
) -> None:
    track.add_users("u0", "u1", "u2")
    ids_table(warehouse, 0, 3)
    report = run_export(spec_of(track, Source(table="t")))
    [request] = track.requests
    assert request.path == "/users/track"
    assert request.headers["Authorization"] == f"Bearer {REST_API_KEY}"
    assert sorted(request.body["attributes"], key=lambda o: o["external_id"]) == [
        {"external_id": f"u{i}", "_update_existing_only": True, "cohorts": {"add": ["vip"]}}
        for i in range(3)
    ]
    assert REST_API_KEY not in orjson.dumps(request.body).decode()
    assert track.members("cohorts", "vip") == users(0, 3)
    assert report.sent == {"user_ids": 3}
    assert report.requests == 1  # no cohort-name request on this path
    assert report.to_dict()["destination"] == "rest-attribute"
    assert report.match == {
        "objects": 3, "errors": 0, "processed": 3, "reasons": {}, "first_errors": []
    }  # fmt: skip


def test_remove_and_other_cohorts_in_the_array_are_kept(
    track: TrackServer, warehouse: Warehouse
) -> None:
    track.add_users("u0", "u1")
    track.profiles[("external_id", "u0")] = {"cohorts": ["other", "vip"]}
    track.profiles[("external_id", "u1")] = {"cohorts": ["vip"]}
    ids_table(warehouse, 0, 1)
    run_export(spec_of(track, Source(table="t"), operation="remove"))
    [request] = track.requests
    assert request.body["attributes"] == [
        {"external_id": "u0", "_update_existing_only": True, "cohorts": {"remove": ["vip"]}}
    ]
    assert track.profiles[("external_id", "u0")] == {"cohorts": ["other"]}
    assert track.profiles[("external_id", "u1")] == {"cohorts": ["vip"]}


def test_boolean_mode_sets_true_on_entry_and_false_on_exit(
    track: TrackServer, warehouse: Warehouse
) -> None:
    track.add_users(*(f"u{i}" for i in range(4)))
    ids_table(warehouse, 0, 3)
    spec = spec_of(track, Source(table="t"), operation="mirror", mode="boolean")
    run_export(spec)
    assert track.flagged("cohort_vip") == dict.fromkeys(users(0, 3), True)
    ids_table(warehouse, 1, 4)
    report = run_export(spec)
    assert track.flagged("cohort_vip") == {
        ("external_id", "u0"): False, **dict.fromkeys(users(1, 4), True)
    }  # fmt: skip
    assert {o["external_id"]: o["cohort_vip"] for o in track.requests[-1].body["attributes"]} == {
        "u0": False,
        "u3": True,
    }
    assert report.mirror is not None
    assert (report.mirror["entries"], report.mirror["exits"]) == (1, 1)


def test_aliases_are_addressed_as_user_alias_with_the_column_label(
    track: TrackServer, warehouse: Warehouse
) -> None:
    track.add_alias_users("email", "a@x.io")
    warehouse("CREATE TABLE e AS SELECT * FROM (VALUES ('a@x.io'), ('b@x.io')) v(email)")
    report = run_export(spec_of(track, Source(table="e"), alias_column="email", attribute="segs"))
    objects = sorted(track.objects(), key=lambda o: o["user_alias"]["alias_name"])
    assert objects == [
        {
            "user_alias": {"alias_name": name, "alias_label": "email"},
            "_update_existing_only": True,
            "segs": {"add": ["vip"]},
        }
        for name in ("a@x.io", "b@x.io")
    ]
    assert track.members("segs", "vip") == {("alias", "email", "a@x.io")}
    # b@x.io is nobody: the user is not created, and the answer's error is counted.
    assert ("alias", "email", "b@x.io") not in track.profiles
    assert report.match is not None
    assert report.match["errors"] == 1
    assert report.match["reasons"] == {UNKNOWN_USER: 1}
    assert report.match["first_errors"] == [
        {
            "reason": UNKNOWN_USER,
            "kind": "alias",
            "identifier": {"alias_name": "b@x.io", "alias_label": "email"},
        }
    ]


def test_mirror_sends_only_entries_and_exits_and_never_removes_foreign_members(
    track: TrackServer, warehouse: Warehouse
) -> None:
    track.add_users(*(f"u{i}" for i in range(300)))
    track.profiles[("external_id", "u299")] = {"cohorts": ["vip"]}  # added by someone else
    ids_table(warehouse, 0, 200)
    spec = spec_of(track, Source(table="t"), operation="mirror")
    first = run_export(spec)
    assert first.batches == 3  # 200 objects: 75 + 75 + 50
    assert track.members("cohorts", "vip") == users(0, 200) | {("external_id", "u299")}
    track.requests.clear()
    ids_table(warehouse, 50, 250)
    second = run_export(spec)
    sent = track.objects()
    removes = {o["external_id"] for o in sent if "remove" in o["cohorts"]}
    adds = {o["external_id"] for o in sent if "add" in o["cohorts"]}
    assert removes == {f"u{i}" for i in range(50)}
    assert adds == {f"u{i}" for i in range(200, 250)}
    assert track.members("cohorts", "vip") == users(50, 250) | {("external_id", "u299")}
    assert second.sent_total == 100
    assert second.match is not None and second.match["objects"] == 100


def test_mirror_guards_refuse_an_empty_result_and_too_many_removals(
    track: TrackServer, warehouse: Warehouse
) -> None:
    track.add_users(*(f"u{i}" for i in range(100)))
    ids_table(warehouse, 0, 100)
    spec = spec_of(track, Source(table="t"), operation="mirror")
    run_export(spec)
    sent = len(track.requests)
    ids_table(warehouse, 0, 0)
    with pytest.raises(CohortsyncError, match="no identifiers"):
        run_export(spec)
    ids_table(warehouse, 80, 100)
    with pytest.raises(CohortsyncError, match="--max-remove-pct"):
        run_export(spec)
    assert len(track.requests) == sent  # neither guard sent anything
    ids_table(warehouse, 0, 0)
    run_export(spec_of(track, Source(table="t"), operation="mirror", mirror=MirrorOptions(
        allow_empty=True, max_remove_pct=100
    )))  # fmt: skip
    assert track.members("cohorts", "vip") == set()


def test_batches_hold_at_most_75_objects(track: TrackServer, warehouse: Warehouse) -> None:
    track.add_users(*(f"u{i}" for i in range(1000)))
    ids_table(warehouse, 0, 1000)
    report = run_export(spec_of(track, Source(table="t"), threads=4))
    sizes = sorted(len(r.body["attributes"]) for r in track.requests)
    assert sizes == [25] + [75] * 13
    assert report.batches == 14 and report.requests == 14
    assert len({o["external_id"] for o in track.objects()}) == 1000
    assert track.members("cohorts", "vip") == users(0, 1000)


def test_a_result_of_only_device_ids_fails_before_anything_is_sent(
    track: TrackServer, warehouse: Warehouse
) -> None:
    warehouse("CREATE TABLE d AS SELECT * FROM (VALUES ('1a2b3c'), ('4d5f6g')) v(device_ids)")
    with pytest.raises(SourceError, match="only device_ids") as refused:
        run_export(spec_of(track, Source(table="d")))
    assert "/users/track cannot address a user by device id" in str(refused.value)
    assert "--type partner-cohort" in (refused.value.hint or "")
    assert track.requests == []


def test_mixed_kinds_skip_device_ids_warn_and_count_them(
    track: TrackServer, warehouse: Warehouse, caplog: pytest.LogCaptureFixture
) -> None:
    track.add_users("u1", "u2")
    warehouse(
        "CREATE TABLE m AS SELECT * FROM (VALUES ('u1', 'd1'), ('u2', 'd2'), ('u2', 'd2'),"
        " (NULL, 'd3')) v(user_ids, device_ids)"
    )
    report = run_export(spec_of(track, Source(table="m")))
    assert {o["external_id"] for o in track.objects()} == {"u1", "u2"}
    assert all("device_id" not in orjson.dumps(o).decode() for o in track.objects())
    assert report.unaddressable == {"device_ids": 3}
    data = report.to_dict()
    assert data["unaddressable"] == {"device_ids": 3}
    assert data["sent"] == {"user_ids": 2, "device_ids": 0}
    assert data["skipped_by_kind"]["device_ids"]["duplicate"] == 1
    assert any("skipping 3 device_ids" in r.getMessage() for r in caplog.records)


def test_a_rejected_key_stops_the_run_at_once_with_a_rest_key_hint(
    track: TrackServer, warehouse: Warehouse
) -> None:
    track.rest_api_key = "another-key-entirely"
    ids_table(warehouse, 0, 3)
    with pytest.raises(DestinationRefused, match="HTTP 401") as refused:
        run_export(spec_of(track, Source(table="t")))
    assert "users.track permission" in (refused.value.hint or "")
    assert len(track.requests) == 1  # not retried


def test_retries_and_pacing_by_the_rate_limit_headers(
    track: TrackServer, warehouse: Warehouse
) -> None:
    track.add_users(*(f"u{i}" for i in range(150)))
    ids_table(warehouse, 0, 150)
    track.rate_limit = (100, 60.0)
    track.script(429, "Rate limited", Retry_After="0.05")
    track.script(503, "Service Unavailable")
    report = run_export(spec_of(track, Source(table="t"), threads=1))
    assert [r.status for r in track.requests] == [429, 503, 201, 201]
    assert report.retries == 2 and report.requests == 4
    assert track.members("cohorts", "vip") == users(0, 150)


def test_requests_are_spread_over_the_announced_window_instead_of_bouncing_off_it(
    track: TrackServer, warehouse: Warehouse
) -> None:
    track.add_users(*(f"u{i}" for i in range(750)))
    ids_table(warehouse, 0, 750)  # 10 requests
    track.rate_limit = (4, 0.5)  # 4 requests per half second: 3 windows at least
    started = time.monotonic()
    run_export(spec_of(track, Source(table="t"), threads=1))
    assert time.monotonic() - started >= 1.0
    assert [r.status for r in track.requests] == [201] * 10
    assert track.members("cohorts", "vip") == users(0, 750)


def test_runs_show_and_json_hold_the_match_report(track: TrackServer, warehouse: Warehouse) -> None:
    track.add_users("u0")
    ids_table(warehouse, 0, 3)
    done = run_cli(
        "export", "--type", "rest-attribute", "--endpoint", track.url, "--cohort-id", "vip",
        "--table", "t", "--json",
    )  # fmt: skip
    report = orjson.loads(done.stdout)
    assert report["match"]["errors"] == 2
    assert report["match"]["reasons"] == {UNKNOWN_USER: 2}
    assert REST_API_KEY not in done.stdout + done.stderr
    [run] = orjson.loads(run_cli("runs", "list", "--json").stdout)
    shown = orjson.loads(run_cli("runs", "show", run["id"], "--json").stdout)
    assert shown["report"]["match"] == report["match"]
    assert shown["partner"] == "rest-attribute:array:cohorts"
    assert REST_API_KEY not in orjson.dumps(shown).decode()
    text = run_cli("runs", "show", run["id"]).stdout
    assert "2 errors" in text


def test_dry_run_prints_the_exact_plan_with_the_key_masked(
    track: TrackServer, warehouse: Warehouse
) -> None:
    ids_table(warehouse, 0, 100)
    done = run_cli(
        "export", "--type", "rest-attribute", "--endpoint", track.url, "--cohort-id", "vip",
        "--table", "t", "--attribute-mode", "boolean", "--dry-run", "--json",
    )  # fmt: skip
    plan: dict[str, Any] = orjson.loads(done.stdout)["plan"]
    assert track.requests == []
    assert plan["batches"] == 2 and plan["requests"] == 2
    assert plan["url"] == f"{track.url}/users/track"
    assert plan["headers"] == {"Authorization": f"Bearer {REST_API_KEY[:4]}…"}
    assert (plan["attribute"], plan["attribute_mode"]) == ("cohort_vip", "boolean")
    objects = plan["first_request"]["attributes"]
    assert len(objects) == 75
    assert objects[0] == {
        "external_id": objects[0]["external_id"],
        "_update_existing_only": True,
        "cohort_vip": True,
    }
    assert REST_API_KEY not in done.stdout + done.stderr


def test_the_key_comes_from_stdin_and_never_from_the_command_line(
    track: TrackServer, warehouse: Warehouse
) -> None:
    track.add_users("u0")
    ids_table(warehouse, 0, 1)
    base = ["export", "--type", "rest-attribute", "--endpoint", track.url, "--cohort-id", "vip"]
    done = run_cli(
        *base, "--table", "t", "--rest-api-key", "-", stdin=REST_API_KEY + "\n",
        env={"COHORTSYNC_REST_API_KEY": None},
    )  # fmt: skip
    assert track.members("cohorts", "vip") == {("external_id", "u0")}
    literal = run_cli(*base, "--table", "t", "--rest-api-key", REST_API_KEY, expect=2)
    assert "takes '-'" in literal.stderr
    missing = run_cli(*base, "--table", "t", env={"COHORTSYNC_REST_API_KEY": None}, expect=2)
    assert "COHORTSYNC_REST_API_KEY" in missing.stderr
    assert REST_API_KEY not in done.stdout + done.stderr + literal.stderr


def test_an_unknown_authentication_and_partner_options_are_refused_with_this_type(
    track: TrackServer, warehouse: Warehouse
) -> None:
    ids_table(warehouse, 0, 1)
    base = ["export", "--type", "rest-attribute", "--cohort-id", "vip", "--table", "t"]
    saved = run_cli(*base, "--auth", "braze-prod", expect=2)
    assert "no authentication named 'braze-prod'" in saved.stderr
    partner = run_cli(*base, "--endpoint", track.url, "--data-import-key", "-", expect=2)
    assert "--data-import-key and --partner belong to --type partner-cohort" in partner.stderr
    reserved = run_cli(*base, "--endpoint", track.url, "--attribute", "email", expect=2)
    assert "not a custom attribute name" in reserved.stderr
    named = run_cli(*base, "--endpoint", track.url, "--cohort-name", "VIP", expect=2)
    assert "--cohort-name names a partner cohort" in named.stderr
    assert track.requests == []


def test_partner_and_attribute_deliveries_of_one_cohort_id_are_separate_cohorts(
    track: TrackServer, warehouse: Warehouse
) -> None:
    """Each attribute has its own mirror snapshot: another attribute starts from a first run."""
    track.add_users(*(f"u{i}" for i in range(10)))
    ids_table(warehouse, 0, 10)
    run_export(spec_of(track, Source(table="t"), operation="mirror"))
    other = run_export(spec_of(track, Source(table="t"), operation="mirror", attribute="other"))
    assert other.mirror is not None and other.mirror["first_run"]
    assert track.members("other", "vip") == users(0, 10)


def test_an_invalid_attribute_is_refused_before_reading(track: TrackServer) -> None:
    with pytest.raises(ConfigError, match="not a custom attribute name"):
        run_export(spec_of(track, Source(table="nowhere"), attribute="$email"))


def test_answers_errors_are_read_as_objects_or_strings_and_named_by_index() -> None:
    from cohortsync.export.rest_attribute import read_track_answer

    request = orjson.dumps({"attributes": [{"external_id": "a"}, {"external_id": "b"}]})
    as_objects = read_track_answer(
        b'{"message":"success","errors":[{"type":"bad thing","input_array":"attributes",'
        b'"index":1}]}',
        request,
    )
    assert (as_objects.errors, dict(as_objects.reasons)) == (1, {"bad thing": 1})
    assert as_objects.first == ({"reason": "bad thing", "kind": "user_ids", "identifier": "b"},)
    as_strings = read_track_answer(
        b'{"message":"success","errors":["attributes[0]: no such user"]}', request
    )
    assert dict(as_strings.reasons) == {"no such user": 1}
    assert as_strings.first[0]["identifier"] == "a"
    assert read_track_answer(b'{"message":"success"}', request).errors == 0
    assert read_track_answer(b"not json", request).errors == 0


def test_a_device_column_with_no_value_skips_nothing(
    track: TrackServer, warehouse: Warehouse
) -> None:
    track.add_users("u1")
    warehouse(
        "CREATE TABLE n AS SELECT * FROM (VALUES ('u1', NULL::VARCHAR)) v(user_ids, device_ids)"
    )
    report = run_export(spec_of(track, Source(table="n")))
    assert report.unaddressable == {"device_ids": 0}
    assert track.members("cohorts", "vip") == {("external_id", "u1")}
