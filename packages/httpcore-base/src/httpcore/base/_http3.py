"""How a direct `HTTPConnection` uses HTTP/3 (httpcore-http3) when its pool has `http3=True`.

Rules:
- Prior knowledge: an https origin with only `http3` enabled (`http1=False, http2=False`) is
  reached over HTTP/3 directly; a failed QUIC handshake is the request's error.
- Discovery: otherwise the connection asks the pool's `AltSvcCache` (`_altsvc.py`). If it
  knows an h3 alternative for the origin, the QUIC handshake is tried first, bounded by
  `DISCOVERY_CONNECT_TIMEOUT`; if it fails or times out (UDP blocked, a backend without
  UDP), the origin is marked broken for a while and the connection goes on over TCP, the
  caller seeing nothing of it.
- The Alt-Svc headers of every response over TCP are taken in. A TCP connection whose origin
  has become reachable over HTTP/3 takes no new requests and expires once idle, so the
  pool's next connection to the origin is an HTTP/3 one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Optional, Protocol, TypeVar

from ._altsvc import AltSvcCache
from ._drive import Flavour, Gen
from ._exceptions import ConnectError, ConnectTimeout
from ._interfaces import AnyConnection, AsyncConnectionInterface, ConnectionInterface
from ._models import Origin, Request, Response

if TYPE_CHECKING:
    import ssl  # annotations only: importing ssl costs a cold start ~9 ms


class HTTP3Like(Protocol):
    """What is used here of an `HTTP3Connection` (httpcore-http3)."""

    def _connect(self, request: Request, timeout_cap: Optional[float] = None) -> Gen[None]: ...


class DirectConnection(Protocol):
    """What is read here of the direct `HTTPConnection` (`_connection.py`) that may go over
    HTTP/3."""

    @property
    def _io(self) -> Flavour: ...
    @property
    def _http1(self) -> bool: ...
    @property
    def _http2(self) -> bool: ...
    @property
    def _http3(self) -> bool: ...
    @property
    def _remote_origin(self) -> Origin: ...
    @property
    def _alt_svc(self) -> Optional[AltSvcCache]: ...
    @property
    def _connection(self) -> object: ...  # the inner connection, once connected
    @property
    def _connect_failed(self) -> bool: ...
    @property
    def _ssl_context(self) -> Optional[ssl.SSLContext]: ...
    @property
    def _keepalive_expiry(self) -> Optional[float]: ...
    @property
    def _local_address(self) -> Optional[str]: ...
    @property
    def _network_backend(self) -> object: ...


C = TypeVar("C", bound=DirectConnection)

#: The longest a QUIC handshake to an origin discovered through Alt-Svc may take before the
#: request goes over TCP instead (seconds; a smaller connect timeout wins).
DISCOVERY_CONNECT_TIMEOUT = 2.0

HTTP3_THROUGH_PROXY = (
    "HTTP/3 cannot go through a proxy: HTTP CONNECT and SOCKS tunnel TCP, and QUIC runs over "
    "UDP. Enable http1 or http2 for the requests that go through the proxy."
)

HTTP3_MISSING = (
    "Attempted to use http3 support, but the `httpcore-http3` distribution (with `aioquic`) "
    "is not installed. Use 'pip install httpcore[http3]'."
)


def http3_connection_class(is_async: bool) -> Callable[..., HTTP3Like]:
    """The HTTP/3 class of httpcore-http3, looked up when a pool is asked for http3."""
    try:
        import httpcore.http3 as http3

        cls: Callable[..., HTTP3Like] = getattr(
            http3, "AsyncHTTP3Connection" if is_async else "HTTP3Connection"
        )
        return cls
    except (ImportError, AttributeError):
        raise RuntimeError(HTTP3_MISSING) from None


def through_proxy(http1: bool, http2: bool) -> bool:
    """What `http3=True` does on a pool whose connections go through a proxy: nothing (it is
    accepted, as curl's `--http3`, and the requests go over TCP), except when HTTP/3 is the
    only version allowed (curl's `--http3-only`), which no proxied request can use: that
    raises `RuntimeError`. Returns the `http3` the pool keeps (False)."""
    if not http1 and not http2:
        raise RuntimeError(HTTP3_THROUGH_PROXY)
    return False


def prior_knowledge(conn: DirectConnection) -> bool:
    return bool(
        conn._http3
        and not conn._http1
        and not conn._http2
        and conn._remote_origin.scheme == b"https"
    )


def is_http3(connection: object) -> bool:
    return bool(getattr(connection, "_is_http3", False))


def moving_to_http3(conn: DirectConnection) -> bool:
    """A TCP connection whose origin is now known to be reachable over HTTP/3."""
    alt_svc = conn._alt_svc
    inner = conn._connection
    return (
        alt_svc is not None
        and inner is not None
        and not is_http3(inner)
        and alt_svc.lookup(conn._remote_origin) is not None
    )


def is_available(conn: C, base: Callable[[C], bool]) -> bool:
    if conn._connection is None:
        if prior_knowledge(conn):
            # A pending HTTP/3 connection is shared by the requests that arrive meanwhile.
            return not conn._connect_failed
        return base(conn)
    if moving_to_http3(conn):
        return False
    return base(conn)


def learn(conn: DirectConnection, response: Response) -> None:
    """Take in the Alt-Svc headers of a response over TCP."""
    if is_http3(conn._connection):
        return
    alt_svc = conn._alt_svc
    values = [value for name, value in response.headers if name.lower() == b"alt-svc"]
    if values and alt_svc is not None:
        alt_svc.update(conn._remote_origin, values)


def connect(conn: DirectConnection, request: Request) -> Gen[Optional[AnyConnection]]:
    """The HTTP/3 connection to use, handshake done; None to go on over TCP."""
    origin = conn._remote_origin
    if origin.scheme != b"https":
        return None
    alt_svc = conn._alt_svc
    if prior_knowledge(conn):
        port: Optional[int] = origin.port
        alt_svc = None  # no fallback to TCP: a failed handshake is the request's error
    else:
        if alt_svc is None:
            return None
        port = alt_svc.lookup(origin)
        if port is None:
            return None
    connection = http3_connection_class(conn._io.is_async)(
        origin=origin,
        ssl_context=conn._ssl_context,
        keepalive_expiry=conn._keepalive_expiry,
        local_address=conn._local_address,
        network_backend=conn._network_backend,
        server_hostname=request.extensions.get("sni_hostname"),
        port=port,
    )
    if alt_svc is None:  # prior knowledge
        yield from connection._connect(request)
        return _as_connection(connection)
    try:
        yield from connection._connect(request, DISCOVERY_CONNECT_TIMEOUT)
    except (ConnectError, ConnectTimeout, NotImplementedError):
        alt_svc.mark_broken(origin)
        return None
    alt_svc.mark_working(origin)
    return _as_connection(connection)


def _as_connection(connection: HTTP3Like) -> AnyConnection:
    # httpcore-http3's classes are connections of the pool's flavour; the check tells mypy.
    if not isinstance(connection, (ConnectionInterface, AsyncConnectionInterface)):
        raise TypeError(f"not a connection: {connection!r}")  # pragma: no cover
    return connection
