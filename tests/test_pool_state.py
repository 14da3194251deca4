"""The pool's I/O-free decisions (`httpcore.base._pool_state`), one rule at a time."""

from __future__ import annotations

from typing import List, Optional

import pytest

import httpcore
from httpcore.base._pool_state import PoolRequest, PoolState


class FakeConnection:
    """Answers the pool's state queries from plain flags (an HTTP/1.1-like connection)."""

    def __init__(self, origin: httpcore.Origin, multiplexed: bool = False) -> None:
        self.origin = origin
        self.multiplexed = multiplexed
        self.idle = False
        self.closed = False
        self.expired = False

    @property
    def MULTIPLEXED(self) -> bool:  # as the class attribute of the multiplexed cores
        return self.multiplexed

    def can_handle_request(self, origin: httpcore.Origin) -> bool:
        return origin == self.origin

    def is_available(self) -> bool:
        return not self.closed and (self.idle or self.multiplexed)

    def has_expired(self) -> bool:
        return self.expired

    def is_idle(self) -> bool:
        return self.idle

    def is_closed(self) -> bool:
        return self.closed


A = "http://a.example/"
B = "http://b.example/"


class Pool:
    def __init__(
        self,
        max_connections: Optional[int] = 10,
        max_keepalive_connections: Optional[int] = None,
        keepalive_expiry: Optional[float] = None,
        multiplexed: bool = False,
    ) -> None:
        self.created: List[FakeConnection] = []
        self.multiplexed = multiplexed
        self.state = PoolState(
            self._create, max_connections, max_keepalive_connections, keepalive_expiry
        )

    def _create(self, origin: httpcore.Origin) -> FakeConnection:
        connection = FakeConnection(origin, self.multiplexed)
        self.created.append(connection)
        return connection

    def request(self, url: str = A) -> PoolRequest:
        pool_request = PoolRequest(httpcore.Request("GET", url))
        assert self.state.add(pool_request) == []
        return pool_request

    def run(self, pool_request: PoolRequest) -> FakeConnection:
        """The request starts on its connection (which becomes active)."""
        self.state.start(pool_request)
        connection: FakeConnection = pool_request.connection
        connection.idle = False
        return connection

    def finish(self, pool_request: PoolRequest) -> List[object]:
        pool_request.connection.idle = True
        return self.state.release(pool_request)


def test_requests_get_new_connections_up_to_the_limit_then_wait() -> None:
    pool = Pool(max_connections=2)
    first, second, third = pool.request(), pool.request(), pool.request()
    assert first.connection is pool.created[0]
    assert second.connection is pool.created[1]
    assert third.connection is None
    assert list(pool.state.queue) == [third]
    pool.run(first)
    pool.run(second)
    assert pool.finish(first) == []
    # The freed connection goes to the waiting request.
    assert third.connection is pool.created[0]
    assert third.fresh is False
    assert len(pool.created) == 2


@pytest.mark.parametrize("multiplexed", [False, True])
def test_an_idle_connection_is_reused_and_reserved(multiplexed: bool) -> None:
    pool = Pool(multiplexed=multiplexed)
    first = pool.request()
    pool.run(first)
    pool.finish(first)
    second, third = pool.request(), pool.request()
    assert second.connection is pool.created[0]
    if multiplexed:
        # Requests arriving together at an idle HTTP/2 connection share it, rather than each
        # opening one while the first has not started on it (seen under load: 50 threads, a
        # second connection).
        assert third.connection is pool.created[0]
        assert third.fresh is False
        assert len(pool.created) == 1
    else:
        # Promised to `second`, not started: not handed to `third` as idle.
        assert third.connection is pool.created[1]
        assert third.fresh is True


def test_a_full_pool_replaces_an_idle_connection_of_another_origin() -> None:
    pool = Pool(max_connections=1)
    first = pool.request(A)
    pool.run(first)
    pool.finish(first)
    waiting = PoolRequest(httpcore.Request("GET", B))
    closing = pool.state.add(waiting)
    assert closing == [pool.created[0]]
    assert waiting.connection is pool.created[1]
    assert pool.state.connections == [pool.created[1]]


def test_an_expired_idle_connection_is_closed_when_met_not_handed_out() -> None:
    pool = Pool()
    first = pool.request()
    pool.run(first)
    pool.finish(first)
    pool.created[0].expired = True
    waiting = PoolRequest(httpcore.Request("GET", A))
    closing = pool.state.add(waiting)
    assert closing == [pool.created[0]]
    assert waiting.connection is pool.created[1]


def test_keepalive_limit_counts_idle_connections_only() -> None:
    pool = Pool(max_keepalive_connections=1)
    first, second = pool.request(), pool.request()
    pool.run(first)
    pool.run(second)
    # One idle, one active: within the limit of one idle connection.
    assert pool.finish(first) == []
    assert pool.state.connections == pool.created
    # Two idle: one is closed.
    assert pool.finish(second) == [pool.created[0]]
    assert pool.state.connections == [pool.created[1]]


def test_a_connection_created_for_a_request_that_leaves_unused_is_closed() -> None:
    pool = Pool()
    pool_request = pool.request()
    assert pool_request.fresh is True
    assert pool.state.release(pool_request) == [pool.created[0]]
    assert pool.state.connections == []
    assert pool.state.requests == {}


def test_a_requeued_request_goes_first_and_its_closed_connection_is_dropped() -> None:
    pool = Pool(max_connections=1)
    first, second = pool.request(), pool.request()
    connection = pool.run(first)
    connection.closed = True
    assert pool.state.requeue(first) == []
    assert pool.state.connections == [pool.created[1]]
    # `first` was put back ahead of `second`, which keeps waiting.
    assert first.connection is pool.created[1]
    assert second.connection is None
    assert list(pool.state.queue) == [second]


def test_multiplexed_connections_take_several_requests() -> None:
    pool = Pool(multiplexed=True)
    first = pool.request()
    pool.run(first)
    second = pool.request()
    assert second.connection is first.connection
    assert len(pool.created) == 1


def test_keepalive_expiry_zero_closes_on_release() -> None:
    pool = Pool(keepalive_expiry=0)
    first = pool.request()
    pool.run(first)
    assert pool.finish(first) == [pool.created[0]]


def test_counts() -> None:
    pool = Pool(max_connections=1)
    first, second = pool.request(), pool.request()
    pool.run(first)
    assert pool.state.counts() == (1, 1, 1, 0)
    pool.finish(first)
    assert pool.state.counts() == (1, 0, 0, 1)  # idle, promised to `second`
    pool.run(second)
    pool.finish(second)
    assert pool.state.counts() == (0, 0, 0, 1)


def test_a_fresh_connection_another_request_uses_is_not_closed_when_its_creator_leaves() -> None:
    # A pending HTTP/2 connection is shared: `second` started on the connection created for
    # `first`; `first` is cancelled before it starts. Closing it would cut `second` off.
    pool = Pool(multiplexed=True)
    first = pool.request()
    second = pool.request()
    assert second.connection is first.connection
    pool.run(second)
    assert pool.state.release(first) == []
    assert pool.state.connections == pool.created
    # Once its last user leaves, the connection is an ordinary idle one.
    assert pool.finish(second) == []
    assert pool.state.connections == pool.created


def test_a_fresh_connection_promised_to_another_request_is_not_closed() -> None:
    pool = Pool(multiplexed=True)
    first = pool.request()
    second = pool.request()
    assert pool.state.release(first) == []
    assert second.connection is pool.created[0]
    pool.run(second)
    assert pool.finish(second) == []
