"""httpcore-base: models, exceptions, network backends, and the synchronous HTTP/1.1 client.

The async classes live in `httpcore.aio`, HTTP/2 in `httpcore.http2`, SOCKS in
`httpcore.socks`; `import httpcore` re-exports them all.
"""

from ._api import request, stream
from ._backends import (
    SOCKET_OPTION,
    AsyncNetworkBackend,
    AsyncNetworkStream,
    NetworkBackend,
    NetworkStream,
)
from ._connection import HTTPConnection
from ._exceptions import (
    ConnectError,
    ConnectionNotAvailable,
    ConnectTimeout,
    LocalProtocolError,
    NetworkError,
    PoolTimeout,
    ProtocolError,
    ProxyError,
    ReadError,
    ReadTimeout,
    RemoteProtocolError,
    TimeoutException,
    UnsupportedProtocol,
    WriteError,
    WriteTimeout,
)
from ._http11 import HTTP11Connection, HTTP11UpgradeStream
from ._interfaces import AsyncConnectionInterface, ConnectionInterface
from ._mock import AsyncMockBackend, AsyncMockStream, MockBackend, MockStream
from ._models import URL, ByteStream, Origin, Proxy, Request, Response
from ._pool import ConnectionPool, HTTPProxy
from ._proxy import ForwardHTTPConnection, TunnelHTTPConnection
from ._ssl import default_ssl_context
from ._sync_backend import SyncBackend
from ._version import __version__

__all__ = [
    "SOCKET_OPTION",
    "URL",
    "AsyncConnectionInterface",
    "AsyncMockBackend",
    "AsyncMockStream",
    "AsyncNetworkBackend",
    "AsyncNetworkStream",
    "ByteStream",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionInterface",
    "ConnectionNotAvailable",
    "ConnectionPool",
    "ForwardHTTPConnection",
    "HTTP11Connection",
    "HTTP11UpgradeStream",
    "HTTPConnection",
    "HTTPProxy",
    "LocalProtocolError",
    "MockBackend",
    "MockStream",
    "NetworkBackend",
    "NetworkError",
    "NetworkStream",
    "Origin",
    "PoolTimeout",
    "ProtocolError",
    "Proxy",
    "ProxyError",
    "ReadError",
    "ReadTimeout",
    "RemoteProtocolError",
    "Request",
    "Response",
    "SyncBackend",
    "TimeoutException",
    "TunnelHTTPConnection",
    "UnsupportedProtocol",
    "WriteError",
    "WriteTimeout",
    "__version__",
    "default_ssl_context",
    "request",
    "stream",
]
