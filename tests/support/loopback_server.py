"""The HTTP servers the tests run in a thread on 127.0.0.1: one place for their plumbing.

Each test server (the partner API, ``/users/track``, the webhook receiver)
is a :class:`LoopbackServer` with its own request handler: one thread per
connection (``ThreadingHTTPServer``), so requests in flight at once are
served at once, and a short poll, so :meth:`LoopbackServer.stop` returns
at once.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class LoopbackServer:
    """Serves ``handler`` on 127.0.0.1:``port`` (0: any free port) from :meth:`start` on."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], *, port: int = 0) -> None:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
