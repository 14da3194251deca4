"""The connection pool's decisions: which request gets which connection, and when a connection
is closed. Plain code, no I/O and no lock: the pool (`_pool.py`) holds its lock around every
call and performs the closes that the methods return.

The rules this module keeps:

1. Requests are served in arrival order. A request waits in `queue` until a connection is
   *assigned* to it; a request sent back (its connection could not serve it, or lost it, see
   `requeue`) goes to the head of the queue.
2. A request is assigned, in this order: an idle connection for its origin that went idle
   most recently (an O(1) hint, checked again since hints go stale); any available connection
   for its origin (HTTP/2 connections take several requests); a new connection, if fewer than
   `max_connections` exist; a new connection in place of an idle connection of another origin,
   which is closed. Otherwise it keeps waiting.
3. A connection promised to a request that has not started using it is *reserved*: nobody else
   is handed it as idle (but an idle HTTP/2 or HTTP/3 one, which takes several requests at
   once, when no other connection can take the request), and it is not closed as idle.
4. An idle HTTP/1.1 connection whose socket turned readable (the server closed it) has expired:
   it is closed when met, never handed out. That check costs a syscall, so it is made only on
   the connection about to be handed out.
5. Connections past `keepalive_expiry` are closed by a sweep that runs at most every
   `min(keepalive_expiry / 2, 1 s)`, and whenever the pool is full. No idle connection is kept
   beyond `max_keepalive_connections` (only idle ones count, API.md §12.1).
6. A connection created for a request that leaves without using it is closed, unless another
   request was promised it or is using it (a pending HTTP/2 connection is shared before it is
   even connected). A closed connection is dropped without closing it again.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from typing import (
    TYPE_CHECKING,
    Callable,
    Deque,
    Dict,
    Generic,
    List,
    Optional,
    Protocol,
    Tuple,
    TypeVar,
)

from ._async import AsyncEvent
from ._exceptions import PoolTimeout
from ._interfaces import multiplexes
from ._models import Origin, Request

if TYPE_CHECKING:
    from ._drive import Event


class PooledConnection(Protocol):
    """What the pool asks of a connection (API.md §4.1)."""

    def can_handle_request(self, origin: Origin) -> bool: ...
    def is_available(self) -> bool: ...
    def has_expired(self) -> bool: ...
    def is_idle(self) -> bool: ...
    def is_closed(self) -> bool: ...


C = TypeVar("C", bound=PooledConnection)


class PoolRequest(Generic[C]):
    """A request in the pool: waiting for a connection, or using one."""

    __slots__ = ("connection", "event", "fresh", "origin", "request", "started")

    def __init__(self, request: Request) -> None:
        self.request = request
        # Built once: the pool asks for it on arrival, assignment and release.
        self.origin = request.url.origin
        self.connection: Optional[C] = None
        # Set when a connection is assigned; only a request that has to wait needs one.
        self.event: Optional[Event] = None
        # `fresh`: the connection was created for this request and it has not used it yet.
        self.fresh = False
        self.started = False

    def assign(self, connection: C, fresh: bool) -> None:
        self.connection = connection
        self.fresh = fresh
        if self.event is not None:
            self.event.set()

    def wait_sync(self, timeout: Optional[float]) -> None:
        event = self.event
        assert event is not None  # the pool waits only with an event
        if not event.wait(timeout):
            raise PoolTimeout()

    async def wait_async(self, timeout: Optional[float]) -> None:
        event = self.event
        assert isinstance(event, AsyncEvent)  # the async flavour's event
        await event.wait(timeout)


def timed_out(connection: PooledConnection, now: float) -> bool:
    """Keep-alive expired (or, for connections of another library, `has_expired()`)."""
    check = getattr(connection, "_has_timed_out", None)
    return bool(check(now)) if check is not None else bool(connection.has_expired())


class PoolState(Generic[C]):
    """The connections and requests of one pool, and the rules above."""

    def __init__(
        self,
        create_connection: Callable[[Origin], C],
        max_connections: Optional[int],
        max_keepalive_connections: Optional[int],
        keepalive_expiry: Optional[float],
    ) -> None:
        self.create_connection = create_connection
        self.max_connections = sys.maxsize if max_connections is None else max_connections
        self.max_keepalive_connections = min(
            self.max_connections,
            sys.maxsize if max_keepalive_connections is None else max_keepalive_connections,
        )
        self.keepalive_expiry = keepalive_expiry
        self.connections: List[C] = []
        self.requests: Dict[PoolRequest[C], None] = {}  # every request in the pool, in order
        self.queue: Deque[PoolRequest[C]] = deque()  # those waiting for a connection
        self.reserved: Dict[int, int] = {}  # id(connection) -> requests promised it, not started
        self.using: Dict[int, int] = {}  # id(connection) -> requests that started on it
        # origin -> connections that went idle, most recent last
        self.idle_hints: Dict[Origin, List[C]] = {}
        self.next_sweep = 0.0

    # -- a request's life ----------------------------------------------------------------------

    def add(self, pool_request: PoolRequest[C]) -> List[C]:
        """A new request: queue it and assign what can be; return the connections to close."""
        self.requests[pool_request] = None
        self.queue.append(pool_request)
        return self.assign_requests_to_connections()

    def start(self, pool_request: PoolRequest[C]) -> None:
        """The request starts using the connection it was assigned."""
        self._unreserve(pool_request)
        pool_request.started = True
        pool_request.fresh = False
        key = id(pool_request.connection)
        self.using[key] = self.using.get(key, 0) + 1

    def requeue(self, pool_request: PoolRequest[C]) -> List[C]:
        """The request's connection could not serve it: back to the head of the queue."""
        connection = pool_request.connection
        assert connection is not None  # only a request that was using one is requeued
        self._stop_using(pool_request)
        if connection.is_closed() and connection in self.connections:
            # E.g. an HTTP/2 connection shut down by GOAWAY, or one the server closed.
            self.connections.remove(connection)
        pool_request.connection = None
        self.queue.appendleft(pool_request)
        return self.assign_requests_to_connections()

    def release(self, pool_request: PoolRequest[C]) -> List[C]:
        """Take a finished or failed request out of the pool; return connections to close."""
        self.requests.pop(pool_request, None)
        connection = pool_request.connection
        closing: List[C] = []
        if connection is None:
            if pool_request in self.queue:
                self.queue.remove(pool_request)
        else:
            self._unreserve(pool_request)
            self._stop_using(pool_request)
            if connection in self.connections:
                if pool_request.fresh:
                    key = id(connection)
                    if key not in self.reserved and key not in self.using:
                        # Created for this request, never used by it, nobody else's (rule 6).
                        self.connections.remove(connection)
                        closing.append(connection)
                elif connection.is_closed():
                    self.connections.remove(connection)
                elif connection.is_idle():
                    if self.keepalive_expiry == 0 or timed_out(connection, time.monotonic()):
                        self.connections.remove(connection)
                        closing.append(connection)
                    else:
                        hints = self.idle_hints.setdefault(pool_request.origin, [])
                        hints.append(connection)
                        if len(hints) > len(self.connections):
                            del hints[: len(hints) - len(self.connections)]
        closing += self.assign_requests_to_connections()
        return closing

    def close_all(self) -> List[C]:
        """Forget every connection (the pool is closing); return them to close."""
        closing, self.connections = self.connections, []
        self.idle_hints.clear()
        return closing

    # -- assignment (rules 1-5) ----------------------------------------------------------------
    #
    # Kept cheap on the hot path: an arriving request scans the connections with two cheap calls
    # each and stops at the first fit; a closing response looks only at its own connection.

    def assign_requests_to_connections(self) -> List[C]:
        """Hand connections to queued requests; return the connections to close."""
        closing: List[C] = []
        now = time.monotonic()
        if self.keepalive_expiry is not None and now >= self.next_sweep:
            self._sweep(now, closing)
            self.next_sweep = now + min(self.keepalive_expiry / 2, 1.0)
        if self.queue:
            swept = False
            waiting: Deque[PoolRequest[C]] = deque()
            for pool_request in self.queue:
                origin = pool_request.origin
                connection = self._find_available(origin, closing)
                fresh = connection is None
                if connection is None:
                    if len(self.connections) >= self.max_connections and not swept:
                        self._sweep(now, closing)
                        swept = True
                    if len(self.connections) >= self.max_connections:
                        idle = self._unreserved_idle()
                        if idle is None:
                            waiting.append(pool_request)
                            continue
                        self.connections.remove(idle)
                        closing.append(idle)
                    connection = self.create_connection(origin)
                    self.connections.append(connection)
                self._reserve(pool_request, connection, fresh)
            self.queue = waiting

        if len(self.connections) > self.max_keepalive_connections:
            idle_ones = [c for c in self.connections if c.is_idle() and id(c) not in self.reserved]
            for extra in idle_ones[: max(0, len(idle_ones) - self.max_keepalive_connections)]:
                self.connections.remove(extra)
                closing.append(extra)
        return closing

    def _find_available(self, origin: Origin, closing: List[C]) -> Optional[C]:
        # First the connections that went idle for this origin, most recent first.
        hints = self.idle_hints.get(origin)
        while hints:
            connection = hints.pop()
            if (
                connection.is_idle()
                and connection.is_available()
                and id(connection) not in self.reserved
                and connection in self.connections
            ):
                if connection.has_expired():
                    self.connections.remove(connection)
                    closing.append(connection)
                    continue
                return connection
        promised: Optional[C] = None
        for connection in self.connections:
            if not (connection.can_handle_request(origin) and connection.is_available()):
                continue
            if connection.is_idle():
                if id(connection) in self.reserved:
                    # Promised to a request that has not started on it yet. A multiplexed one
                    # takes this request too, if nothing else does (its expiry was checked
                    # when it was promised).
                    if promised is None and multiplexes(connection):
                        promised = connection
                    continue
                if connection.has_expired():
                    self.connections.remove(connection)
                    closing.append(connection)
                    return self._find_available(origin, closing)
            return connection
        return promised

    def _unreserved_idle(self) -> Optional[C]:
        for connection in self.connections:
            if connection.is_idle() and id(connection) not in self.reserved:
                return connection
        return None

    def _sweep(self, now: float, closing: List[C]) -> None:
        keep = []
        for connection in self.connections:
            if connection.is_closed():
                continue
            if timed_out(connection, now):
                closing.append(connection)
                continue
            keep.append(connection)
        self.connections = keep

    def _reserve(self, pool_request: PoolRequest[C], connection: C, fresh: bool) -> None:
        pool_request.assign(connection, fresh)
        key = id(connection)
        self.reserved[key] = self.reserved.get(key, 0) + 1

    def _stop_using(self, pool_request: PoolRequest[C]) -> None:
        if not pool_request.started:
            return
        pool_request.started = False
        key = id(pool_request.connection)
        count = self.using.get(key, 0) - 1
        if count > 0:
            self.using[key] = count
        else:
            self.using.pop(key, None)

    def _unreserve(self, pool_request: PoolRequest[C]) -> None:
        """The request starts using (or gives up) the connection it was promised."""
        if pool_request.connection is None or pool_request.started:
            return
        key = id(pool_request.connection)
        count = self.reserved.get(key, 0) - 1
        if count > 0:
            self.reserved[key] = count
        else:
            self.reserved.pop(key, None)

    # -- introspection -------------------------------------------------------------------------

    def counts(self) -> Tuple[int, int, int, int]:
        """(active requests, queued requests, active connections, idle connections)."""
        queued = len(self.queue)
        idle = sum(1 for c in self.connections if c.is_idle())
        return len(self.requests) - queued, queued, len(self.connections) - idle, idle
