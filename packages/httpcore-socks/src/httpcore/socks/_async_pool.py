"""`AsyncSOCKSProxy`, imported on first use by `httpcore.socks.__getattr__`.

In httpcore 1.0.9 `AsyncSOCKSProxy` is an `AsyncConnectionPool` (as `SOCKSProxy` is a
`ConnectionPool`), and users' `isinstance` checks rely on it. `AsyncConnectionPool` lives in
httpcore-async, which this distribution does not depend on: when it is installed the class
derives from it; when it is not, there is no `AsyncConnectionPool` to be an instance of, and the
class derives from the same pieces without that name (usable with a caller's
`network_backend`, as before).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from httpcore.base._interfaces import AsyncRequestInterface, AsyncShell
from httpcore.base._pool import PoolCore

from . import AsyncSocks5Connection
from ._core import SOCKSProxyCore


class _AsyncPoolWithoutAio(AsyncShell, PoolCore, AsyncRequestInterface):
    """What `httpcore.aio.AsyncConnectionPool` is made of, for when httpcore-async is absent."""


def _async_pool_base() -> Any:
    try:
        from httpcore.aio import AsyncConnectionPool  # light: anyio and trio load on use
    except ModuleNotFoundError as exc:
        if exc.name != "httpcore.aio":
            raise  # installed but broken: let the error show
        return _AsyncPoolWithoutAio
    return AsyncConnectionPool


if TYPE_CHECKING:
    from httpcore.aio import AsyncConnectionPool as _AsyncPoolBase
else:
    _AsyncPoolBase = _async_pool_base()


class AsyncSOCKSProxy(SOCKSProxyCore, _AsyncPoolBase):
    """A connection pool that sends every request through a SOCKS proxy (asyncio or trio)."""

    _socks_class = AsyncSocks5Connection
