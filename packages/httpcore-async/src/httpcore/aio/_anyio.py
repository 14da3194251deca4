"""The anyio network backend (asyncio, and trio through anyio).

`anyio` is imported the first time an `AnyIOBackend` is created, not when this module is
imported, so `httpcore.aio` loads without it; creating the backend then fails with a clear
`RuntimeError` when it is not installed.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any, Iterable

from httpcore.base._backends import SOCKET_OPTION, AsyncNetworkBackend, AsyncNetworkStream
from httpcore.base._exceptions import (
    ConnectError,
    ConnectTimeout,
    ReadError,
    ReadTimeout,
    WriteError,
    WriteTimeout,
    timed_out,
)
from httpcore.base._sync_backend import is_socket_readable

if TYPE_CHECKING:
    import anyio
    import anyio.abc
    import anyio.lowlevel
    from anyio.streams.tls import TLSAttribute, TLSStream

__all__ = ["AnyIOBackend", "AnyIOStream"]

_loaded = False


def _load_anyio() -> None:
    """Bind the module globals `anyio`, `TLSAttribute` and `TLSStream` on first use."""
    global _loaded, anyio, TLSAttribute, TLSStream
    try:
        import anyio
        import anyio.abc
        import anyio.lowlevel
        from anyio.streams.tls import TLSAttribute, TLSStream
    except ImportError:
        raise RuntimeError(
            "Attempted to use 'httpcore.AnyIOBackend' but 'anyio' is not installed."
        ) from None
    _loaded = True


class AnyIOStream(AsyncNetworkStream):
    """An anyio byte stream (a TCP/Unix socket stream, or a `TLSStream` over one)."""

    __slots__ = ("_stream",)

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self._stream = stream

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            if timeout is None:
                return await self._stream.receive(max_bytes)
            with anyio.fail_after(timeout):
                return await self._stream.receive(max_bytes)
        except TimeoutError as exc:
            raise ReadTimeout(timed_out(exc)) from exc
        except anyio.EndOfStream:
            return b""
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            raise ReadError(exc) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            if timeout is None:
                await self._stream.send(buffer)
            else:
                with anyio.fail_after(timeout):
                    await self._stream.send(buffer)
        except TimeoutError as exc:
            raise WriteTimeout(timed_out(exc)) from exc
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            raise WriteError(exc) from exc

    async def aclose(self) -> None:
        await self._stream.aclose()
        # Under asyncio, anyio up to 4.12 (the last for Python 3.9) aborts the transport as
        # its last step and returns: the socket is closed by a callback on the next loop
        # iteration. Let it run, so the descriptor is released when this returns.
        await anyio.lowlevel.cancel_shielded_checkpoint()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):
                tls_stream = await TLSStream.wrap(
                    self._stream,
                    server_side=False,
                    hostname=server_hostname,
                    ssl_context=ssl_context,
                    standard_compatible=False,
                )
        except TimeoutError as exc:
            await self.aclose()
            raise ConnectTimeout(timed_out(exc)) from exc
        except (anyio.BrokenResourceError, anyio.EndOfStream, OSError) as exc:
            await self.aclose()
            raise ConnectError(exc) from exc
        except Exception:
            await self.aclose()
            raise
        return AnyIOStream(tls_stream)

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self._stream.extra(TLSAttribute.ssl_object, None)
        if info == "client_addr":
            return self._stream.extra(anyio.abc.SocketAttribute.local_address, None)
        if info == "server_addr":
            return self._stream.extra(anyio.abc.SocketAttribute.remote_address, None)
        if info == "socket":
            return self._stream.extra(anyio.abc.SocketAttribute.raw_socket, None)
        if info == "is_readable":
            ssl_object = self._stream.extra(TLSAttribute.ssl_object, None)
            if ssl_object is not None and ssl_object.pending():
                return True
            return is_socket_readable(
                self._stream.extra(anyio.abc.SocketAttribute.raw_socket, None)
            )
        return None


def _apply_socket_options(
    stream: anyio.abc.SocketStream, options: Iterable[SOCKET_OPTION] | None
) -> None:
    if options:
        sock = stream.extra(anyio.abc.SocketAttribute.raw_socket)
        for option in options:
            sock.setsockopt(*option)


class AnyIOBackend(AsyncNetworkBackend):
    """The network backend on anyio; works under asyncio and under trio.

    Requires the `anyio` package (`pip install 'httpcore[asyncio]'`).
    """

    def __init__(self) -> None:
        if not _loaded:
            _load_anyio()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):
                stream = await anyio.connect_tcp(
                    remote_host=host, remote_port=port, local_host=local_address
                )
        except TimeoutError as exc:
            raise ConnectTimeout(timed_out(exc)) from exc
        except (OSError, anyio.BrokenResourceError) as exc:
            raise ConnectError(exc) from exc
        return await _finish_connect(stream, socket_options)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):
                stream = await anyio.connect_unix(path)
        except TimeoutError as exc:
            raise ConnectTimeout(timed_out(exc)) from exc
        except (OSError, anyio.BrokenResourceError) as exc:
            raise ConnectError(exc) from exc
        return await _finish_connect(stream, socket_options)

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)

    async def connect_udp(
        self,
        host: str,
        port: int,
        local_address: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        from ._udp import connect_udp_anyio

        return await connect_udp_anyio(host, port, local_address, timeout)


async def _finish_connect(
    stream: anyio.abc.SocketStream, socket_options: Iterable[SOCKET_OPTION] | None
) -> AnyIOStream:
    try:
        _apply_socket_options(stream, socket_options)
    except OSError as exc:
        await stream.aclose()
        raise ConnectError(exc) from exc
    return AnyIOStream(stream)
