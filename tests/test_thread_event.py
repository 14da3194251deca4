"""`ThreadEvent`, the one-shot event a sync request waits on (for a connection from the pool,
an HTTP/2 or HTTP/3 stream slot, data from the connection's reader)."""

from __future__ import annotations

import threading
from typing import List

from httpcore.base._drive import SyncIO, ThreadEvent


def _in_thread(thread: threading.Thread) -> None:
    thread.daemon = True  # a mutant that waits for good must not keep the tests from ending
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "the wait never returned"


def test_the_sync_flavour_makes_thread_events() -> None:
    assert type(SyncIO.new_event()) is ThreadEvent


def test_set_from_another_thread_wakes_the_waiter() -> None:
    event = ThreadEvent()
    started = threading.Event()
    results: List[bool] = []

    def waiter() -> None:
        started.set()
        results.append(event.wait(10))

    thread = threading.Thread(target=waiter)
    thread.start()
    started.wait(10)
    assert not event.is_set()
    event.set()
    thread.join(10)
    assert results == [True]
    assert event.is_set()


def test_a_wait_without_timeout_returns_once_set() -> None:
    event = ThreadEvent()
    results: List[bool] = []
    thread = threading.Thread(target=lambda: results.append(event.wait(None)))
    thread.start()
    event.set()
    thread.join(10)
    assert results == [True]


def test_an_event_never_set_times_out() -> None:
    event = ThreadEvent()
    assert event.wait(0.02) is False
    assert event.wait(0) is False
    assert not event.is_set()


def test_a_negative_timeout_does_not_wait_forever() -> None:
    # `lock.acquire(True, -1)` would block for good: a deadline already past must not.
    event = ThreadEvent()
    results: List[bool] = []
    _in_thread(threading.Thread(target=lambda: results.append(event.wait(-1.0))))
    _in_thread(threading.Thread(target=lambda: results.append(event.wait(-0.5))))
    assert results == [False, False]


def test_a_timeout_longer_than_a_lock_can_wait() -> None:
    # `threading.Event().wait(1e12)` raises OverflowError: here it waits like no timeout.
    event = ThreadEvent()
    results: List[bool] = []
    thread = threading.Thread(target=lambda: results.append(event.wait(1e12)), daemon=True)
    thread.start()
    event.set()
    thread.join(10)
    assert results == [True]
    # The same wait on the lock itself, whatever the thread switch did above.
    event = ThreadEvent()
    event._lock.release()
    assert event.wait(1e12) is True


def test_set_before_the_wait_and_waiting_again() -> None:
    event = ThreadEvent()
    event.set()
    event.set()  # a second set is harmless
    assert event.wait(0) is True
    assert event.wait(None) is True  # the first wait took the lock: the flag still answers
    assert event.wait(1) is True


def test_sets_racing_each_other_and_the_waiter() -> None:
    # Two threads set every event while a third waits on it: no wake-up is lost, and no
    # second release escapes as a RuntimeError.
    events = [ThreadEvent() for _ in range(2000)]
    errors: List[BaseException] = []
    woken: List[bool] = []

    def setter() -> None:
        try:
            for event in events:
                event.set()
        except BaseException as exc:  # pragma: no cover - what the test looks for
            errors.append(exc)

    def waiter() -> None:
        for event in events:
            woken.append(event.wait(10))

    threads = [threading.Thread(target=waiter)] + [
        threading.Thread(target=setter) for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert woken == [True] * len(events)
    assert all(event.is_set() for event in events)


def test_a_set_that_lost_the_race_to_another_set() -> None:
    # Two threads may both find the flag down and both release the lock; the second release
    # must be harmless. (Replayed here without the luck of the thread switch: the flag is
    # put back down between the two sets.)
    event = ThreadEvent()
    event.set()
    event._flag = False
    event.set()
    assert event.is_set()
    assert event.wait(0) is True
