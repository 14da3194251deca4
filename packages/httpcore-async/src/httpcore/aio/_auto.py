"""The default backend of the async classes: trio's own backend under trio, asyncio's otherwise.

The choice is made on first use (the running library is only known inside the event loop) and
kept for the life of the backend. The streams handed out are the chosen backend's own, so
reading and writing go through no extra layer.
"""

from __future__ import annotations

from typing import Any, Iterable

from httpcore.base._backends import SOCKET_OPTION, AsyncNetworkBackend, AsyncNetworkStream

__all__ = ["AutoBackend"]


def _current_async_library() -> str:
    try:
        import sniffio
    except ImportError:  # pragma: no cover  (sniffio ships with anyio and trio)
        return "asyncio"
    try:
        name: str = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        raise RuntimeError("Running under an unsupported async environment.") from None
    return name


def _select_backend() -> AsyncNetworkBackend:
    library = _current_async_library()
    if library == "trio":
        try:
            import trio  # noqa: F401
        except (ImportError, NotImplementedError):
            raise RuntimeError(
                "Running with trio requires installation of 'httpcore[trio]'."
            ) from None
        from ._trio import TrioBackend

        return TrioBackend()
    if library == "asyncio":
        try:
            import anyio  # noqa: F401
        except ImportError:
            raise RuntimeError(
                "Running with asyncio requires installation of 'httpcore[asyncio]'."
            ) from None
        # Native asyncio transports: anyio's stream layers cost several awaits per read.
        from ._asyncio import AsyncIOBackend

        return AsyncIOBackend()
    raise RuntimeError("Running under an unsupported async environment.")


class AutoBackend(AsyncNetworkBackend):
    """Picks `TrioBackend` under trio and the native asyncio backend under asyncio, on first use.

    Under asyncio it still requires anyio (the `httpcore[asyncio]` extra), as httpcore 1.0 did.
    """

    __slots__ = ("_backend",)

    def __init__(self) -> None:
        self._backend: AsyncNetworkBackend | None = None

    def _get_backend(self) -> AsyncNetworkBackend:
        backend = self._backend
        if backend is None:
            backend = self._backend = _select_backend()
        return backend

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> AsyncNetworkStream:
        return await self._get_backend().connect_tcp(
            host,
            port,
            timeout=timeout,
            local_address=local_address,
            socket_options=socket_options,
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> AsyncNetworkStream:
        return await self._get_backend().connect_unix_socket(
            path, timeout=timeout, socket_options=socket_options
        )

    async def sleep(self, seconds: float) -> None:
        await self._get_backend().sleep(seconds)

    async def connect_udp(
        self,
        host: str,
        port: int,
        local_address: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        return await self._get_backend().connect_udp(host, port, local_address, timeout)
