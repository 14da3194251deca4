"""The pool's decisions (`PoolState`) that mutation testing (scripts/mutation) found untested.

Each test drives `PoolState` directly with connections whose state is set by hand: which
connection a request gets, which ones are closed, and how often the keep-alive check runs.
"""

from __future__ import annotations

import time
from typing import List

import pytest
from test_pool_state import A, B, FakeConnection
from test_pool_state import Pool as StatePool

import httpcore
from httpcore.base._pool_state import PoolRequest, PoolState

C = "http://c.example/"


class Connection(FakeConnection):
    """A connection whose state the test sets; counts the keep-alive checks made on it."""

    def __init__(self, origin: httpcore.Origin, multiplexed: bool) -> None:
        super().__init__(origin, multiplexed)
        self.full = False  # a multiplexed connection with no stream left
        self.timed_out = False
        self.checks = 0

    def is_available(self) -> bool:
        return not self.full and super().is_available()

    def _has_timed_out(self, now: float) -> bool:
        self.checks += 1
        return self.timed_out


class Pool(StatePool):
    """`test_pool_state.Pool` making `Connection`s; `add` is its `request`."""

    def _create(self, origin: httpcore.Origin) -> Connection:
        connection = Connection(origin, self.multiplexed)
        self.created.append(connection)
        return connection

    def add(self, url: str = A) -> PoolRequest:
        return self.request(url)


def test_idle_connections_are_handed_out_most_recently_idle_first() -> None:
    pool = Pool()
    first, second, third = pool.add(), pool.add(), pool.add()
    for pool_request in (first, second, third):
        pool.run(pool_request)
    for pool_request in (first, second, third):
        pool.finish(pool_request)
    c1, c2, c3 = pool.created
    assert pool.add().connection is c3
    assert pool.add().connection is c2
    assert pool.add().connection is c1
    assert len(pool.created) == 3


def test_a_full_pool_sweeps_timed_out_connections_before_evicting_a_live_idle_one() -> None:
    pool = Pool(max_connections=2)
    on_b, on_a = pool.add(B), pool.add(A)
    pool.run(on_b)
    pool.run(on_a)
    pool.finish(on_b)
    pool.finish(on_a)
    live_b, stale_a = pool.created
    stale_a.timed_out = True
    closing = pool.state.add(PoolRequest(httpcore.Request("GET", C)))
    # The sweep (the pool is full) closes the timed-out connection; the live idle one stays.
    assert closing == [stale_a]
    assert pool.state.connections == [live_b, pool.created[2]]


def test_below_capacity_without_expiry_no_keepalive_check_is_made() -> None:
    pool = Pool()
    first = pool.add(A)
    pool.run(first)
    pool.finish(first)
    pool.created[0].checks = 0  # the release checks the connection it takes back
    pool.add(B)
    assert pool.created[0].checks == 0


def test_a_full_pool_sweeps_once_per_assignment_pass() -> None:
    pool = Pool(max_connections=1)
    pool.run(pool.add())
    pool.add(B)  # waits (sweeps once)
    connection = pool.created[0]
    connection.checks = 0
    pool.add(C)  # waits: one pass over two waiting requests
    assert connection.checks == 1
    assert len(pool.state.queue) == 2


def test_the_periodic_sweep_waits_for_its_period() -> None:
    pool = Pool(keepalive_expiry=60.0)  # period: 1 s
    first = pool.add(A)
    pool.run(first)
    pool.finish(first)
    pool.created[0].checks = 0  # the release checks the connection it takes back
    pool.add(B)
    assert pool.created[0].checks == 0


@pytest.mark.parametrize(
    ("keepalive_expiry", "period"),
    [(0.2, 0.1), (60.0, 1.0)],
    ids=["half-the-expiry", "at-most-one-second"],
)
def test_the_periodic_sweep_runs_once_its_period_has_passed(
    keepalive_expiry: float, period: float
) -> None:
    """The sweep period is `min(keepalive_expiry / 2, 1 s)`: once it has passed, the next
    call closes a timed-out connection of another origin."""
    pool = Pool(keepalive_expiry=keepalive_expiry)
    first = pool.add(A)
    pool.run(first)
    pool.finish(first)
    connection = pool.created[0]
    connection.timed_out = True
    time.sleep(period * 1.1)
    closing = pool.state.add(PoolRequest(httpcore.Request("GET", B)))
    assert closing == [connection]
    assert connection not in pool.state.connections


def test_the_sweep_forgets_a_closed_connection_and_keeps_those_after_it() -> None:
    pool = Pool(max_connections=3)
    requests = [pool.add(url) for url in (A, B, C)]
    for pool_request in requests:
        pool.run(pool_request)
    for pool_request in requests:
        pool.finish(pool_request)
    first, second, third = pool.created
    second.closed = True  # the server closed it while idle
    closing = pool.state.add(PoolRequest(httpcore.Request("GET", "http://d.example/")))
    # Full: the sweep drops the closed connection (no close needed), which makes room.
    assert closing == []
    assert pool.state.connections == [first, third, pool.created[3]]


def test_a_closed_idle_connection_is_not_handed_out_from_the_idle_hints() -> None:
    pool = Pool()
    first = pool.add()
    pool.run(first)
    pool.finish(first)
    connection = pool.created[0]
    connection.closed = True
    second = pool.add()
    assert second.connection is pool.created[1]
    assert second.fresh is True


