"""Stop a run cleanly on SIGTERM or Ctrl-C: finish the requests in flight, then stop.

Killing a run between a server's 2xx and its checkpoint would make a resumed
run send that batch again. While batches are being sent, the first SIGTERM or
SIGINT only stops the hand-out of new batches: the requests in flight get
their answers, their acknowledgements are recorded, and the run ends as
``interrupted`` (exit code 6), ready to resume. Outside the sending phase, or
on a second signal, the signal interrupts at once (as ``KeyboardInterrupt``),
which the run also records as ``interrupted``.

Handlers are installed only in the main thread (Python delivers signals
there); a run started from another thread keeps the process's handlers. A
handler the caller had installed is restored afterwards and, if a signal came
during the run, called once with it.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType, TracebackType
from typing import Any, TypeVar

T = TypeVar("T")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class GracefulStop:
    """Signal handling for one run; a context manager around the whole run."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name: str | None = None
        self._sending = False
        self._previous: dict[int, Any] = {}
        self._received: int | None = None

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        previous, self._previous = self._previous, {}
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        # A caller's own handler (a scheduler, say) still learns of the stop request.
        received = self._received
        handler = previous.get(received) if received is not None else None
        if callable(handler) and handler is not signal.default_int_handler:
            handler(received, None)

    @contextmanager
    def sending(self) -> Iterator[None]:
        """The phase in which a signal waits for the requests in flight."""
        self._sending = True
        try:
            yield
        finally:
            self._sending = False

    def batches(self, items: Iterator[T]) -> Iterator[T]:
        """``items`` until a stop is requested: the senders then run out of work."""
        for item in items:
            if self.requested:
                return
            yield item

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signal_name = signal.Signals(signum).name
        self._received = signum
        if self._sending and not self.requested:
            self.requested = True
            return
        self.requested = True
        raise KeyboardInterrupt(self.signal_name)
