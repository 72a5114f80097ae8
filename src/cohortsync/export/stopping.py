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

A run in another thread (a scheduler's job) is stopped the same way from
outside: :func:`request_stop` with the thread's id asks the run of that thread
for a graceful stop. While it is sending, the stop is taken as a first signal
is (no new batches; the requests in flight finish and are recorded) and the
call returns ``True``. Otherwise it returns ``False``: the run is not sending,
so the caller interrupts the thread itself, and a run that had not begun
sending yet never starts (:meth:`GracefulStop.sending` refuses to).
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

# Re-entrant: the main thread's signal handler may run while that thread holds it.
_registry_lock = threading.RLock()
_active: dict[int, GracefulStop] = {}  # thread id -> the stop of the run inside it
_pending: dict[int, str] = {}  # thread id -> a stop requested before its run began


def request_stop(thread_id: int, signal_name: str = "SIGTERM") -> bool:
    """Ask the run in thread ``thread_id`` to stop gracefully; thread-safe.

    Returns ``True`` when the run is sending and takes the request: it hands
    out no new batch, lets the requests in flight finish and records them, then
    ends ``interrupted``. Returns ``False`` when the thread has no run in its
    sending phase (not begun, still reading, or already stopping): the request
    is remembered, so a run of that thread will not start sending, and the
    caller interrupts the thread the forceful way if it wants it to stop now.
    """
    with _registry_lock:
        stop = _active.get(thread_id)
        if stop is None:
            _pending[thread_id] = signal_name
            return False
        return stop.request_stop(signal_name)


def clear_stop_request(thread_id: int) -> None:
    """Forget a stop requested for ``thread_id`` (its job is over; the thread is reused)."""
    with _registry_lock:
        _pending.pop(thread_id, None)


class GracefulStop:
    """Signal handling for one run; a context manager around the whole run."""

    def __init__(self) -> None:
        self._thread_id = 0
        self._outer: GracefulStop | None = None
        self.requested = False
        self.signal_name: str | None = None
        self._sending = False
        self._previous: dict[int, Any] = {}
        self._received: int | None = None

    def __enter__(self) -> GracefulStop:
        self._thread_id = threading.get_ident()
        with _registry_lock:
            self._outer = _active.get(self._thread_id)
            _active[self._thread_id] = self
            pending = _pending.get(self._thread_id)
            if pending is not None:
                self.requested = True
                self.signal_name = pending
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
        with _registry_lock:
            if self._outer is None:
                _active.pop(self._thread_id, None)
            else:
                _active[self._thread_id] = self._outer
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
        """The phase in which a signal waits for the requests in flight.

        Raises ``KeyboardInterrupt`` instead of starting when a stop was
        already requested (from another thread, before the run got here).
        """
        with _registry_lock:
            if self.requested:
                raise KeyboardInterrupt(self.signal_name)
            self._sending = True
        try:
            yield
        finally:
            with _registry_lock:
                self._sending = False

    def request_stop(self, signal_name: str = "SIGTERM") -> bool:
        """Ask this run to stop, from any thread; see :func:`request_stop`.

        ``True``: the run is sending and stops gracefully. ``False``: it is not
        sending, or a stop was already requested (a second request is a second
        signal: the caller may interrupt at once).
        """
        with _registry_lock:
            graceful = self._sending and not self.requested
            self.requested = True
            if self.signal_name is None:
                self.signal_name = signal_name
            return graceful

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
