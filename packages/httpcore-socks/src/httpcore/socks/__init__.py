"""httpcore-socks: SOCKS proxies (SOCKS5, SOCKS5h, SOCKS4, SOCKS4a), sync and async.

The protocol is written once in `_core.py`; the classes here pick the flavour of I/O.
`Socks5Connection` carries one remote origin through the proxy; `SOCKSProxy` is a
connection pool that routes every origin through it.
"""

from httpcore.base._http11 import AsyncHTTP11UpgradeStream, HTTP11Connection, HTTP11Core
from httpcore.base._interfaces import (
    AsyncConnectionInterface,
    AsyncRequestInterface,
    AsyncShell,
    ConnectionInterface,
    SyncShell,
)
from httpcore.base._pool import ConnectionPool

from ._core import Socks5Core, SOCKSProxyCore


class AsyncHTTP11Connection(AsyncShell, HTTP11Core, AsyncConnectionInterface):
    """HTTP/1.1 over an async tunnel (the same core as `httpcore.AsyncHTTP11Connection`).

    Declared here so that the async SOCKS classes need only `httpcore.base`.
    """

    _upgrade_stream_class = AsyncHTTP11UpgradeStream


class Socks5Connection(SyncShell, Socks5Core, ConnectionInterface):
    """A connection to one origin through a SOCKS proxy, opened on the first request."""

    _http11_class = HTTP11Connection


class AsyncSocks5Connection(AsyncShell, Socks5Core, AsyncConnectionInterface):
    """A connection to one origin through a SOCKS proxy, opened on the first request."""

    _http11_class = AsyncHTTP11Connection


class SOCKSProxy(SOCKSProxyCore, ConnectionPool):
    """A connection pool that sends every request through a SOCKS proxy."""

    _socks_class = Socks5Connection


class AsyncSOCKSProxy(AsyncShell, SOCKSProxyCore, AsyncRequestInterface):
    """A connection pool that sends every request through a SOCKS proxy (asyncio or trio)."""

    _socks_class = AsyncSocks5Connection


__all__ = ["AsyncSOCKSProxy", "AsyncSocks5Connection", "SOCKSProxy", "Socks5Connection"]
