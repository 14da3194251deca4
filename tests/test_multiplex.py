"""The I/O-free stream admission and health of a multiplexed connection (`base/_multiplex.py`),
rule by rule (the rules are written at the top of that module)."""

from __future__ import annotations

from typing import List

import pytest

from httpcore import ConnectionNotAvailable, ReadError, RemoteProtocolError, WriteError
from httpcore.base._multiplex import (
    DRAINING,
    EXHAUSTED,
    FAILED,
    OPEN,
    WRITE_FAILED,
    ConnectionHealth,
    StreamSlots,
    renewed,
)


class Waiter:
    def __init__(self, name: str) -> None:
        self.name = name
        self.granted = False

    def __repr__(self) -> str:
        return f"Waiter({self.name})"


def names(waiters: object) -> List[str]:
    return [w.name for w in waiters]  # type: ignore[attr-defined]


# -- StreamSlots ------------------------------------------------------------------------------


def test_one_slot_until_the_peer_announces_its_limit() -> None:
    slots: StreamSlots[Waiter] = StreamSlots()
    assert slots.limit == 1 and not slots.limit_known
    assert slots.take()
    assert not slots.take()
    assert slots.held == 1


def test_a_request_queues_behind_others_even_when_a_slot_is_free() -> None:
    slots: StreamSlots[Waiter] = StreamSlots(limit=2)
    assert slots.take() and slots.take()
    assert not slots.take()
    first = Waiter("first")
    slots.wait(first)
    slots.limit = 3  # (as if raised without granting)
    # Rule 3: a free slot is not taken past somebody queueing.
    assert not slots.take()
    assert names(slots.release()) == ["first"]
    assert first.granted and slots.held == 2


def test_released_slots_go_to_the_first_in_line() -> None:
    slots: StreamSlots[Waiter] = StreamSlots()
    assert slots.take()
    a, b = Waiter("a"), Waiter("b")
    slots.wait(a)
    slots.wait(b)
    assert names(slots.release()) == ["a"]
    assert a.granted and not b.granted
    assert slots.held == 1
    assert names(slots.release()) == ["b"]
    assert slots.held == 1
    assert list(slots.release()) == []
    assert slots.held == 0


def test_a_higher_limit_grants_as_many_as_it_allows() -> None:
    slots: StreamSlots[Waiter] = StreamSlots()
    assert slots.take()
    waiters = [Waiter(str(i)) for i in range(5)]
    for waiter in waiters:
        slots.wait(waiter)
    assert names(slots.set_limit(4)) == ["0", "1", "2"]
    assert slots.limit_known and slots.limit == 4 and slots.held == 4
    assert [w.granted for w in waiters] == [True, True, True, False, False]


def test_a_lower_limit_takes_no_slot_back() -> None:
    slots: StreamSlots[Waiter] = StreamSlots()
    slots.set_limit(3)
    assert slots.take() and slots.take() and slots.take()
    waiter = Waiter("w")
    slots.wait(waiter)
    assert list(slots.set_limit(1)) == []
    assert slots.held == 3
    # Two releases bring it to the new limit: nothing granted yet.
    assert list(slots.release()) == []
    assert list(slots.release()) == []
    assert not waiter.granted
    assert names(slots.release()) == ["w"]
    assert slots.held == 1


def test_a_waiter_giving_up_leaves_the_queue() -> None:
    slots: StreamSlots[Waiter] = StreamSlots()
    assert slots.take()
    a, b = Waiter("a"), Waiter("b")
    slots.wait(a)
    slots.wait(b)
    assert list(slots.withdraw(a)) == []
    assert names(slots.queue) == ["b"]
    assert list(slots.withdraw(a)) == []  # twice: nothing more happens
    assert slots.held == 1


def test_a_granted_waiter_giving_up_passes_its_slot_on() -> None:
    slots: StreamSlots[Waiter] = StreamSlots()
    assert slots.take()
    a, b = Waiter("a"), Waiter("b")
    slots.wait(a)
    slots.wait(b)
    slots.release()
    assert a.granted
    assert names(slots.withdraw(a)) == ["b"]
    assert slots.held == 1


def test_in_flight_and_room_for_one_more_request() -> None:
    slots: StreamSlots[Waiter] = StreamSlots()
    for _ in range(5):
        slots.enter()
    assert slots.has_room()  # the peer's limit is not known yet
    slots.set_limit(6)
    assert slots.has_room()
    slots.enter()
    assert not slots.has_room()
    assert not slots.leave()
    assert slots.has_room()
    for _ in range(4):
        assert not slots.leave()
    assert slots.leave()
    assert slots.in_flight == 0


