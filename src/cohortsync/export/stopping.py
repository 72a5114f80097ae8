"""Stop a run cooperatively: a stop token set from anywhere, checked at the run's boundaries.

Killing a run between a server's 2xx and its checkpoint would make a resumed
run send that batch again, and an exception raised at an arbitrary bytecode
can land inside a ``finally`` or a database transaction. So nothing is ever
injected into a running thread: whoever wants a run to stop (a signal
handler, the scheduler, a test) calls :meth:`StopToken.request`, and the run
looks at its token where stopping is safe, between two stages and between
two batches, and raises :class:`~cohortsync.errors.RunInterrupted` there.

What a request does depends on where the run is:

- **Sending.** The first request only stops the hand-out of new batches: the
  requests in flight get their answers, their acknowledgements are recorded,
  and the run ends ``interrupted`` (exit code 6), ready to resume. A second
  request escalates: the run's *interrupters* are called, which cancel the
  requests in flight at once (their batches stay unacknowledged and are sent
  again on resume).
- **Anywhere else** (waiting for the cohort's lock, reading the source,
  planning), the first request already calls the interrupters: a long DuckDB
  statement is stopped with ``connection.interrupt()``, and the run stops at
  its next boundary, within a fraction of a second.
- **Before sending began,** a request keeps the run from sending at all.

An interrupter is registered for the span of one operation with
:meth:`StopToken.interrupting`; one registered after the stop was requested
is called at once, so a request that lands between a boundary check and the
start of a statement is never lost.

Signals are only a way to call :meth:`StopToken.request`:
:func:`stop_on_signals` turns SIGTERM and SIGINT into requests while a run
lasts, in the main thread only (Python delivers signals there). A handler the
caller had installed is restored afterwards and, if a signal came during the
run, called once with it. The scheduler, whose jobs run in worker threads,
requests the stop of each running job's token itself (dlt's
``dlt.common.runtime.signals`` works the same way: a flag checked at
checkpoints, a second signal escalates).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, TypeVar

from cohortsync.errors import RunInterrupted

T = TypeVar("T")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

Interrupter = Callable[[], None]


class StopToken:
    """A request to stop one run: set from any thread or a signal handler, read by the run.

    Thread-safe. The run checks :attr:`requested` (or calls :meth:`check`) at
    its boundaries; a long operation registers an interrupter with
    :meth:`interrupting` so that a request stops it without waiting for it.
    """

    def __init__(self) -> None:
        # Re-entrant: a signal handler may run in the main thread while it holds the lock.
        self._lock = threading.RLock()
        self._event = threading.Event()
        self._requests = 0
        self._sending = False
        self._interrupters: dict[int, Interrupter] = {}
        self._next_id = 0
        self.signal_name: str | None = None

    @property
    def requested(self) -> bool:
        """Whether a stop was requested."""
        return self._event.is_set()

    @property
    def escalated(self) -> bool:
        """Whether the run must stop at once (not only stop handing out batches)."""
        with self._lock:
            return self._requests > 1 or (self._requests == 1 and not self._sending)

    @property
    def by(self) -> str:
        """Who asked, for messages: the signal's name, or "the user"."""
        return self.signal_name or "the user"

    def request(self, signal_name: str = "SIGTERM") -> bool:
        """Ask the run to stop; returns ``True`` when it stops gracefully.

        Graceful means the run is sending and this is the first request: no new
        batch is handed out and the requests in flight finish and are recorded.
        Otherwise the run's interrupters are called and ``False`` is returned.
        """
        with self._lock:
            self._requests += 1
            if self.signal_name is None:
                self.signal_name = signal_name
            self._event.set()
            graceful = not self.escalated
            interrupters = [] if graceful else list(self._interrupters.values())
        for interrupter in interrupters:
            interrupter()
        return graceful

    def check(self) -> None:
        """Raise :class:`RunInterrupted` if a stop was requested: call it at a boundary."""
        if self.requested:
            raise self.interrupted()

    def interrupted(self, what: str = "the run") -> RunInterrupted:
        """The error a run raises when it stops on this token's request."""
        return RunInterrupted(f"{what} was stopped by {self.by}")

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``, waking as soon as a stop is requested; ``True`` if it was."""
        return self._event.wait(seconds)

    @contextmanager
    def interrupting(self, interrupter: Interrupter) -> Iterator[None]:
        """Call ``interrupter`` if the run must stop while the block runs.

        It is called at once when the stop was already requested (and not
        only gracefully), so the block's long operation is stopped anyway.
        ``interrupter`` must be safe to call from another thread or a signal
        handler: ``duckdb.DuckDBPyConnection.interrupt``, or a function that
        schedules a task's cancellation with ``loop.call_soon_threadsafe``.
        """
        with self._lock:
            key = self._next_id
            self._next_id += 1
            self._interrupters[key] = interrupter
            now = self.requested and self.escalated
        try:
            if now:
                interrupter()
            yield
        finally:
            with self._lock:
                del self._interrupters[key]

    @contextmanager
    def sending(self) -> Iterator[None]:
        """The phase in which a first request waits for the requests in flight.

        Raises:
            RunInterrupted: a stop was requested before sending began; nothing is sent.
        """
        with self._lock:
            if self.requested:
                raise self.interrupted()
            self._sending = True
        try:
            yield
        finally:
            with self._lock:
                self._sending = False

    def batches(self, items: Iterable[T]) -> Iterator[T]:
        """``items`` until a stop is requested: the senders then run out of work."""
        for item in items:
            if self.requested:
                return
            yield item


@contextmanager
def stop_on_signals(stop: StopToken) -> Iterator[StopToken]:
    """SIGTERM and SIGINT request ``stop`` while the block runs (main thread only).

    Off the main thread this does nothing: signals cannot be handled there,
    and whoever runs the thread (the scheduler) requests the stop itself.
    """
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    received: list[int] = []

    def handle(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        stop.request(signal.Signals(signum).name)

    previous: dict[int, Any] = {signum: signal.signal(signum, handle) for signum in STOP_SIGNALS}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        # A caller's own handler (a scheduler, say) still learns of the stop request.
        if received:
            handler = previous.get(received[0])
            if callable(handler) and handler is not signal.default_int_handler:
                handler(received[0], None)
