"""GracefulStop asked to stop from another thread, as the scheduler's SIGTERM does."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from cohortsync.export.stopping import GracefulStop, clear_stop_request, request_stop


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

    def body() -> None:
        run_thread = threading.get_ident()
        with GracefulStop() as stop, stop.sending():
            for number in stop.batches(iter(range(10))):
                handed_out.append(number)
                if number == 2:  # a request in flight when another thread asks to stop
                    asker = threading.Thread(
                        target=lambda: answers.append(request_stop(run_thread))
                    )
                    asker.start()
                    asker.join(5)
                finished.append(number)
            assert stop.requested and stop.signal_name == "SIGTERM"

    in_thread(body)
    assert answers == [True]  # taken gracefully: the caller need not interrupt the thread
    assert handed_out == finished == [0, 1, 2]  # batch 2 finished; no batch after it


def test_a_stop_requested_before_sending_keeps_the_run_from_sending() -> None:
    def body() -> None:
        ident = threading.get_ident()
        try:
            assert request_stop(ident) is False  # no run yet: the caller interrupts itself
            with GracefulStop() as stop:
                assert stop.requested
                with pytest.raises(KeyboardInterrupt, match=r"^SIGTERM$"), stop.sending():
                    raise AssertionError("sent after a stop request")
        finally:
            clear_stop_request(ident)
        with GracefulStop() as later:  # the next job of the thread starts afresh
            assert not later.requested

    in_thread(body)


def test_a_second_request_or_one_outside_sending_is_not_graceful() -> None:
    def body() -> None:
        with GracefulStop() as stop:
            assert stop.request_stop() is False  # not sending: interrupt at once
        with GracefulStop() as stop, stop.sending():
            assert stop.request_stop("SIGINT") is True
            assert stop.request_stop() is False  # a second signal
            assert stop.signal_name == "SIGINT"

    in_thread(body)
