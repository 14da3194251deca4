"""HTTPConnection: connects (TCP or Unix socket, TLS, retries) and picks HTTP/1.1 or HTTP/2."""

from __future__ import annotations

import functools
import logging
from typing import (
    TYPE_CHECKING,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Optional,
    Protocol,
)

from . import _http3
from ._altsvc import AltSvcCache
from ._backends import SOCKET_OPTION
from ._drive import Flavour, Gen
from ._exceptions import ConnectError, ConnectionNotAvailable, ConnectTimeout
from ._http3 import http3_connection_class
from ._http11 import HTTP11Connection, origin_mismatch
from ._interfaces import AnyConnection, ConnectionInterface, SyncShell, delegate, lost_unanswered
from ._models import Origin, Request, Response
from ._ops import (
    AnyNetworkBackend,
    AnyNetworkStream,
    TCPArgs,
    TLSArgs,
    UnixArgs,
    close,
    connect_tcp,
    connect_unix,
    lock,
    sleep,
    start_tls,
    unlock,
)
from ._ssl import default_ssl_context
from ._trace import traced

if TYPE_CHECKING:
    import ssl  # annotations only: importing ssl costs a cold start ~9 ms

logger = logging.getLogger("httpcore.connection")

RETRIES_BACKOFF_FACTOR = 0.5  # 0s, 0.5s, 1s, 2s, 4s, ...

HTTP2_MISSING = (
    "Attempted to use http2 support, but the `h2` package is not installed. "
    "Use 'pip install httpcore[http2]'."
)


SOCKS_MISSING = (
    "Attempted to use SOCKS support, but the `socksio` package is not installed. "
    "Use 'pip install httpcore[socks]'."
)


def socks_connection_class(is_async: bool) -> Callable[..., AnyConnection]:
    """The SOCKS connection class of httpcore-socks, looked up at the point of use."""
    try:
        import httpcore.socks as socks

        cls: Callable[..., AnyConnection] = getattr(
            socks, "AsyncSocks5Connection" if is_async else "Socks5Connection"
        )
    except (ImportError, AttributeError):
        raise RuntimeError(SOCKS_MISSING) from None
    return cls


def exponential_backoff(factor: float) -> Iterator[float]:
    """Delays before each retry: 0, then factor * 2**n."""
    yield 0
    n = 0
    while True:
        yield factor * (2**n)
        n += 1


@functools.cache
def shared_default_context(http2: bool) -> ssl.SSLContext:
    # Building a context loads the CA bundle (milliseconds): build each ALPN variant once.
    context = default_ssl_context()
    context.set_alpn_protocols(["http/1.1", "h2"] if http2 else ["http/1.1"])
    return context


def http2_connection_class(is_async: bool) -> Callable[..., AnyConnection]:
    """The HTTP/2 class of httpcore-http2, looked up when a connection negotiates h2."""
    try:
        import httpcore.http2 as http2

        cls: Callable[..., AnyConnection] = getattr(
            http2, "AsyncHTTP2Connection" if is_async else "HTTP2Connection"
        )
    except (ImportError, AttributeError):
        raise RuntimeError(HTTP2_MISSING) from None
    return cls


class ProtocolChoice(Protocol):
    """What `start_tls_and_pick_protocol` reads of the connection it connects for (a direct,
    tunnelled or SOCKS connection)."""

    @property
    def _http1(self) -> bool: ...
    @property
    def _http2(self) -> bool: ...
    @property
    def _keepalive_expiry(self) -> Optional[float]: ...
    @property
    def _io(self) -> Flavour: ...
    @property
    def _http11_class(self) -> Callable[..., AnyConnection]: ...


def tls_kwargs(
    owner: ProtocolChoice,
    origin: Origin,
    ssl_context: Optional[ssl.SSLContext],
    server_hostname: str,
    timeout: Optional[float],
) -> Optional[TLSArgs]:
    """The `start_tls` arguments for `origin`, or None when it is not TLS (http/ws)."""
    if origin.scheme not in (b"https", b"wss"):
        return None
    if ssl_context is None:
        ssl_context = shared_default_context(owner._http2)
    else:
        ssl_context.set_alpn_protocols(["http/1.1", "h2"] if owner._http2 else ["http/1.1"])
    return {"ssl_context": ssl_context, "server_hostname": server_hostname, "timeout": timeout}


def may_pick_http2(http1: bool, http2: bool, origin: Origin) -> bool:
    """Whether `start_tls_and_pick_protocol` may pick HTTP/2 for `origin`: by ALPN over TLS,
    or by prior knowledge when HTTP/2 is all the connection may speak. A connection that may
    takes more requests before it is connected; they wait for it."""
    return http2 and (origin.scheme in (b"https", b"wss") or not http1)


