"""httpcore-socks: SOCKS proxies (SOCKS5, SOCKS5h, SOCKS4, SOCKS4a), sync and async.

The protocol is written once in `_core.py`; the classes here pick the flavour of I/O.
`Socks5Connection` carries one remote origin through the proxy; `SOCKSProxy` is a
connection pool that routes every origin through it.

`AsyncSOCKSProxy` is an `httpcore.aio.AsyncConnectionPool`, as in httpcore 1.0.9, so it is
defined on first use (module `__getattr__`, in `_async_pool.py`): `import httpcore.socks` does
not import `httpcore.aio`, and this distribution keeps working without httpcore-async.
"""

from typing import TYPE_CHECKING, Any, List

from httpcore.base._http11 import AsyncHTTP11UpgradeStream, HTTP11Connection, HTTP11Core
from httpcore.base._interfaces import (
    AsyncConnectionInterface,
    AsyncShell,
    ConnectionInterface,
    SyncShell,
)
from httpcore.base._pool import ConnectionPool

from ._core import SocksCore, SOCKSProxyCore

if TYPE_CHECKING:
    from ._async_pool import AsyncSOCKSProxy


class AsyncSocksHTTP11Connection(AsyncShell, HTTP11Core, AsyncConnectionInterface):
    """HTTP/1.1 through an async SOCKS tunnel: the core of `httpcore.AsyncHTTP11Connection`,
    declared here under its own name so that the async SOCKS classes need only `httpcore.base`.
    """

    _upgrade_stream_class = AsyncHTTP11UpgradeStream


class Socks5Connection(SyncShell, SocksCore, ConnectionInterface):
    """A connection to one origin through a SOCKS proxy, opened on the first request."""

    _http11_class = HTTP11Connection


class AsyncSocks5Connection(AsyncShell, SocksCore, AsyncConnectionInterface):
    """A connection to one origin through a SOCKS proxy, opened on the first request."""

    _http11_class = AsyncSocksHTTP11Connection


class SOCKSProxy(SOCKSProxyCore, ConnectionPool):
    """A connection pool that sends every request through a SOCKS proxy."""

    _socks_class = Socks5Connection


__all__ = ["AsyncSOCKSProxy", "AsyncSocks5Connection", "SOCKSProxy", "Socks5Connection"]


def _lazy_getattr(name: str) -> Any:
    """Define `AsyncSOCKSProxy` on first access (PEP 562), see the module docstring."""
    if name == "AsyncSOCKSProxy":
        from ._async_pool import AsyncSOCKSProxy

        globals()[name] = AsyncSOCKSProxy
        return AsyncSOCKSProxy
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _dir() -> List[str]:
    return sorted(set(globals()) | set(__all__))


if not TYPE_CHECKING:  # type checkers see the static import above instead
    __getattr__ = _lazy_getattr
    __dir__ = _dir
