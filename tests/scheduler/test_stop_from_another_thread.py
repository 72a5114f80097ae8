"""A stop token requested from another thread, as the scheduler's SIGTERM does."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from cohortsync.errors import RunInterrupted
from cohortsync.export.stopping import StopToken


def in_thread(body: Callable[[], None]) -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            body()
        except BaseException as error:  # handed back to the test
            errors.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)
    assert not thread.is_alive()
    if errors:
        raise errors[0]


def test_a_sending_run_stops_handing_out_batches_and_finishes_the_one_in_flight() -> None:
    handed_out: list[int] = []
    finished: list[int] = []
    answers: list[bool] = []
    stop = StopToken()

    def body() -> None:
        with stop.sending():
            for number in stop.batches(iter(range(10))):
                handed_out.append(number)
                if number == 2:  # a request in flight when another thread asks to stop
                    asker = threading.Thread(target=lambda: answers.append(stop.request()))
                    asker.start()
                    asker.join(5)
                finished.append(number)
            assert stop.requested and stop.signal_name == "SIGTERM"

    in_thread(body)
    assert answers == [True]  # taken gracefully: the requests in flight finish
    assert handed_out == finished == [0, 1, 2]  # batch 2 finished; no batch after it


def test_a_stop_requested_before_sending_keeps_the_run_from_sending() -> None:
    stop = StopToken()

    def body() -> None:
        assert stop.request() is False  # not sending: the run stops at its next boundary
        assert stop.requested
        with (
            pytest.raises(RunInterrupted, match=r"^the run was stopped by SIGTERM$"),
            stop.sending(),
        ):
            raise AssertionError("sent after a stop request")

    in_thread(body)
    assert not StopToken().requested  # the next job gets a token of its own


def test_a_second_request_or_one_outside_sending_is_not_graceful() -> None:
    def body() -> None:
        stop = StopToken()
        assert stop.request() is False  # not sending: interrupt at once
        stop = StopToken()
        with stop.sending():
            assert stop.request("SIGINT") is True
            assert stop.request() is False  # a second signal
            assert stop.signal_name == "SIGINT"

    in_thread(body)


def test_an_interrupter_registered_after_the_request_is_called_at_once() -> None:
    stop = StopToken()
    stop.request()
    called: list[bool] = []
    with stop.interrupting(lambda: called.append(True)):
        assert called == [True]  # a statement started just after the request stops anyway
    stop.request()
    assert called == [True]  # unregistered when its operation ended


def test_wait_wakes_as_soon_as_the_stop_is_requested() -> None:
    stop = StopToken()
    threading.Timer(0.05, stop.request).start()
    started = time.monotonic()
    assert stop.wait(30) is True
    assert time.monotonic() - started < 5
    assert StopToken().wait(0.01) is False