def test_the_scan_passes_a_promised_idle_connection_for_a_later_available_one() -> None:
    pool = Pool(multiplexed=True)
    first = pool.add()
    c1 = pool.run(first)
    c1.full = True
    second = pool.add()
    c2 = pool.run(second)
    assert c2 is not c1
    c1.full = False
    pool.finish(first)  # c1 idle, on the hint list
    third = pool.add()
    assert third.connection is c1  # promised, not started
    fourth = pool.add()
    # c1 is idle but promised to `third`: `fourth` shares the active c2, no new connection.
    assert fourth.connection is c2
    assert len(pool.created) == 2


def test_a_fresh_connection_is_closed_when_its_creator_leaves_after_others_used_it() -> None:
    pool = Pool(multiplexed=True)
    first = pool.add()
    second = pool.add()
    connection = second.connection
    assert connection is first.connection
    pool.run(second)
    assert pool.finish(second) == []
    # Nobody uses or was promised the connection any more: rule 6 closes it.
    assert pool.state.release(first) == [connection]
    assert pool.state.connections == []


def test_a_fresh_connection_stays_while_one_of_two_users_remains() -> None:
    pool = Pool(multiplexed=True)
    first, second, third = pool.add(), pool.add(), pool.add()
    connection = first.connection
    assert second.connection is connection and third.connection is connection
    pool.run(second)
    pool.run(third)
    assert pool.state.release(third) == []
    # `second` still uses it: the creator leaving must not close it.
    assert pool.state.release(first) == []
    assert pool.state.connections == [connection]


def test_a_requeued_request_that_leaves_before_using_its_new_connection_closes_it() -> None:
    pool = Pool(max_connections=1)
    pool_request = pool.add()
    lost = pool.run(pool_request)
    lost.closed = True
    assert pool.state.requeue(pool_request) == []
    replacement = pool_request.connection
    assert replacement is pool.created[1]
    assert pool.state.release(pool_request) == [replacement]
    assert pool.state.connections == []


def test_idle_hints_left_by_closed_connections_keep_the_most_recent_ones() -> None:
    pool = Pool(max_connections=4)
    requests = [pool.add() for _ in range(4)]
    for pool_request in requests:
        pool.run(pool_request)
    for pool_request in requests:
        pool.finish(pool_request)
    c1, c2, c3, c4 = pool.created
    c1.closed = c2.closed = True  # the server closed them while idle
    # Full: a request for another origin sweeps the closed ones away (their hints stay).
    pool.run(pool.add(B))
    assert pool.state.connections == [c3, c4, pool.created[4]]
    again = pool.add()
    assert again.connection is c4
    pool.run(again)
    pool.finish(again)
    # c4 went idle last: it is handed out first, not c3 (first in the pool's list).
    assert pool.add().connection is c4


def test_an_idle_connection_promised_to_a_request_is_not_closed_as_extra() -> None:
    pool = Pool(multiplexed=True, max_keepalive_connections=0)
    first = pool.add()
    connection = pool.run(first)
    second = pool.add()
    assert second.connection is connection  # promised, not started
    # `first` ends: the connection is idle but promised to `second`; the keep-alive limit
    # (no idle connection kept) must not close it.
    assert pool.finish(first) == []
    assert pool.state.connections == [connection]


class AnyOrigin(Connection):
    """A forward-proxy connection: it takes requests for any origin."""

    def can_handle_request(self, origin: httpcore.Origin) -> bool:
        return True


@pytest.mark.parametrize("expired", [False, True], ids=["live", "expired"])
def test_an_idle_connection_met_by_the_scan_is_reused_unless_expired(expired: bool) -> None:
    """Idle hints are per origin; a connection serving any origin, idle after a request for A,
    is found for B by the scan of the pool's connections."""
    created: List[Connection] = []

    def create(origin: httpcore.Origin) -> Connection:
        created.append(AnyOrigin(origin, multiplexed=False))
        return created[-1]

    state = PoolState(create, 10, None, None)
    first = PoolRequest(httpcore.Request("GET", A))
    assert state.add(first) == []
    state.start(first)
    first.connection.idle = True
    assert state.release(first) == []
    created[0].expired = expired
    second = PoolRequest(httpcore.Request("GET", B))
    closing = state.add(second)
    if expired:
        assert closing == [created[0]]
        assert second.connection is created[1]
    else:
        assert closing == []
        assert second.connection is created[0]


def test_an_expired_idle_hint_is_skipped_for_the_next_most_recent_one() -> None:
    pool = Pool()
    requests = [pool.add() for _ in range(3)]
    for pool_request in requests:
        pool.run(pool_request)
    for pool_request in requests:
        pool.finish(pool_request)
    _, c2, c3 = pool.created
    c3.expired = True
    pool_request = PoolRequest(httpcore.Request("GET", A))
    assert pool.state.add(pool_request) == [c3]
    assert pool_request.connection is c2


def test_the_keepalive_limit_closes_nothing_while_the_idle_ones_are_within_it() -> None:
    pool = Pool(max_keepalive_connections=3)
    requests = [pool.add() for _ in range(4)]
    for pool_request in requests:
        pool.run(pool_request)
    # Four connections (over the limit of three), two of them idle: nothing to close.
    assert pool.finish(requests[0]) == []
    assert pool.finish(requests[1]) == []
    assert pool.state.connections == pool.created
    assert pool.finish(requests[2]) == []
    # Four idle: one is closed (the oldest).
    assert pool.finish(requests[3]) == [pool.created[0]]
