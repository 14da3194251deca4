"""httpcore-http2: HTTP/2 connections on the `h2` library.

`HTTP2Connection` (sync, thread-safe) and `AsyncHTTP2Connection` (asyncio and trio) share one
protocol core, `HTTP2Core`; the pools of `httpcore.base` and `httpcore.aio` look these classes
up when a connection negotiates HTTP/2.
"""

from typing import Any, Optional

from httpcore.base._interfaces import (
    AsyncConnectionInterface,
    AsyncShell,
    ConnectionInterface,
    SyncShell,
)
from httpcore.base._models import Origin
from httpcore.base._sync_backend import SyncStream

from ._core import HTTP2Core, HTTPConnectionState

__all__ = ["AsyncHTTP2Connection", "HTTP2Connection", "HTTP2Core", "HTTPConnectionState"]


class HTTP2Connection(SyncShell, HTTP2Core, ConnectionInterface):
    """An HTTP/2 connection over an established network stream, shared by threads."""

    def __init__(
        self, origin: Origin, stream: Any, keepalive_expiry: Optional[float] = None
    ) -> None:
        if isinstance(stream, SyncStream):
            # One thread reads while others write: the plain socket's one timeout setting
            # would be raced on (TLS streams already wait per call).
            stream = stream.shared_by_threads()
        super().__init__(origin, stream, keepalive_expiry)


class AsyncHTTP2Connection(AsyncShell, HTTP2Core, AsyncConnectionInterface):
    """An HTTP/2 connection over an established async network stream, shared by tasks."""
