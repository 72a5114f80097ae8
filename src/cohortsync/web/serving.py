"""Serving an app with uvicorn: on a socket bound first, in the foreground or in a thread.

The socket is bound before uvicorn starts, so a busy port is one
:class:`ConfigError` line, and ``port=0`` yields the free port the system
picked (tests, and ``--port 0``).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from cohortsync.errors import CohortsyncError, ConfigError


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``, or a ConfigError saying why not.

    The protocol is named (``IPPROTO_TCP``, not 0): asyncio turns Nagle's
    algorithm off (TCP_NODELAY) only on connections of a socket whose
    protocol says TCP, and without it every kept-alive request waits about
    40 ms for a delayed acknowledgement.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as error:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port}: {error.strerror}",
            hint="pick another --port, or stop what listens there",
        ) from None
    sock.set_inheritable(True)
    return sock


def base_url(sock: socket.socket) -> str:
    """``http://HOST:PORT`` of a bound socket."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@contextmanager
def running_in_thread(server: uvicorn.Server, sock: socket.socket, *, name: str) -> Iterator[str]:
    """Run ``server`` on ``sock`` in a thread; yield its base URL once it accepts connections.

    The server is stopped and the thread joined when the block ends.

    Raises:
        CohortsyncError: the server did not start within 15 seconds.
    """
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=name, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise CohortsyncError(f"the {name} did not start on {base_url(sock)}")
            time.sleep(0.01)
        yield base_url(sock)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
