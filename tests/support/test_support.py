"""The shared helpers: what a failing check says, which environment a command gets, ports
that tests running side by side cannot take from each other, and whole screenshots."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from support import (
    browser,
    cli_environment,
    run_cli,
    run_cli_in_process,
    served_url,
    served_url_on_stderr,
    unused_port,
    wait_for,
)

UNKNOWN_RUN = ("runs", "show", "nope")


def test_the_subprocess_and_the_in_process_runner_end_alike(home: Path) -> None:
    outside = run_cli(*UNKNOWN_RUN, expect=2)
    inside = run_cli_in_process(*UNKNOWN_RUN, expect=2)
    assert (inside.returncode, inside.stdout, inside.stderr) == (2, outside.stdout, outside.stderr)
    assert run_cli_in_process("runs", "list", "--json").json() == []


def test_an_unexpected_exit_code_fails_showing_the_command_and_its_stderr(home: Path) -> None:
    with pytest.raises(
        AssertionError,
        match=r"^cohortsync runs show nope exited 2, expected 0\n--- stderr\n"
        r"error: no export run with id 'nope'",
    ):
        run_cli_in_process(*UNKNOWN_RUN)


def test_a_home_alone_drops_the_test_settings_and_env_unsets_with_none(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COHORTSYNC_PARTNER_API_KEY", "partner-key")
    monkeypatch.setenv("SOME_VARIABLE", "set")
    inherited = cli_environment()
    assert inherited["COHORTSYNC_HOME"] == str(home)
    assert inherited["COHORTSYNC_PARTNER_API_KEY"] == "partner-key"
    alone = cli_environment(tmp_path, {"SOME_VARIABLE": None, "OTHER": "1"})
    assert alone["COHORTSYNC_HOME"] == str(tmp_path)
    assert "COHORTSYNC_PARTNER_API_KEY" not in alone and "SOME_VARIABLE" not in alone
    assert alone["OTHER"] == "1"


def test_wait_for_returns_what_came_and_names_what_did_not() -> None:
    start = time.monotonic()
    assert wait_for(lambda: time.monotonic() - start > 0.05 and "came", 5, what="it") == "came"
    with pytest.raises(AssertionError, match=r"^timed out after 0\.1 s waiting for the moon$"):
        wait_for(lambda: False, 0.1, what="the moon")


def test_wait_for_stops_when_the_process_meant_to_bring_it_ended() -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stderr.write('boom'); sys.exit(3)"],
        stderr=subprocess.PIPE,
        text=True,
    )
    start = time.monotonic()
    with pytest.raises(
        AssertionError, match=r"^the command ended \(exit 3\) before the port\n--- stderr\nboom$"
    ):
        wait_for(lambda: False, 60, what="the port", process=process)
    assert time.monotonic() - start < 30


def test_an_unused_port_refuses_connections_and_no_server_can_take_it() -> None:
    with unused_port() as port:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5)
        with socket.socket() as server:  # as a server binds: SO_REUSEADDR, then listen
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            with pytest.raises(OSError, match="in use"):
                server.bind(("127.0.0.1", port))


SAYS_WHERE = (
    "import sys; sys.stderr.write('store: x\\nserving on http://127.0.0.1:4321 (OpenAPI "
    "document at /openapi.json); Ctrl-C stops\\n'); sys.stderr.flush(); sys.stdin.read()"
)


def test_served_url_reads_the_serving_line_from_the_pipe_or_the_log(tmp_path: Path) -> None:
    piped = subprocess.Popen(
        [sys.executable, "-c", SAYS_WHERE],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert served_url_on_stderr(piped) == (
            "http://127.0.0.1:4321",
            "store: x\nserving on http://127.0.0.1:4321 (OpenAPI document at /openapi.json); "
            "Ctrl-C stops\n",
        )
    finally:
        piped.communicate("", timeout=30)
    log = tmp_path / "serve.log"
    with log.open("w") as stderr:
        logged = subprocess.Popen(
            [sys.executable, "-c", SAYS_WHERE], stdin=subprocess.PIPE, stderr=stderr, text=True
        )
    try:
        assert served_url(logged, log) == "http://127.0.0.1:4321"
    finally:
        logged.communicate("", timeout=30)


def test_served_url_fails_with_what_a_command_said_before_it_ended(tmp_path: Path) -> None:
    says_no = "import sys; sys.stderr.write('error: cannot listen\\n'); sys.exit(2)"
    ended = subprocess.Popen([sys.executable, "-c", says_no], stderr=subprocess.PIPE, text=True)
    with pytest.raises(
        AssertionError,
        match=r"^the command ended \(exit 2\) before it said where it serves\n"
        r"--- stderr\nerror: cannot listen\n$",
    ):
        served_url_on_stderr(ended)
    log = tmp_path / "serve.log"
    with log.open("w") as stderr:
        logged = subprocess.Popen([sys.executable, "-c", says_no], stderr=stderr)
    with pytest.raises(AssertionError, match=r"^the command ended \(exit 2\) before the service"):
        served_url(logged, log)


class FakePage:
    """What :func:`support.browser.screenshot` asks of a Playwright page."""

    def __init__(self, image: bytes | Exception) -> None:
        self.image = image

    def screenshot(self, *, full_page: bool) -> bytes:
        assert full_page
        if isinstance(self.image, Exception):
            raise self.image
        return self.image


def test_a_screenshot_appears_whole_under_its_name_or_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(browser, "SCREENSHOTS", tmp_path / "shots")
    path = browser.screenshot(FakePage(b"\x89PNG first"), "console home/empty")
    assert path == tmp_path / "shots" / "console-home-empty.png"
    assert path.read_bytes() == b"\x89PNG first" and path.stat().st_mode & 0o777 == 0o644
    browser.screenshot(FakePage(b"\x89PNG second"), "console home/empty")
    assert path.read_bytes() == b"\x89PNG second"
    with pytest.raises(RuntimeError, match="page closed"):
        browser.screenshot(FakePage(RuntimeError("page closed")), "console-other")
    assert sorted(p.name for p in path.parent.iterdir()) == ["console-home-empty.png"]
    long_ids = [f"test_x[{'a' * 300}-{end}]" for end in (1, 2)]  # over a file name's 255 bytes
    kept = [browser.screenshot(FakePage(b"\x89PNG"), name) for name in long_ids]
    assert kept[0] != kept[1] and all(len(p.name) < 255 and p.exists() for p in kept)


def test_a_failed_tests_screenshot_is_named_by_its_whole_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tests of one name in two files (console and dashboard ``test_access.py``) keep one each."""
    monkeypatch.setattr(browser, "SCREENSHOTS", tmp_path / "shots")

    class Context:
        def set_default_timeout(self, timeout: int) -> None: ...

        def new_page(self) -> FakePage:
            return FakePage(b"\x89PNG failed")

        def close(self) -> None: ...

    class Browser:
        def new_context(self, viewport: dict[str, int]) -> Context:
            return Context()

    for nodeid in ["console/test_access.py::test_login[a]", "dashboard/test_access.py::test_login"]:
        node = SimpleNamespace(nodeid=nodeid, report_call=SimpleNamespace(failed=True))
        with browser.fresh_page(Browser(), node):
            pass
    assert sorted(p.name for p in (tmp_path / "shots").iterdir()) == [
        "FAILED-console-test_access.py-test_login-a.png",
        "FAILED-dashboard-test_access.py-test_login.png",
    ]


SCREENSHOT_NAME = re.compile(r"""\bscreenshot\(\s*[\w.]+,\s*["']([^"'{}]+)["']\s*\)""")


def test_no_two_screenshots_of_the_suite_share_a_name() -> None:
    """Workers run tests at once: a name taken twice would keep only one of the pictures."""
    seen: dict[str, list[str]] = {}
    for path in sorted(Path(__file__).parents[1].rglob("test_*.py")):
        for name in SCREENSHOT_NAME.findall(path.read_text()):
            seen.setdefault(name, []).append(path.name)
    assert len(seen) > 20  # the pattern still finds the suite's screenshots
    assert {name: files for name, files in seen.items() if len(files) > 1} == {}