def start_tls_and_pick_protocol(
    owner: ProtocolChoice,
    stream: AnyNetworkStream,
    request: Request,
    origin: Origin,
    ssl_context: Optional[ssl.SSLContext],
    server_hostname: str,
    timeout: Optional[float],
    trace_logger: logging.Logger,
) -> Gen[AnyConnection]:
    """TLS with ALPN (for https/wss origins), then the inner connection object.

    Shared by direct, tunnelled and SOCKS connections. `owner` supplies `_http1`, `_http2`,
    `_keepalive_expiry`, `_io` and `_http11_class`.
    """
    kwargs = tls_kwargs(owner, origin, ssl_context, server_hostname, timeout)
    if kwargs is not None:
        try:
            stream = yield from traced(
                trace_logger, "start_tls", request, kwargs, start_tls(stream, kwargs)
            )
        except BaseException:
            # Backends close the stream when the handshake fails, but not when it is cancelled.
            yield from close(stream)
            raise
    ssl_object = stream.get_extra_info("ssl_object")
    http2_negotiated = ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2"
    if http2_negotiated or (owner._http2 and not owner._http1):
        try:
            cls = http2_connection_class(owner._io.is_async)
        except BaseException:
            # httpcore-http2 missing: the connected stream is ours to close, not the GC's.
            yield from close(stream)
            raise
    else:
        cls = owner._http11_class
    return cls(origin=origin, stream=stream, keepalive_expiry=owner._keepalive_expiry)


class LazyConnectionState:
    """State queries of a connection that connects on its first request.

    Until connected it answers from its own flags; afterwards the inner HTTP/1.1 or HTTP/2
    connection answers. Shared by direct and SOCKS connections.
    """

    _connection: Optional[AnyConnection]
    _connect_failed: bool
    _remote_origin: Origin
    _http1: bool
    _http2: bool

    def can_handle_request(self, origin: Origin) -> bool:
        """Whether this connection serves `origin` (each connection serves one origin)."""
        return origin == self._remote_origin

    def is_available(self) -> bool:
        """Whether it can take another request now."""
        if self._connection is None:
            # Until connected, only a connection that may turn out HTTP/2 takes more requests.
            return (
                may_pick_http2(self._http1, self._http2, self._remote_origin)
                and not self._connect_failed
            )
        return bool(self._connection.is_available())

    def has_expired(self) -> bool:
        """Whether the pool should close it (keep-alive expired, closed by the server)."""
        if self._connection is None:
            return self._connect_failed
        return bool(self._connection.has_expired())

    def _has_timed_out(self, now: float) -> bool:
        if self._connection is None:
            return self._connect_failed
        check = getattr(self._connection, "_has_timed_out", None)
        return bool(check(now)) if check is not None else bool(self._connection.has_expired())

    def is_idle(self) -> bool:
        """Whether it is open with no request in progress."""
        if self._connection is None:
            return self._connect_failed
        return bool(self._connection.is_idle())

    def is_closed(self) -> bool:
        """Whether it is closed (the pool drops it without closing it again)."""
        if self._connection is None:
            return self._connect_failed
        return bool(self._connection.is_closed())

    def _lost_unanswered(self) -> bool:
        return lost_unanswered(self._connection)

    def info(self) -> str:
        """A short description of its state, as shown in its repr."""
        if self._connection is None:
            return "CONNECTION FAILED" if self._connect_failed else "CONNECTING"
        return str(self._connection.info())

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__} [{self.info()}]>"


