"""The receiving service and clients that misbehave: no traceback, one line per incident.

A real ``cohortsync braze serve`` subprocess, its stderr captured in a file.
Each client mistake (malformed JSON, wrong content type, a huge body, a body
that stalls or trickles, a disconnect half-way) is answered or dropped, and
the log never holds a traceback; a stalled or vanished client is exactly one
line naming the method, the path, the client's address and what happened.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from support import run_cli, served_url, wait_for

BODY_TIMEOUT = 1.0
PATH = "/partners/treasuredata/cohorts/users"


class Served:
    def __init__(self, port: int, log: Path) -> None:
        self.port = port
        self.log = log

    def lines(self) -> list[str]:
        return [line for line in self.log.read_text().splitlines() if line.strip()]

    def incidents(self) -> list[str]:
        return [line for line in self.lines() if line.startswith(("WARNING", "ERROR"))]

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    log = tmp_path / "serve.log"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("COHORTSYNC_")}
    environment["COHORTSYNC_HOME"] = str(tmp_path / "home")
    with log.open("w") as stderr:
        db = f"sqlite:///{tmp_path / 'braze.db'}"
        command = [sys.executable, "-m", "cohortsync", "braze", "serve", "--port", "0"]
        command += ["--db", db, "--body-timeout", str(BODY_TIMEOUT)]
        process = subprocess.Popen(
            command,
            stderr=stderr,
            stdout=subprocess.DEVNULL,
            env=environment,
        )
    try:
        # Printed once the socket listens: connections queue until uvicorn takes them.
        port = int(served_url(process, log).rsplit(":", 1)[1])
        yield Served(port, log)
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert "Traceback" not in log.read_text(), log.read_text()


def _head(length: int | None = 1000, content_type: str = "application/json") -> bytes:
    lines = [f"POST {PATH} HTTP/1.1", "Host: test", f"Content-Type: {content_type}"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _incidents(served: Served, count: int) -> list[str]:
    """The log's incident lines, once ``count`` are there and a moment more adds none."""
    wait_for(
        lambda: len(served.incidents()) >= count, 10, what=f"{count} incident lines in the log"
    )
    time.sleep(0.3)  # and no more than that
    return served.incidents()


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_disconnect_while_sending_a_body_is_one_line(served: Served) -> None:
    sock = served.connect()
    port = sock.getsockname()[1]
    sock.sendall(_head() + b'{"cohort_id": "c1", ')
    time.sleep(0.2)
    sock.close()
    [line] = _incidents(served, 1)
    assert f"POST {PATH} from 127.0.0.1:{port}" in line
    assert "disconnected while sending its body" in line


def test_a_stalled_body_gets_408_and_is_dropped(served: Served) -> None:
    sock = served.connect()
    sock.sendall(_head() + b'{"cohort_id": ')
    started = time.monotonic()
    answer = _read_all(sock)  # the server closes the connection after answering
    waited = time.monotonic() - started
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b"Request body not received within 1 seconds" in answer
    assert BODY_TIMEOUT * 0.8 < waited < BODY_TIMEOUT + 5
    [line] = _incidents(served, 1)
    assert f"POST {PATH} from 127.0.0.1:" in line and "no complete body within 1 s" in line


def test_a_trickling_body_is_a_stall_too(served: Served) -> None:
    sock = served.connect()
    sock.sendall(_head(200))
    started = time.monotonic()
    answer = b""
    sock.settimeout(0.2)
    while time.monotonic() - started < 6:
        try:
            sock.sendall(b" ")
        except OSError:
            break
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            break
        if not chunk:  # closed by the server
            break
        answer += chunk
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert time.monotonic() - started < 5
    assert len(_incidents(served, 1)) == 1


def test_client_mistakes_are_answered_without_a_log_line(served: Served) -> None:
    base = f"http://127.0.0.1:{served.port}{PATH}"
    malformed = requests.post(
        base, data=b"{not json", headers={"Content-Type": "application/json"}, timeout=10
    )
    assert malformed.status_code == 400 and "not valid JSON" in malformed.json()["message"]
    wrong_type = requests.post(base, data=b"a=b", timeout=10)
    assert wrong_type.status_code == 415
    huge = requests.post(
        base,
        data=b"[" + b"1," * (3 * 1024 * 1024) + b"1]",
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert huge.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the size is checked while reading
        for _ in range(80):
            yield b" " * 65536

    chunked = requests.post(
        base, data=chunks(), headers={"Content-Type": "application/json"}, timeout=30
    )
    assert chunked.status_code == 413
    not_an_object = requests.post(base, json=[1, 2], timeout=10)
    assert not_an_object.status_code == 400
    assert served.incidents() == []


def test_disconnect_before_the_answer_leaves_no_traceback(served: Served) -> None:
    for _ in range(5):
        sock = served.connect()
        body = b'{"partner_api_key": "x", "client_secret": "y", "cohort_id": "c"}'
        sock.sendall(_head(len(body)) + body)
        sock.close()  # gone before the answer is written
    time.sleep(1)
    requests.post(f"http://127.0.0.1:{served.port}{PATH}", json={}, timeout=10)
    assert all("Traceback" not in line for line in served.lines())
    assert all(line.startswith(("INFO", "WARNING", "store:", "serving")) for line in served.lines())


def test_body_timeout_is_an_option_with_help() -> None:
    done = run_cli("braze", "serve", "--help", expect=None)
    assert done.returncode == 0
    assert "--body-timeout" in done.stdout and "408" in done.stdout
