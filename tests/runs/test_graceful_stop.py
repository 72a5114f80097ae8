"""GracefulStop with real signals sent to this process."""

from __future__ import annotations

import os
import signal
from types import FrameType

import pytest

from cohortsync.export.stopping import GracefulStop


def test_a_signal_while_sending_stops_handing_out_batches() -> None:
    handed: list[int] = []
    with GracefulStop() as stop, stop.sending():
        for number in stop.batches(iter(range(100))):
            handed.append(number)
            if number == 3:
                os.kill(os.getpid(), signal.SIGTERM)
    assert handed == [0, 1, 2, 3]
    assert stop.requested
    assert stop.signal_name == "SIGTERM"


def test_a_signal_outside_sending_interrupts_at_once() -> None:
    with pytest.raises(KeyboardInterrupt, match=r"^SIGTERM$"), GracefulStop():
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):
            pass


def test_a_second_signal_while_sending_interrupts_at_once() -> None:
    with (
        pytest.raises(KeyboardInterrupt, match=r"^SIGINT$"),
        GracefulStop() as stop,
        stop.sending(),
    ):
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):
            pass


def test_the_callers_handler_is_restored_and_told() -> None:
    seen: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        seen.append(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        with GracefulStop() as stop, stop.sending():
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):
                pass
            assert seen == []
        assert seen == [signal.SIGTERM]
        assert signal.getsignal(signal.SIGTERM) is handler
    finally:
        signal.signal(signal.SIGTERM, previous)
