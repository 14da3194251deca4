"""The connection pool: the protocol generator that serves each request through the pool, and
the sync class. The decisions (which request gets which connection, when one is closed) are in
`_pool_state.py`; the retry of a request lost to a stale keep-alive connection is here.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Callable, Iterable, List, Optional

from ._altsvc import AltSvcCache
from ._backends import SOCKET_OPTION
from ._connection import HTTPConnection, socks_connection_class
from ._drive import CLOSE, BodyGen, Flavour, Gen, OpStream
from ._exceptions import (
    ConnectionNotAvailable,
    ReadError,
    RemoteProtocolError,
    UnsupportedProtocol,
    WriteError,
)
from ._http3 import http3_connection_class, through_proxy
from ._http11_simple import in_memory_body
from ._interfaces import AnyConnection, RequestInterface, SyncShell, delegate, lost_unanswered
from ._models import Origin, Proxy, Request, Response, Stream
from ._ops import AnyNetworkBackend, check_body, close, iterate, next_item, wait
from ._pool_state import PoolRequest, PoolState
from ._proxy import ForwardHTTPConnection, ProxyPoolCore, TunnelHTTPConnection
from ._trace import traced

if TYPE_CHECKING:
    import ssl  # annotations only: importing ssl costs a cold start ~9 ms

logger = logging.getLogger("httpcore.connection_pool")

SUPPORTED_SCHEMES = (b"http", b"https", b"ws", b"wss")

# RFC 9110 §9.2.2; a request of these methods may be sent again when its connection was lost.
IDEMPOTENT_METHODS = frozenset((b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"))


def replayable(request: Request) -> bool:
    """Whether the pool may send `request` again (API.md §3.7): an idempotent method and a
    body held in memory (bytes, ours or httpx's `ByteStream`; a caller's iterator never is)."""
    stream = request.stream
    return request.method in IDEMPOTENT_METHODS and (
        stream is None or in_memory_body(stream) is not None
    )


def _nothing() -> Gen[None]:
    return
    yield


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


class PoolCore:
    """Everything of a connection pool except the flavour of I/O."""

    _io: Flavour
    # The classes of its connections: direct, forwarding through a proxy, tunnelled.
    _connection_class: Callable[..., AnyConnection]
    _forward_class: Callable[..., AnyConnection]
    _tunnel_class: Callable[..., AnyConnection]

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
        network_backend: Optional[AnyNetworkBackend] = None,
        socket_options: Optional[Iterable[SOCKET_OPTION]] = None,
        http3: bool = False,
    ) -> None:
        self._ssl_context = ssl_context
        self._proxy = proxy
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
        # HTTP/3 (httpcore-http3): prior knowledge, or discovery through Alt-Svc (`_http3.py`).
        if http3 and proxy is not None:
            http3 = through_proxy(http1, http2)  # proxies tunnel TCP only
        self._http3 = http3
        self._alt_svc = AltSvcCache() if http3 else None
        if http3:
            http3_connection_class(self._io.is_async)  # fail early if not installed
        # `create_connection` is looked up on each call: subclasses override it.
        self._state: PoolState[AnyConnection] = PoolState(
            lambda origin: self.create_connection(origin),
            max_connections,
            max_keepalive_connections,
            keepalive_expiry,
        )
        self._lock = self._io.state_lock()

    # -- creating connections ------------------------------------------------------------------

    def create_connection(self, origin: Origin) -> AnyConnection:
        """Make a connection for `origin` (override to customise)."""
        if self._proxy is not None:
            return self._create_proxied_connection(origin, self._proxy)
        extra = {"http3": True, "alt_svc": self._alt_svc} if self._http3 else {}
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
            **extra,
        )

    def _create_proxied_connection(self, origin: Origin, proxy: Proxy) -> AnyConnection:
        proxy_scheme = proxy.url.scheme
        if proxy_scheme in (b"socks5", b"socks5h", b"socks4", b"socks4a"):
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

    # -- the protocol ------------------------------------------------------------------------

    def _close_connections(self, connections: List[AnyConnection]) -> Gen[None]:
        # Close every one even if a close is interrupted (e.g. re-cancelled): these
        # connections are already out of the pool, nobody else would close them.
        error: Optional[BaseException] = None
        for connection in connections:
            try:
                yield from close(connection)
            except BaseException as exc:
                error = error or exc
        if error is not None:
            raise error

    def _handle(self, request: Request) -> Gen[Response]:
        check_url(request, self._uds)
        check_body(request.stream, self._io.is_async)
        pool_timeout = request.extensions.get("timeout", {}).get("pool", None)
        pool_request: PoolRequest[AnyConnection] = PoolRequest(request)
        state = self._state
        with self._lock:
            closing = state.add(pool_request)
            if pool_request.connection is None:
                pool_request.event = self._io.new_event()
        retried = False
        try:
            if closing:
                yield from self._close_connections(closing)
            while True:
                if pool_request.connection is None:
                    yield from wait(pool_request, pool_timeout)
                with self._lock:
                    state.start(pool_request)
                try:
                    response = yield from delegate(pool_request.connection, request)
                except ConnectionNotAvailable:
                    yield from self._requeue(pool_request)
                    continue
                except (RemoteProtocolError, ReadError, WriteError) as exc:
                    # A kept-alive connection the server closed as the request went out.
                    connection = pool_request.connection
                    if retried or not (lost_unanswered(connection) and replayable(request)):
                        raise
                    retried = True
                    info = {"request": request, "reason": f"{type(exc).__name__}: {exc}"}
                    yield from traced(logger, "retry_request", request, info, _nothing())
                    yield from self._requeue(pool_request)
                    continue
                break
        except BaseException:
            with self._lock:
                closing = state.release(pool_request)
            yield from self._close_connections(closing)
            raise
        inner = response.stream
        if state.queue:
            # A multiplexed connection may take more requests now that this one started.
            with self._lock:
                closing = state.assign_requests_to_connections()
            try:
                yield from self._close_connections(closing)
            except BaseException:
                # Cancelled (asyncio re-raises a cancellation once the closes are done) or a
                # close failed: the response is never handed out, so close it and release
                # the request here, or its connection stays busy for good.
                yield from self._response_closed(pool_request, inner)
                raise

        return Response._wrap(
            response.status,
            response.headers,
            self._io.stream_class(
                self._pool_body(pool_request, inner),
                functools.partial(self._response_closed, pool_request, inner),
            ),
            response.extensions,
        )

    def _requeue(self, pool_request: PoolRequest[AnyConnection]) -> Gen[None]:
        """Send a request whose connection could not serve it back to the head of the queue."""
        with self._lock:
            closing = self._state.requeue(pool_request)
            if pool_request.connection is None:
                pool_request.event = self._io.new_event()
        yield from self._close_connections(closing)

    def _pool_body(self, pool_request: PoolRequest[AnyConnection], inner: Stream) -> BodyGen:
        try:
            if isinstance(inner, OpStream):
                # Our own body stream: run its generator here, not through a second driver.
                yield from inner._body
                return
            iterator = yield from iterate(inner)
            while True:
                chunk = yield from next_item(iterator)
                if chunk is None:
                    return
                yield chunk
        except GeneratorExit:
            raise
        except BaseException:
            yield from self._response_closed(pool_request, inner)
            raise

    def _response_closed(
        self, pool_request: PoolRequest[AnyConnection], inner: Stream
    ) -> Gen[None]:
        try:
            if isinstance(inner, OpStream):
                yield from inner.closing()  # as CLOSE would, without a second driver
            elif hasattr(inner, "close") or hasattr(inner, "aclose"):
                yield (CLOSE, inner)
        finally:
            with self._lock:
                closing = self._state.release(pool_request)
            yield from self._close_connections(closing)

    def _close(self) -> Gen[None]:
        with self._lock:
            closing = self._state.close_all()
        yield from self._close_connections(closing)

    # -- introspection ---------------------------------------------------------------------------

    @property
    def connections(self) -> List[AnyConnection]:
        """A copy of the pool's connections, oldest first."""
        return list(self._state.connections)

    def __repr__(self) -> str:
        with self._lock:
            active_requests, queued, active, idle = self._state.counts()
        return (
            f"<{self.__class__.__name__} [Requests: {active_requests} active, {queued} queued"
            f" | Connections: {active} active, {idle} idle]>"
        )


class ConnectionPool(SyncShell, PoolCore, RequestInterface):
    """A pool of HTTP connections, shared safely between threads."""

    _connection_class = HTTPConnection
    _forward_class = ForwardHTTPConnection
    _tunnel_class = TunnelHTTPConnection


class HTTPProxy(ProxyPoolCore, ConnectionPool):
    """A connection pool that sends every request through an HTTP proxy."""
