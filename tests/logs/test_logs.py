"""The log setup of the long-running commands: JSON lines, fields, redaction, the text default.

The formatter and filters are exercised on real ``logging`` records; the
commands' own output is checked by running them (``cohortsync braze serve``,
``cohortsync console``, ``cohortsync scheduler``) as real processes.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
from pathlib import Path

import orjson
import pytest

from cohortsync import logs
from cohortsync.webhooks import webhook_origin
from support import cli_environment, cohortsync_command, run_cli, served_url_on_stderr


def record(name: str, message: str, *args: object, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord(name, logging.INFO, __file__, 1, message, args or None, None)
    made.__dict__.update(extra)
    return made


def formatted(made: logging.LogRecord) -> dict[str, object]:
    entry = orjson.loads(logs.JsonFormatter().format(made))
    assert isinstance(entry, dict)
    return entry


def test_a_json_line_has_time_in_utc_level_logger_message_and_its_fields() -> None:
    entry = formatted(record("cohortsync.scheduler", "running %s", "query:a", job="query:a"))
    assert entry["level"] == "INFO"
    assert entry["logger"] == "cohortsync.scheduler"
    assert entry["message"] == "running query:a"
    assert entry["job"] == "query:a"
    assert isinstance(entry["time"], str) and entry["time"].endswith("Z")
    assert "T" in entry["time"] and "args" not in entry and "msg" not in entry


def test_the_context_adds_fields_to_every_line_of_its_block_and_only_there() -> None:
    with logs.log_context(job="activation:gold"):
        logs.bind(run_id="R1")
        inside = formatted(record("cohortsync.export.run", "sending"))
        with logs.log_context(status="succeeded"):
            nested = formatted(record("x", "end"))
    after = formatted(record("x", "later"))
    assert (inside["job"], inside["run_id"]) == ("activation:gold", "R1")
    assert nested["status"] == "succeeded" and nested["run_id"] == "R1"
    assert "job" not in after and "run_id" not in after


def test_the_context_of_one_thread_is_not_another_threads() -> None:
    seen: dict[str, object] = {}

    def other() -> None:
        seen.update(formatted(record("x", "elsewhere")))

    with logs.log_context(job="query:mine"):
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    assert "job" not in seen


def test_an_exception_is_one_field_of_the_same_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        made = logging.LogRecord("x", logging.ERROR, __file__, 1, "crashed", None, sys.exc_info())
    entry = formatted(made)
    assert entry["level"] == "ERROR"
    assert isinstance(entry["exception"], str) and "ValueError: boom" in entry["exception"]


def test_an_access_line_gives_client_method_route_and_status_with_tokens_redacted() -> None:
    access = record(
        "uvicorn.access",
        '%s - "%s %s HTTP/%s" %d',
        "127.0.0.1:5000",
        "GET",
        "/dashboard/login/link?token=s3cret-token&next=/x",
        "1.1",
        303,
    )
    assert logs.RedactQuery().filter(access)
    entry = formatted(access)
    assert "s3cret-token" not in orjson.dumps(entry).decode()
    assert entry["route"] == "/dashboard/login/link?token=[redacted]&next=/x"
    assert (entry["client"], entry["method"], entry["status"]) == ("127.0.0.1:5000", "GET", 303)


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("/segments/list", "/segments/list"),
        ("/segments/list?page=2", "/segments/list?page=2"),
        ("/x?api_key=k1&KEY=k2", "/x?api_key=[redacted]&KEY=[redacted]"),
        ("/x?client_secret=k3&mykey=v", "/x?client_secret=[redacted]&mykey=v"),
        ("/x?password=p&token=", "/x?password=[redacted]&token=[redacted]"),
    ],
)  # fmt: skip
def test_credential_parameters_of_a_path_are_hidden(path: str, shown: str) -> None:
    assert logs.redacted_path(path) == shown


def test_text_access_lines_are_uvicorns_own_with_the_redaction_filter() -> None:
    config = logs.uvicorn_log_config("text")
    assert config["formatters"]["access"]["()"] == "uvicorn.logging.AccessFormatter"
    assert config["loggers"]["uvicorn.access"]["filters"] == ["redact_query"]
    json_config = logs.uvicorn_log_config("json")
    assert json_config["loggers"]["uvicorn.access"]["propagate"] is True
    assert "handlers" not in json_config or not json_config.get("handlers")


def test_a_webhook_is_logged_by_its_origin_only() -> None:
    assert webhook_origin("https://hooks.example.com/services/T0/B0/s3cr3t?x=1") == (
        "https://hooks.example.com"
    )
    assert webhook_origin("http://127.0.0.1:8080/hook/token") == "http://127.0.0.1:8080"


def test_an_unknown_log_format_is_a_usage_error(home: Path) -> None:
    done = run_cli("scheduler", "--once", "--log-format", "xml", expect=2)
    assert "--log-format" in done.stderr
    by_variable = run_cli("scheduler", "--once", env={"COHORTSYNC_LOG_FORMAT": "yaml"}, expect=2)
    assert "COHORTSYNC_LOG_FORMAT" in by_variable.stderr or "log-format" in by_variable.stderr


def test_the_default_text_output_of_serve_is_unchanged(home: Path, tmp_path: Path) -> None:
    process = subprocess.Popen(
        cohortsync_command("braze", "serve", "--port", "0", "--db", f"sqlite:///{tmp_path}/b.db"),
        env=cli_environment(),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url, printed = served_url_on_stderr(process)
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    assert printed.splitlines()[0] == f"store: sqlite:///{tmp_path}/b.db; rate limit 250000/hour"
    assert url.startswith("http://127.0.0.1:")


def test_a_command_that_fails_in_json_ends_with_a_json_error_line(home: Path) -> None:
    with subprocess.Popen(
        cohortsync_command("braze", "serve", "--port", "0", "--db", "mysql://nowhere/x"),
        env=cli_environment(env={"COHORTSYNC_LOG_FORMAT": "json"}),
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 2
    [line] = stderr.strip().splitlines()
    entry = orjson.loads(line)
    assert entry["level"] == "ERROR" and entry["exit_code"] == 2
    assert entry["message"].startswith("error: unsupported store URL")
