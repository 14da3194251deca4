"""httpcore-http2: HTTP/2 connections on the `h2` library.

`HTTP2Connection` (sync, thread-safe) and `AsyncHTTP2Connection` (asyncio and trio) share one
protocol core, `HTTP2Core`; the pools of `httpcore.base` and `httpcore.aio` look these classes
up when a connection negotiates HTTP/2.
"""

from httpcore.base._interfaces import (
    AsyncConnectionInterface,
    AsyncShell,
    ConnectionInterface,
    SyncShell,
)

from ._core import HTTP2Core, HTTPConnectionState

__all__ = ["AsyncHTTP2Connection", "HTTP2Connection", "HTTP2Core", "HTTPConnectionState"]


class HTTP2Connection(SyncShell, HTTP2Core, ConnectionInterface):
    """An HTTP/2 connection over an established network stream, shared by threads."""


class AsyncHTTP2Connection(AsyncShell, HTTP2Core, AsyncConnectionInterface):
    """An HTTP/2 connection over an established async network stream, shared by tasks."""