class HTTPConnectionCore(LazyConnectionState):
    """A connection to one origin that connects on its first request."""

    _io: Flavour
    _http11_class: Callable[..., AnyConnection]

    def __init__(
        self,
        origin: Origin,
        ssl_context: Optional[ssl.SSLContext] = None,
        keepalive_expiry: Optional[float] = None,
        http1: bool = True,
        http2: bool = False,
        retries: int = 0,
        local_address: Optional[str] = None,
        uds: Optional[str] = None,
        network_backend: Optional[AnyNetworkBackend] = None,
        socket_options: Optional[Iterable[SOCKET_OPTION]] = None,
        http3: bool = False,
        alt_svc: Optional[AltSvcCache] = None,
    ) -> None:
        self._remote_origin = origin
        self._ssl_context = ssl_context
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
        self._connection: Optional[AnyConnection] = None
        self._connect_failed = False
        self._connecting = False
        self._connect_lock = self._io.io_lock()
        # HTTP/3 (`_http3.py`): with prior knowledge (https, only http3 asked for), or where
        # `alt_svc` (the pool's AltSvcCache) knows an h3 alternative for the origin.
        self._http3 = http3
        self._alt_svc = alt_svc if http3 else None
        if http3:
            http3_connection_class(self._io.is_async)  # fail early if not installed

    def is_available(self) -> bool:
        if self._http3:
            return _http3.is_available(self, LazyConnectionState.is_available)
        return LazyConnectionState.is_available(self)

    def _has_timed_out(self, now: float) -> bool:
        if self._alt_svc is not None and _http3.moving_to_http3(self):
            return self.is_idle()
        return LazyConnectionState._has_timed_out(self, now)

    def _handle(self, request: Request) -> Gen[Response]:
        if request.url.origin != self._remote_origin:
            raise origin_mismatch(request, self._remote_origin)
        connection = self._connection
        if connection is None:
            try:
                yield from lock(self._connect_lock)
            except BaseException:
                # Cancelled while waiting for the lock. If another request is connecting (a
                # pending HTTP/2 connection is shared), it settles the outcome; otherwise nobody
                # ever will connect this one: mark it failed so the pool drops it.
                if not self._connecting:
                    self._connect_failed = True
                raise
            try:
                if self._connect_failed:
                    # The request connecting it failed or was cancelled while we waited; the
                    # pool has dropped this connection: go back to the pool for another.
                    raise ConnectionNotAvailable()
                if self._connection is None:
                    self._connecting = True
                    self._connection = yield from self._connect(request)
            except BaseException:
                self._connect_failed = True
                raise
            finally:
                self._connecting = False
                yield from unlock(self._connect_lock)
            connection = self._connection
        response: Response = yield from delegate(connection, request)
        if self._alt_svc is not None:
            _http3.learn(self, response)
        return response

    def _connect(self, request: Request) -> Gen[AnyConnection]:
        """Connect, TLS, pick the protocol: the inner connection. A failed TCP connect or TLS
        handshake is retried from the TCP connect, up to `retries` times (API.md §3.6)."""
        if self._http3:
            connection: Optional[AnyConnection] = yield from _http3.connect(self, request)
            if connection is not None:
                return connection
        timeout = request.extensions.get("timeout", {}).get("connect", None)
        delays = exponential_backoff(RETRIES_BACKOFF_FACTOR)
        retries_left = self._retries
        backend = self._network_backend
        origin = self._remote_origin
        server_hostname = request.extensions.get("sni_hostname") or origin.host.decode("ascii")
        while True:
            # The arguments of the step, also the info of its trace events.
            kwargs: Mapping[str, object]
            if self._uds is None:
                step = "connect_tcp"
                tcp_kwargs: TCPArgs = {
                    "host": origin.host.decode("ascii"),
                    "port": origin.port,
                    "local_address": self._local_address,
                    "timeout": timeout,
                    "socket_options": self._socket_options,
                }
                kwargs, connecting = tcp_kwargs, connect_tcp(backend, tcp_kwargs)
            else:
                step = "connect_unix_socket"
                unix_kwargs: UnixArgs = {
                    "path": self._uds,
                    "timeout": timeout,
                    "socket_options": self._socket_options,
                }
                kwargs, connecting = unix_kwargs, connect_unix(backend, unix_kwargs)
            try:
                stream = yield from traced(logger, step, request, kwargs, connecting, close)
            except (ConnectError, ConnectTimeout):
                if retries_left <= 0:
                    raise
            else:
                try:
                    return (
                        yield from start_tls_and_pick_protocol(
                            self,
                            stream,
                            request,
                            origin,
                            self._ssl_context,
                            server_hostname,
                            timeout,
                            logger,
                        )
                    )
                except (ConnectError, ConnectTimeout):
                    if retries_left <= 0:
                        raise
                # The retry event carries the arguments of the step that failed.
                kwargs = tls_kwargs(self, origin, self._ssl_context, server_hostname, timeout) or {}
            retries_left -= 1
            delay = next(delays)
            yield from traced(logger, "retry", request, kwargs, sleep(backend, delay))

    def _close(self) -> Gen[None]:
        if self._connection is not None:
            yield from traced(logger, "close", None, {}, close(self._connection))


class HTTPConnection(SyncShell, HTTPConnectionCore, ConnectionInterface):
    """A connection to one origin, over HTTP/1.1 or HTTP/2, opened on the first request."""

    _http11_class = HTTP11Connection
