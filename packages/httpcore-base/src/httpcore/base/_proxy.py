"""HTTP proxies: forwarding (absolute-form requests) for http, CONNECT tunnels otherwise."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Callable, Iterable, List, Optional, Sequence, Tuple, Union

from ._backends import SOCKET_OPTION
from ._connection import (
    HTTPConnection,
    HTTPConnectionCore,
    may_pick_http2,
    start_tls_and_pick_protocol,
)
from ._drive import Flavour, Gen
from ._exceptions import ConnectionNotAvailable, ProxyError
from ._http11 import HTTP11Connection
from ._interfaces import AnyConnection, ConnectionInterface, SyncShell, lost_unanswered
from ._models import (
    URL,
    HeaderTypes,
    Origin,
    Proxy,
    Request,
    Response,
    enforce_bytes,
    enforce_headers,
    enforce_url,
)
from ._ops import AnyNetworkBackend, close, handle, lock, unlock

if TYPE_CHECKING:
    import ssl  # annotations only: importing ssl costs a cold start ~9 ms

logger = logging.getLogger("httpcore.proxy")

Headers = List[Tuple[bytes, bytes]]


def merge_headers(defaults: Sequence[Tuple[bytes, bytes]], overrides: Headers) -> Headers:
    """`defaults` whose names are not in `overrides`, followed by `overrides`."""
    names = {name.lower() for name, _ in overrides}
    return [(k, v) for k, v in defaults if k.lower() not in names] + list(overrides)


class _Delegating:
    """State queries answered by the connection currently carrying the traffic."""

    _connection: AnyConnection
    _remote_origin: Origin

    def can_handle_request(self, origin: Origin) -> bool:
        """Whether this connection serves `origin` (each connection serves one origin)."""
        return origin == self._remote_origin

    def is_available(self) -> bool:
        """Whether it can take another request now."""
        return bool(self._connection.is_available())

    def has_expired(self) -> bool:
        """Whether the pool should close it (keep-alive expired, closed by the server)."""
        return bool(self._connection.has_expired())

    def _has_timed_out(self, now: float) -> bool:
        check = getattr(self._connection, "_has_timed_out", None)
        return bool(check(now)) if check is not None else self.has_expired()

    def is_idle(self) -> bool:
        """Whether it is open with no request in progress."""
        return bool(self._connection.is_idle())

    def is_closed(self) -> bool:
        """Whether it is closed (the pool drops it without closing it again)."""
        return bool(self._connection.is_closed())

    def _lost_unanswered(self) -> bool:
        return lost_unanswered(self._connection)

    def info(self) -> str:
        """A short description of its state, as shown in its repr."""
        return str(self._connection.info())

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__} [{self.info()}]>"

    def _close(self) -> Gen[None]:
        yield from close(self._connection)


class ForwardCore(_Delegating):
    """Sends each request to the proxy with an absolute-form target."""

    _io: Flavour
    _connection_class: Callable[..., AnyConnection]

    def __init__(
        self,
        proxy_origin: Origin,
        remote_origin: Origin,
        proxy_headers: Optional[Headers] = None,
        keepalive_expiry: Optional[float] = None,
        network_backend: Optional[AnyNetworkBackend] = None,
        socket_options: Optional[Iterable[SOCKET_OPTION]] = None,
        proxy_ssl_context: Optional[ssl.SSLContext] = None,
        retries: int = 0,
        local_address: Optional[str] = None,
    ) -> None:
        self._connection = self._connection_class(
            origin=proxy_origin,
            ssl_context=proxy_ssl_context,
            keepalive_expiry=keepalive_expiry,
            retries=retries,
            local_address=local_address,
            network_backend=network_backend,
            socket_options=socket_options,
        )
        self._proxy_origin = proxy_origin
        self._remote_origin = remote_origin
        self._proxy_headers = [] if proxy_headers is None else proxy_headers

    def _handle(self, request: Request) -> Gen[Response]:
        proxy = self._proxy_origin
        url = URL(scheme=proxy.scheme, host=proxy.host, port=proxy.port, target=bytes(request.url))
        proxy_request = Request(
            method=request.method,
            url=url,
            headers=merge_headers(self._proxy_headers, request.headers),
            content=request.stream,
            extensions=request.extensions,
        )
        return (yield from handle(self._connection, proxy_request))


class TunnelCore(_Delegating):
    """Opens a CONNECT tunnel through the proxy on the first request, then speaks through it."""

    _io: Flavour
    _connection_class: Callable[..., AnyConnection]
    _http11_class: Callable[..., AnyConnection]

    def __init__(
        self,
        proxy_origin: Origin,
        remote_origin: Origin,
        ssl_context: Optional[ssl.SSLContext] = None,
        proxy_ssl_context: Optional[ssl.SSLContext] = None,
        proxy_headers: Optional[Sequence[Tuple[bytes, bytes]]] = None,
        keepalive_expiry: Optional[float] = None,
        http1: bool = True,
        http2: bool = False,
        network_backend: Optional[AnyNetworkBackend] = None,
        socket_options: Optional[Iterable[SOCKET_OPTION]] = None,
        retries: int = 0,
        local_address: Optional[str] = None,
    ) -> None:
        self._connection = self._connection_class(
            origin=proxy_origin,
            ssl_context=proxy_ssl_context,
            keepalive_expiry=keepalive_expiry,
            retries=retries,
            local_address=local_address,
            network_backend=network_backend,
            socket_options=socket_options,
        )
        self._proxy_origin = proxy_origin
        self._remote_origin = remote_origin
        self._ssl_context = ssl_context
        self._proxy_headers = [] if proxy_headers is None else list(proxy_headers)
        self._keepalive_expiry = keepalive_expiry
        self._http1 = http1
        self._http2 = http2
        self._connect_lock = self._io.io_lock()
        self._connected = False
        self._opening = False  # a request is opening the tunnel
        # It failed, or nobody will ever open it. (The pool drops it as its proxy connection
        # is then closed or failed.)
        self._open_failed = False

    def is_available(self) -> bool:
        """Whether it can take another request now."""
        if not self._connected:
            # Until the tunnel is open, one that may turn out HTTP/2 takes more requests,
            # which wait for it (as a direct connection does; one tunnel, not one each).
            return (
                may_pick_http2(self._http1, self._http2, self._remote_origin)
                and not self._open_failed
            )
        return bool(self._connection.is_available())

    def _handle(self, request: Request) -> Gen[Response]:
        if not self._connected:
            try:
                yield from lock(self._connect_lock)
            except BaseException:
                # Cancelled waiting. If another request is opening the tunnel, it settles the
                # outcome; otherwise nobody ever will: mark it failed so the pool drops it.
                if not self._opening:
                    self._fail_open()
                raise
            try:
                if self._open_failed:
                    # The request opening it failed or was cancelled while we waited; the
                    # pool has dropped this connection: go back to the pool for another.
                    raise ConnectionNotAvailable()
                if not self._connected:
                    self._opening = True
                    yield from self._open_tunnel(request)
            except BaseException:
                self._fail_open()
                raise
            finally:
                yield from unlock(self._connect_lock)
        return (yield from handle(self._connection, request))

    def _fail_open(self) -> None:
        self._open_failed = True
        proxy = self._connection
        if isinstance(proxy, HTTPConnectionCore) and proxy._connection is None:
            proxy._connect_failed = True  # never connected: it says so itself too

    def _open_tunnel(self, request: Request) -> Gen[None]:
        remote, proxy = self._remote_origin, self._proxy_origin
        target = b"%b:%d" % (remote.host, remote.port)
        connect_request = Request(
            method=b"CONNECT",
            url=URL(scheme=proxy.scheme, host=proxy.host, port=proxy.port, target=target),
            headers=merge_headers([(b"Host", target), (b"Accept", b"*/*")], self._proxy_headers),
            extensions=request.extensions,
        )
        response = yield from handle(self._connection, connect_request)
        if not 200 <= response.status < 300:
            reason = response.extensions.get("reason_phrase", b"").decode("ascii", errors="ignore")
            yield from close(self._connection)
            raise ProxyError(f"{response.status} {reason}")
        try:
            self._connection = yield from start_tls_and_pick_protocol(
                self,
                response.extensions["network_stream"],
                request,
                remote,
                self._ssl_context,
                remote.host.decode("ascii"),
                request.extensions.get("timeout", {}).get("connect", None),
                logger,
            )
        except BaseException:
            # TLS to the remote failed or was cancelled: the proxy connection is unusable.
            yield from close(self._connection)
            raise
        self._connected = True


class ProxyPoolCore:
    """`HTTPProxy`'s constructor: a pool (the class it is mixed into) whose every connection
    goes through one HTTP proxy."""

    _proxy: Optional[Proxy]

    def __init__(
        self,
        proxy_url: Union[URL, bytes, str],
        proxy_auth: Optional[Tuple[Union[bytes, str], Union[bytes, str]]] = None,
        proxy_headers: HeaderTypes = None,
        ssl_context: Optional[ssl.SSLContext] = None,
        proxy_ssl_context: Optional[ssl.SSLContext] = None,
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
        url = enforce_url(proxy_url, name="proxy_url")
        if url.scheme == b"http" and proxy_ssl_context is not None:
            raise RuntimeError(
                "The `proxy_ssl_context` argument is not allowed for the http scheme"
            )
        headers = enforce_headers(proxy_headers, name="proxy_headers")
        auth = None
        if proxy_auth is not None:
            username, password = proxy_auth
            auth = (
                enforce_bytes(username, name="proxy_auth"),
                enforce_bytes(password, name="proxy_auth"),
            )
        super().__init__(  # type: ignore[call-arg]
            ssl_context=ssl_context,
            proxy=Proxy(url=url, auth=auth, headers=headers, ssl_context=proxy_ssl_context),
            max_connections=max_connections,
            max_keepalive_connections=max_keepalive_connections,
            keepalive_expiry=keepalive_expiry,
            http1=http1,
            http2=http2,
            retries=retries,
            local_address=local_address,
            uds=uds,
            network_backend=network_backend,
            socket_options=socket_options,
            http3=http3,  # no effect through a proxy (`_http3.through_proxy`)
        )

    @property
    def _proxy_url(self) -> URL:
        # httpx's tests read this (httpcore 1.0.9 keeps the proxy URL under this name).
        assert self._proxy is not None
        return self._proxy.url


class ForwardHTTPConnection(SyncShell, ForwardCore, ConnectionInterface):
    """A connection that forwards plain-http requests through an HTTP proxy."""

    _connection_class = HTTPConnection


class TunnelHTTPConnection(SyncShell, TunnelCore, ConnectionInterface):
    """A connection tunnelled through an HTTP proxy with CONNECT."""

    _connection_class = HTTPConnection
    _http11_class = HTTP11Connection
