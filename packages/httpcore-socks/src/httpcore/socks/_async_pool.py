"""`AsyncSOCKSProxy`, imported on first use by `httpcore.socks.__getattr__`.

In httpcore 1.0.9 `AsyncSOCKSProxy` is an `AsyncConnectionPool` (as `SOCKSProxy` is a
`ConnectionPool`), and users' `isinstance` checks rely on it. `AsyncConnectionPool` lives in
httpcore-async, which this distribution does not depend on: when it is installed the class
derives from it; when it is not, there is no `AsyncConnectionPool` to be an instance of, and the
class is the same pool without that base (usable with a caller's `network_backend`, as before).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from httpcore.base._interfaces import AsyncRequestInterface, AsyncShell

from . import AsyncSocks5Connection
from ._core import SOCKSProxyCore


def _has_httpcore_async() -> bool:
    try:
        import httpcore.aio  # noqa: F401  (light: anyio and trio are imported on use)
    except ModuleNotFoundError as exc:
        if exc.name != "httpcore.aio":
            raise  # installed but broken: let the error show
        return False
    return True


if TYPE_CHECKING or _has_httpcore_async():
    from httpcore.aio import AsyncConnectionPool

    class AsyncSOCKSProxy(SOCKSProxyCore, AsyncConnectionPool):
        """A connection pool that sends every request through a SOCKS proxy (asyncio or trio)."""

        _socks_class = AsyncSocks5Connection

else:

    class AsyncSOCKSProxy(AsyncShell, SOCKSProxyCore, AsyncRequestInterface):
        """A connection pool that sends every request through a SOCKS proxy (asyncio or trio).

        (httpcore-async is not installed, so this is not an `AsyncConnectionPool`.)
        """

        _socks_class = AsyncSocks5Connection
