"""The connection pool: which request gets which connection, and keep-alive bookkeeping.

The decisions (`PoolState`) are plain code with no I/O; `_handle()` is the protocol generator
that the sync class here and the async class in `httpcore.aio` drive.
"""

from __future__ import annotations

import functools
import logging
import ssl
import sys
import time
from collections import deque
from typing import Any, Deque, Dict, Iterable, List, Optional

from ._drive import CLOSE, ITER, NEXT, WAIT, BodyGen, Gen, OpStream
from ._exceptions import (
    ConnectionNotAvailable,
    PoolTimeout,
    ReadError,
    RemoteProtocolError,
    UnsupportedProtocol,
    WriteError,
)
from ._interfaces import RequestInterface, SyncShell, delegate, lost_unanswered
from ._models import ByteStream, Origin, Proxy, Request, Response
from ._trace import traced

logger = logging.getLogger("httpcore.connection_pool")

SUPPORTED_SCHEMES = (b"http", b"https", b"ws", b"wss")

# RFC 9110 §9.2.2; a request of these methods may be sent again when its connection was lost.
IDEMPOTENT_METHODS = frozenset((b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"))


def replayable(request: Request) -> bool:
    """Whether the pool may send `request` again (API.md §3.7): an idempotent method and a
    body that can be read twice (a caller's iterator never is)."""
    stream = request.stream
    return request.method in IDEMPOTENT_METHODS and (
        stream is None or type(stream) is ByteStream or isinstance(stream, bytes)
    )


def _nothing() -> Gen[None]:
    return
    yield


class PoolRequest:
    """A request in the pool: waiting for a connection, or using one."""

    __slots__ = ("connection", "event", "fresh", "request", "started")

    def __init__(self, request: Request) -> None:
        self.request = request
        self.connection: Any = None
        self.event: Any = None
        # `fresh`: the connection was created for this request and it has not used it yet.
        self.fresh = False
        self.started = False

    def assign(self, connection: Any, fresh: bool) -> None:
        self.connection = connection
        self.fresh = fresh
        if self.event is not None:
            self.event.set()

    def wait_sync(self, timeout: Optional[float]) -> None:
        if not self.event.wait(timeout):
            raise PoolTimeout()

    async def wait_async(self, timeout: Optional[float]) -> None:
        await self.event.wait(timeout)


def check_url(request: Request, uds: Optional[str]) -> None:
    """Reject a URL the pool cannot send, before any connect or DNS lookup."""
    url = request.url
    scheme = url.scheme
    if scheme in SUPPORTED_SCHEMES:
        if not url.host and uds is None:
            raise UnsupportedProtocol(
                f"Request URL is missing a host: {bytes(url).decode('ascii', 'replace')!r}."
            )
        return
    if scheme == b"":
        raise UnsupportedProtocol("Request URL is missing an 'http://' or 'https://' protocol.")
    raise UnsupportedProtocol(
        f"Request URL has an unsupported protocol '{scheme.decode('ascii', 'replace')}://'."
    )


def _timed_out(connection: Any, now: float) -> bool:
    check = getattr(connection, "_has_timed_out", None)
    return bool(check(now)) if check is not None else bool(connection.has_expired())


class PoolCore:
    """Everything of a connection pool except the flavour of I/O."""

    _io: Any
    _connection_class: Any
    _forward_class: Any = None
    _tunnel_class: Any = None

    def __init__(
        self,
        ssl_context: Optional[ssl.SSLContext] = None,
        proxy: Optional[Proxy] = None,
        max_connections: Optional[int] = 10,
        max_keepalive_connections: Optional[int] = None,
        keepalive_expiry: Optional[float] = None,
        http1: bool = True,
        http2: bool = False,
        retries: int = 0,
        local_address: Optional[str] = None,
        uds: Optional[str] = None,
        network_backend: Any = None,
        socket_options: Optional[Iterable[Any]] = None,
    ) -> None:
        self._ssl_context = ssl_context
        self._proxy = proxy
        self._max_connections = sys.maxsize if max_connections is None else max_connections
        self._max_keepalive_connections = (
            sys.maxsize if max_keepalive_connections is None else max_keepalive_connections
        )
        self._max_keepalive_connections = min(
            self._max_connections, self._max_keepalive_connections
        )
        self._keepalive_expiry = keepalive_expiry
        self._http1 = http1
        self._http2 = http2
        self._retries = retries
        self._local_address = local_address
        self._uds = uds
        self._network_backend = (
            self._io.default_backend() if network_backend is None else network_backend
        )
        self._socket_options = socket_options
        self._connections: List[Any] = []
        self._requests: Dict[PoolRequest, None] = {}  # every request in the pool, in order
        self._queue: Deque[PoolRequest] = deque()  # those waiting for a connection
        self._reserved: Dict[int, int] = {}  # id(connection) -> requests promised it, not started
        self._next_sweep = 0.0
        self._idle_hints: Dict[Origin, List[Any]] = {}  # origin -> connections that went idle
        self._lock = self._io.state_lock()

    # -- creating connections ------------------------------------------------------------------

    def create_connection(self, origin: Origin) -> Any:
        """Make a connection for `origin` (override to customise)."""
        if self._proxy is not None:
            return self._create_proxied_connection(origin, self._proxy)
        return self._connection_class(
            origin=origin,
            ssl_context=self._ssl_context,
            keepalive_expiry=self._keepalive_expiry,
            http1=self._http1,
            http2=self._http2,
            retries=self._retries,
            local_address=self._local_address,
            uds=self._uds,
            network_backend=self._network_backend,
            socket_options=self._socket_options,
        )

    def _create_proxied_connection(self, origin: Origin, proxy: Proxy) -> Any:
        proxy_scheme = proxy.url.scheme
        if proxy_scheme in (b"socks5", b"socks5h", b"socks4", b"socks4a"):
            from ._proxy import socks_connection_class

            return socks_connection_class(self._io.is_async)(
                proxy_origin=proxy.url.origin,
                remote_origin=origin,
                proxy_auth=proxy.auth,
                ssl_context=self._ssl_context,
                keepalive_expiry=self._keepalive_expiry,
                http1=self._http1,
                http2=self._http2,
                network_backend=self._network_backend,
                proxy_scheme=proxy_scheme,
                socket_options=self._socket_options,
                retries=self._retries,
                local_address=self._local_address,
            )
        if origin.scheme == b"http":
            return self._forward_class(
                proxy_origin=proxy.url.origin,
                remote_origin=origin,
                proxy_headers=proxy.headers,
                keepalive_expiry=self._keepalive_expiry,
                network_backend=self._network_backend,
                socket_options=self._socket_options,
                proxy_ssl_context=proxy.ssl_context,
                retries=self._retries,
                local_address=self._local_address,
            )
        return self._tunnel_class(
            proxy_origin=proxy.url.origin,
            remote_origin=origin,
            ssl_context=self._ssl_context,
            proxy_ssl_context=proxy.ssl_context,
            proxy_headers=proxy.headers,
            keepalive_expiry=self._keepalive_expiry,
            http1=self._http1,
            http2=self._http2,
            network_backend=self._network_backend,
            socket_options=self._socket_options,
            retries=self._retries,
            local_address=self._local_address,
        )

    # -- the decisions (under the lock, no I/O) ------------------------------------------------
    #
    # Kept cheap on the hot path: an arriving request scans the connections with two cheap calls
    # each and stops at the first fit; a closing response looks only at its own connection. Full
    # sweeps (closed / keep-alive expired) happen only when the pool is at capacity or when the
    # keep-alive timer is due, and the only syscall (the readability check of an idle HTTP/1.1
    # connection) is made on the connection being handed out.

    def _sweep(self, now: float, closing: List[Any]) -> None:
        keep = []
        for connection in self._connections:
            if connection.is_closed():
                continue
            if _timed_out(connection, now):
                closing.append(connection)
                continue
            keep.append(connection)
        self._connections = keep

    def _reserve(self, status: PoolRequest, connection: Any, fresh: bool) -> None:
        status.assign(connection, fresh)
        key = id(connection)
        self._reserved[key] = self._reserved.get(key, 0) + 1

    def _unreserve(self, status: PoolRequest) -> None:
        """The request starts using (or gives up) the connection it was promised."""
        if status.connection is None or status.started:
            return
        key = id(status.connection)
        count = self._reserved.get(key, 0) - 1
        if count > 0:
            self._reserved[key] = count
        else:
            self._reserved.pop(key, None)

    def _find_available(self, origin: Origin, closing: List[Any]) -> Any:
        # First the connections that went idle for this origin, most recent first (O(1) in the
        # steady state); entries may be stale, so each is checked again.
        hints = self._idle_hints.get(origin)
        while hints:
            connection = hints.pop()
            if (
                connection.is_idle()
                and connection.is_available()
                and id(connection) not in self._reserved
                and connection in self._connections
            ):
                if connection.has_expired():
                    self._connections.remove(connection)
                    closing.append(connection)
                    continue
                return connection
        for connection in self._connections:
            if not (connection.can_handle_request(origin) and connection.is_available()):
                continue
            if connection.is_idle():
                if id(connection) in self._reserved:
                    continue
                if connection.has_expired():
                    self._connections.remove(connection)
                    closing.append(connection)
                    return self._find_available(origin, closing)
            return connection
        return None

    def _assign(self) -> List[Any]:
        """Hand connections to queued requests; return the connections to close."""
        closing: List[Any] = []
        now = time.monotonic()
        if self._keepalive_expiry is not None and now >= self._next_sweep:
            self._sweep(now, closing)
            self._next_sweep = now + min(self._keepalive_expiry / 2, 1.0)
        queue = self._queue
        if queue:
            swept = False
            waiting: Deque[PoolRequest] = deque()
            for status in queue:
                origin = status.request.url.origin
                connection = self._find_available(origin, closing)
                fresh = connection is None
                if connection is None:
                    if len(self._connections) >= self._max_connections and not swept:
                        self._sweep(now, closing)
                        swept = True
                    if len(self._connections) >= self._max_connections:
                        idle = next(
                            (
                                c
                                for c in self._connections
                                if c.is_idle() and id(c) not in self._reserved
                            ),
                            None,
                        )
                        if idle is None:
                            waiting.append(status)
                            continue
                        self._connections.remove(idle)
                        closing.append(idle)
                    connection = self.create_connection(origin)
                    self._connections.append(connection)
                self._reserve(status, connection, fresh)
            self._queue = waiting

        if len(self._connections) > self._max_keepalive_connections:
            idle = [c for c in self._connections if c.is_idle() and id(c) not in self._reserved]
            for connection in idle[: max(0, len(idle) - self._max_keepalive_connections)]:
                self._connections.remove(connection)
                closing.append(connection)
        return closing

    def _release(self, status: PoolRequest) -> List[Any]:
        """Take a finished or failed request out of the pool; return connections to close."""
        self._requests.pop(status, None)
        connection = status.connection
        closing: List[Any] = []
        if connection is None:
            if status in self._queue:
                self._queue.remove(status)
        else:
            self._unreserve(status)
            if connection in self._connections:
                if status.fresh:
                    # Created for this request, never used by it: nobody else will.
                    self._connections.remove(connection)
                    closing.append(connection)
                elif connection.is_closed():
                    self._connections.remove(connection)
                elif connection.is_idle():
                    if self._keepalive_expiry == 0 or _timed_out(connection, time.monotonic()):
                        self._connections.remove(connection)
                        closing.append(connection)
                    else:
                        hints = self._idle_hints.setdefault(status.request.url.origin, [])
                        hints.append(connection)
                        if len(hints) > len(self._connections):
                            del hints[: len(hints) - len(self._connections)]
        closing += self._assign()
        return closing

    # -- the protocol ------------------------------------------------------------------------

    def _close_connections(self, connections: List[Any]) -> Gen[None]:
        # Close every one even if a close is interrupted (e.g. re-cancelled): these
        # connections are already out of the pool, nobody else would close them.
        error: Optional[BaseException] = None
        for connection in connections:
            try:
                yield (CLOSE, connection)
            except BaseException as exc:
                error = error or exc
        if error is not None:
            raise error

    def _handle(self, request: Request) -> Gen[Response]:
        check_url(request, self._uds)
        pool_timeout = request.extensions.get("timeout", {}).get("pool", None)
        status = PoolRequest(request)
        with self._lock:
            self._requests[status] = None
            self._queue.append(status)
            closing = self._assign()
            if status.connection is None:
                status.event = self._io.new_event()
        retried = False
        try:
            if closing:
                yield from self._close_connections(closing)
            while True:
                if status.connection is None:
                    yield (WAIT, status, pool_timeout)
                with self._lock:
                    self._unreserve(status)
                    status.started = True
                    status.fresh = False
                try:
                    response = yield from delegate(status.connection, request)
                except ConnectionNotAvailable:
                    yield from self._requeue(status)
                    continue
                except (RemoteProtocolError, ReadError, WriteError) as exc:
                    # A kept-alive connection the server closed as the request went out.
                    if retried or not (lost_unanswered(status.connection) and replayable(request)):
                        raise
                    retried = True
                    info = {"request": request, "reason": f"{type(exc).__name__}: {exc}"}
                    yield from traced(logger, "retry_request", request, info, _nothing())
                    yield from self._requeue(status)
                    continue
                break
        except BaseException:
            with self._lock:
                closing = self._release(status)
            yield from self._close_connections(closing)
            raise
        if self._queue:
            # A multiplexed connection may take more requests now that this one started.
            with self._lock:
                closing = self._assign()
            yield from self._close_connections(closing)

        inner = response.stream
        return Response._wrap(
            response.status,
            response.headers,
            self._io.stream_class(
                self._pool_body(status, inner),
                functools.partial(self._response_closed, status, inner),
            ),
            response.extensions,
        )

    def _requeue(self, status: PoolRequest) -> Gen[None]:
        """Put a request whose connection could not serve it back at the head of the queue."""
        with self._lock:
            connection = status.connection
            if connection.is_closed() and connection in self._connections:
                # E.g. an HTTP/2 connection shut down by GOAWAY: gone for good.
                self._connections.remove(connection)
            status.connection = None
            status.started = False
            self._queue.appendleft(status)
            closing = self._assign()
            if status.connection is None:
                status.event = self._io.new_event()
        yield from self._close_connections(closing)

    def _pool_body(self, status: PoolRequest, inner: Any) -> BodyGen:
        try:
            if isinstance(inner, OpStream):
                # Our own body stream: run its generator here, not through a second driver.
                yield from inner._body
                return
            iterator = yield (ITER, inner)
            while True:
                chunk = yield (NEXT, iterator)
                if chunk is None:
                    return
                yield chunk
        except GeneratorExit:
            raise
        except BaseException:
            yield from self._response_closed(status, inner)
            raise

    def _response_closed(self, status: PoolRequest, inner: Any) -> Gen[None]:
        try:
            if isinstance(inner, OpStream):
                yield from inner.closing()  # as CLOSE would, without a second driver
            elif hasattr(inner, "close") or hasattr(inner, "aclose"):
                yield (CLOSE, inner)
        finally:
            with self._lock:
                closing = self._release(status)
            yield from self._close_connections(closing)

    def _close(self) -> Gen[None]:
        with self._lock:
            closing, self._connections = self._connections, []
            self._idle_hints.clear()
        yield from self._close_connections(closing)

    # -- introspection ---------------------------------------------------------------------------

    @property
    def connections(self) -> List[Any]:
        """A copy of the pool's connections, oldest first."""
        return list(self._connections)

    def __repr__(self) -> str:
        with self._lock:
            queued = len(self._queue)
            active_requests = len(self._requests) - queued
            idle = sum(1 for c in self._connections if c.is_idle())
            active = len(self._connections) - idle
        return (
            f"<{self.__class__.__name__} [Requests: {active_requests} active, {queued} queued"
            f" | Connections: {active} active, {idle} idle]>"
        )


class ConnectionPool(SyncShell, PoolCore, RequestInterface):
    """A pool of HTTP connections, shared safely between threads."""

    from ._connection import HTTPConnection as _connection_class
