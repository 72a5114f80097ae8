"""SIGTERM and Ctrl-C sent to this process request the run's stop token.

The signals are raised in the main thread itself (``signal.raise_signal``),
whose C handler then runs before the call returns. A signal sent to the
process (``os.kill``) may be taken by another of its threads, and handled a
moment later: after the block under test had restored the default handler,
where a Ctrl-C becomes a KeyboardInterrupt that ends the test worker.
"""

from __future__ import annotations

import signal
from types import FrameType

import pytest

from cohortsync.errors import RunInterrupted
from cohortsync.export.stopping import StopToken, stop_on_signals


def spin() -> None:
    """A few bytecodes, so that the interpreter runs the signal handler the C handler queued."""
    for _ in range(1000):
        pass


def test_a_signal_while_sending_stops_handing_out_batches() -> None:
    handed: list[int] = []
    interrupted: list[bool] = []
    with (
        stop_on_signals(StopToken()) as stop,
        stop.sending(),
        stop.interrupting(lambda: interrupted.append(True)),
    ):
        for number in stop.batches(iter(range(100))):
            handed.append(number)
            if number == 3:
                signal.raise_signal(signal.SIGTERM)
    assert handed == [0, 1, 2, 3]
    assert stop.requested
    assert stop.signal_name == "SIGTERM"
    assert interrupted == []  # the requests in flight were left to finish


def test_a_signal_outside_sending_interrupts_the_operation_and_stops_at_the_boundary() -> None:
    interrupted: list[bool] = []
    with stop_on_signals(StopToken()) as stop:
        with stop.interrupting(lambda: interrupted.append(True)):
            signal.raise_signal(signal.SIGTERM)
            spin()
        assert interrupted == [True]  # a DuckDB statement, say, is interrupted at once
        with pytest.raises(RunInterrupted, match=r"^the run was stopped by SIGTERM$"):
            stop.check()


def test_a_second_signal_while_sending_interrupts_at_once() -> None:
    interrupted: list[bool] = []
    with (
        stop_on_signals(StopToken()) as stop,
        stop.sending(),
        stop.interrupting(lambda: interrupted.append(True)),
    ):
        signal.raise_signal(signal.SIGINT)
        spin()
        assert interrupted == []  # the first one waits for the requests in flight
        signal.raise_signal(signal.SIGINT)
        spin()
        assert interrupted == [True]  # the second cancels them
    assert stop.signal_name == "SIGINT"


def test_the_callers_handler_is_restored_and_told() -> None:
    seen: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        seen.append(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        with stop_on_signals(StopToken()) as stop, stop.sending():
            signal.raise_signal(signal.SIGTERM)
            spin()
            assert seen == []
        assert seen == [signal.SIGTERM]
        assert signal.getsignal(signal.SIGTERM) is handler
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_no_signal_leaves_the_token_alone_and_restores_the_handlers() -> None:
    before = signal.getsignal(signal.SIGINT)
    with stop_on_signals(StopToken()) as stop:
        assert signal.getsignal(signal.SIGINT) is not before
    assert not stop.requested
    assert signal.getsignal(signal.SIGINT) is before