# -- ConnectionHealth -------------------------------------------------------------------------


def test_an_open_connection_takes_requests_and_writes() -> None:
    health = ConnectionHealth()
    assert health.state is OPEN
    assert health.refusal() is None
    assert health.send_error is None and health.error is None
    assert not health.closes_when_idle()


def test_exhausted_refuses_new_streams_but_stays_until_retired() -> None:
    health = ConnectionHealth()
    health.exhaust()
    assert health.state is EXHAUSTED
    assert type(health.refusal()) is ConnectionNotAvailable
    assert health.send_error is None
    assert not health.closes_when_idle()


def test_goaway_drains() -> None:
    health = ConnectionHealth()
    goaway = object()
    health.drain(goaway, 7)
    assert health.state is DRAINING
    assert health.goaway is goaway and health.goaway_last_stream_id == 7
    assert type(health.refusal()) is ConnectionNotAvailable
    assert health.send_error is None
    assert health.closes_when_idle()
    health.exhaust()  # never makes it better
    assert health.state is DRAINING


def test_a_failed_write_stops_writing_not_reading() -> None:
    health = ConnectionHealth()
    error = WriteError("refused")
    health.fail_writes(error)
    assert health.state is WRITE_FAILED
    assert health.send_error is error and health.write_error is error
    assert health.error is None
    assert type(health.refusal()) is ConnectionNotAvailable
    assert health.closes_when_idle()
    health.fail_writes(WriteError("again"))
    assert health.write_error is error  # the first is kept


def test_failing_while_open_answers_new_requests_with_the_failure() -> None:
    health = ConnectionHealth()
    error = ReadError("boom")
    health.fail(error)
    assert health.state is FAILED
    assert health.error is error and health.send_error is error
    refusal = health.refusal()
    assert type(refusal) is ReadError and refusal is not error
    assert refusal.__cause__ is error
    assert not health.closes_when_idle()
    health.fail(ReadError("later"))
    assert health.error is error


@pytest.mark.parametrize("before", ["exhaust", "drain", "fail_writes"])
def test_failing_after_new_streams_stopped_answers_not_available(before: str) -> None:
    health = ConnectionHealth()
    if before == "exhaust":
        health.exhaust()
    elif before == "drain":
        health.drain(object(), 1)
    else:
        health.fail_writes(WriteError("refused"))
    error = RemoteProtocolError("Server disconnected")
    health.fail(error)
    assert health.state is FAILED
    assert health.send_error is error  # the failure, rather than a refused write
    assert type(health.refusal()) is ConnectionNotAvailable


@pytest.mark.parametrize("after", ["drain", "fail_writes"])
def test_a_goaway_or_failed_write_after_a_failure_answers_not_available(after: str) -> None:
    health = ConnectionHealth()
    error = ReadError("boom")
    health.fail(error)
    if after == "drain":
        health.drain(object(), 1)
    else:
        health.fail_writes(WriteError("refused"))
    assert health.state is FAILED
    assert health.send_error is error
    assert type(health.refusal()) is ConnectionNotAvailable
    assert health.closes_when_idle()


def test_renewed_copies_with_the_original_as_cause() -> None:
    error = RemoteProtocolError("x")
    copy = renewed(error)
    assert type(copy) is RemoteProtocolError and copy is not error
    assert copy.args == ("x",) and copy.__cause__ is error


def test_a_stream_queue_keeps_order_and_outgrows_its_short_list() -> None:
    """`StreamBase.events`: a short plain list, which becomes a deque once more events wait
    than `SHORT_EVENT_QUEUE` (so taking one stays O(1) however many the reader filed)."""
    from httpcore.base._multiplex_core import SHORT_EVENT_QUEUE, StreamBase

    stream = StreamBase(1, None, None, local_ended=True, replayable=True)
    stream.events.extend(range(SHORT_EVENT_QUEUE))
    assert [stream.next_event() for _ in range(SHORT_EVENT_QUEUE)] == list(range(SHORT_EVENT_QUEUE))
    assert type(stream.events) is list and stream.next_event() is None
    stream.events.extend(range(100))
    assert stream.next_event() == 0
    assert type(stream.events) is not list
    stream.events.append(100)
    assert [stream.next_event() for _ in range(100)] == list(range(1, 101))
    assert stream.next_event() is None
