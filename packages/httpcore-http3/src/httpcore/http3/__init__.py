"""httpcore-http3: HTTP/3 connections over QUIC, on the `aioquic` library (sans-I/O).

`HTTP3Connection` (sync, thread-safe) and `AsyncHTTP3Connection` (asyncio and trio) share one
protocol core, `HTTP3Core`. Unlike the HTTP/2 classes, which take a connected TCP stream, an
HTTP/3 connection opens its own UDP endpoint (with the network backend's `connect_udp()`)
and runs the QUIC handshake on its first request. The pools use them when asked to
(`http3=True`: prior knowledge, or an `Alt-Svc: h3` advertisement).
"""

from httpcore.base._interfaces import (
    AsyncConnectionInterface,
    AsyncShell,
    ConnectionInterface,
    SyncShell,
)

from ._core import HTTP3Core, HTTPConnectionState

__all__ = ["AsyncHTTP3Connection", "HTTP3Connection", "HTTP3Core", "HTTPConnectionState"]


class HTTP3Connection(SyncShell, HTTP3Core, ConnectionInterface):
    """An HTTP/3 connection to one https origin, shared by threads.

    Arguments: `origin`, `ssl_context` (what to trust; ALPN is set to h3 for QUIC),
    `keepalive_expiry`, `local_address`, `network_backend` (needs `connect_udp()`),
    `server_hostname` (SNI, and the name checked against the certificate), `port` (the
    UDP port, when an Alt-Svc advertisement names another one than the origin's).
    """


class AsyncHTTP3Connection(AsyncShell, HTTP3Core, AsyncConnectionInterface):
    """An HTTP/3 connection to one https origin, shared by asyncio or trio tasks (arguments
    as `HTTP3Connection`)."""
