"""A fault-injecting HTTP/1.1 proxy on 127.0.0.1, between an exporter and a server.

It forwards each request to the upstream server as it came and passes the
answer back, except for the requests the test scripts a fault for, counted
by their order of arrival among the requests whose path ends with a given
suffix (``/cohorts/users`` by default):

* ``drop``: the connection is reset as soon as the request arrived; the
  server never sees it;
* ``reset``: the request reaches the server (which applies it), half of the
  answer reaches the client, then the connection is reset (RST);
* ``stall``: the request reaches the server, the answer is held for
  ``stall_s`` seconds (past the client's timeout), then the connection is
  closed without it;
* ``drip``: the whole answer is sent one byte at a time, ``drip_s`` apart;
* ``duplicate``: the request reaches the server twice, one after the other;
  the client gets the second answer.

Real sockets and threads, one thread per client connection, keep-alive as
the client wants it; a new upstream connection per request, to
``upstream_port``, which a test may change (a restarted server) while the
client keeps the proxy's address. When the upstream is down or goes away
mid-request, the client's connection is closed without an answer.
"""

from __future__ import annotations

import http.client
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import BinaryIO, Literal

Fault = Literal["drop", "reset", "stall", "drip", "duplicate"]

# Hop-by-hop headers, and those the proxy writes itself.
_NOT_FORWARDED = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})


@dataclass
class Injected:
    """A fault the proxy applied: to which request (its order among the matching ones)."""

    fault: Fault
    index: int
    path: str


@dataclass
class FaultProxy:
    """See the module docstring. ``faults`` maps a request's index (0-based) to its fault."""

    upstream_host: str
    upstream_port: int
    faults: dict[int, Fault] = field(default_factory=dict)
    path_suffix: str = "/cohorts/users"
    stall_s: float = 3.0
    drip_s: float = 0.003
    injected: list[Injected] = field(default_factory=list)
    forwarded: int = 0  # requests sent upstream, duplicates included

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._seen = 0
        self._stopping = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self._thread = threading.Thread(target=self._accept, name="fault-proxy", daemon=True)

    @classmethod
    def to(cls, url: str, **options: object) -> FaultProxy:
        """A proxy to the server at ``http://HOST:PORT``, started."""
        host, port = url.removeprefix("http://").rstrip("/").split(":")
        proxy = cls(host, int(port), **options)  # type: ignore[arg-type]
        proxy._thread.start()
        return proxy

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def script(self, faults: dict[int, Fault]) -> None:
        """Replace the script: faults by index, counted from now on."""
        with self._lock:
            self.faults = dict(faults)
            self._seen = 0

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        self._listener.close()

    # -- the proxying --------------------------------------------------------------

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = client.makefile("rb")
        try:
            while not self._stopping.is_set():
                request = _read_request(reader)
                if request is None:
                    return
                if not self._answer(client, *request):
                    return
        except (OSError, http.client.HTTPException):  # either side went away: so does this
            return
        finally:
            reader.close()
            client.close()

    def _fault_for(self, path: str) -> Fault | None:
        if not path.endswith(self.path_suffix):
            return None
        with self._lock:
            index = self._seen
            self._seen += 1
            fault = self.faults.get(index)
            if fault is not None:
                self.injected.append(Injected(fault, index, path))
        return fault

    def _answer(self, client: socket.socket, method: str, path: str, headers: dict[str, str],
                body: bytes) -> bool:  # fmt: skip
        """Answer one request; ``False`` when the connection is done with."""
        fault = self._fault_for(path)
        if fault == "drop":
            _reset(client)
            return False
        answer = self._forward(method, path, headers, body)
        if fault == "duplicate":
            answer = self._forward(method, path, headers, body)
        if fault == "reset":
            client.sendall(answer[: len(answer) - max(1, len(answer) // 4)])
            _reset(client)
            return False
        if fault == "stall":
            self._stopping.wait(self.stall_s)
            return False
        if fault == "drip":
            for i in range(len(answer)):
                client.sendall(answer[i : i + 1])
                time.sleep(self.drip_s)
            return True
        client.sendall(answer)
        return True

    def _forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> bytes:
        """Send the request upstream; the raw HTTP/1.1 answer to give the client."""
        connection = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=30)
        try:
            sent = {k: v for k, v in headers.items() if k.lower() not in _NOT_FORWARDED}
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            content = response.read()
            with self._lock:
                self.forwarded += 1
            lines = [f"HTTP/1.1 {response.status} {response.reason}"]
            lines += [
                f"{name}: {value}"
                for name, value in response.getheaders()
                if name.lower() not in _NOT_FORWARDED
            ]
            lines += [f"Content-Length: {len(content)}", "", ""]
            return "\r\n".join(lines).encode("latin-1") + content
        finally:
            connection.close()


def _reset(client: socket.socket) -> None:
    """Make the coming close() send RST, not FIN: SO_LINGER on, with a zero timeout."""
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _read_request(reader: BinaryIO) -> tuple[str, str, dict[str, str], bytes] | None:
    """One request from the client: method, path, headers, body; ``None`` at its end."""
    line = reader.readline()
    if not line.strip():
        return None
    method, path, _version = line.decode("latin-1").split(" ", 2)
    headers: dict[str, str] = {}
    while (header := reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = header.decode("latin-1").partition(":")
        headers[name.strip()] = value.strip()
    length = int(next((v for k, v in headers.items() if k.lower() == "content-length"), "0"))
    body = reader.read(length) if length else b""
    return method, path, headers, body
