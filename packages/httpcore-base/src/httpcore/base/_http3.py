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

from typing import Any, Callable, Optional

from ._drive import Gen
from ._exceptions import ConnectError, ConnectTimeout
from ._models import Request, Response

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


def http3_connection_class(is_async: bool) -> Any:
    """The HTTP/3 class of httpcore-http3, looked up when a pool is asked for http3."""
    try:
        import httpcore.http3 as http3

        return getattr(http3, "AsyncHTTP3Connection" if is_async else "HTTP3Connection")
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


def prior_knowledge(conn: Any) -> bool:
    return bool(
        conn._http3
        and not conn._http1
        and not conn._http2
        and conn._remote_origin.scheme == b"https"
    )


def is_http3(connection: Any) -> bool:
    return bool(getattr(connection, "_is_http3", False))


def moving_to_http3(conn: Any) -> bool:
    """A TCP connection whose origin is now known to be reachable over HTTP/3."""
    alt_svc = conn._alt_svc
    inner = conn._connection
    return (
        alt_svc is not None
        and inner is not None
        and not is_http3(inner)
        and alt_svc.lookup(conn._remote_origin) is not None
    )


def is_available(conn: Any, base: Callable[[Any], bool]) -> bool:
    if conn._connection is None:
        if prior_knowledge(conn):
            # A pending HTTP/3 connection is shared by the requests that arrive meanwhile.
            return not conn._connect_failed
        return base(conn)
    if moving_to_http3(conn):
        return False
    return base(conn)


def learn(conn: Any, response: Response) -> None:
    """Take in the Alt-Svc headers of a response over TCP."""
    if is_http3(conn._connection):
        return
    values = [value for name, value in response.headers if name.lower() == b"alt-svc"]
    if values:
        conn._alt_svc.update(conn._remote_origin, values)


def connect(conn: Any, request: Request) -> Gen[Optional[Any]]:
    """The HTTP/3 connection to use, handshake done; None to go on over TCP."""
    origin = conn._remote_origin
    if origin.scheme != b"https":
        return None
    alt_svc = conn._alt_svc
    if prior_knowledge(conn):
        port = origin.port
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
    if prior_knowledge(conn):
        yield from connection._connect(request)
        return connection
    try:
        yield from connection._connect(request, DISCOVERY_CONNECT_TIMEOUT)
    except (ConnectError, ConnectTimeout, NotImplementedError):
        alt_svc.mark_broken(origin)
        return None
    alt_svc.mark_working(origin)
    return connection
