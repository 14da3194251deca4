"""httpcore-async: the asyncio and trio client.

Each class here is a thin async shell over the protocol core it shares with its sync twin
in `httpcore.base`; the network backends (`AnyIOBackend`, `TrioBackend`, and the automatic
one) are the only async-specific code of substance.
"""

from httpcore.base._connection import HTTPConnectionCore
from httpcore.base._http11 import AsyncHTTP11UpgradeStream, HTTP11Core
from httpcore.base._interfaces import AsyncConnectionInterface, AsyncRequestInterface, AsyncShell
from httpcore.base._pool import PoolCore
from httpcore.base._proxy import ForwardCore, ProxyPoolCore, TunnelCore

from ._anyio import AnyIOBackend
from ._trio import TrioBackend


class AsyncHTTP11Connection(AsyncShell, HTTP11Core, AsyncConnectionInterface):
    """A single HTTP/1.1 connection over an established async network stream."""

    _upgrade_stream_class = AsyncHTTP11UpgradeStream


class AsyncHTTPConnection(AsyncShell, HTTPConnectionCore, AsyncConnectionInterface):
    """A connection to one origin, over HTTP/1.1 or HTTP/2, opened on the first request."""

    _http11_class = AsyncHTTP11Connection


class AsyncForwardHTTPConnection(AsyncShell, ForwardCore, AsyncConnectionInterface):
    """A connection that forwards plain-http requests through an HTTP proxy."""

    _connection_class = AsyncHTTPConnection


class AsyncTunnelHTTPConnection(AsyncShell, TunnelCore, AsyncConnectionInterface):
    """A connection tunnelled through an HTTP proxy with CONNECT."""

    _connection_class = AsyncHTTPConnection
    _http11_class = AsyncHTTP11Connection


class AsyncConnectionPool(AsyncShell, PoolCore, AsyncRequestInterface):
    """A pool of HTTP connections for asyncio or trio tasks."""

    _connection_class = AsyncHTTPConnection
    _forward_class = AsyncForwardHTTPConnection
    _tunnel_class = AsyncTunnelHTTPConnection


class AsyncHTTPProxy(ProxyPoolCore, AsyncConnectionPool):
    """A connection pool that sends every request through an HTTP proxy."""


__all__ = [
    "AnyIOBackend",
    "AsyncConnectionInterface",
    "AsyncConnectionPool",
    "AsyncForwardHTTPConnection",
    "AsyncHTTP11Connection",
    "AsyncHTTP11UpgradeStream",
    "AsyncHTTPConnection",
    "AsyncHTTPProxy",
    "AsyncTunnelHTTPConnection",
    "TrioBackend",
]
