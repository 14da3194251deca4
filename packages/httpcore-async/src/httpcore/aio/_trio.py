"""The native trio network backend.

`trio` is imported the first time a `TrioBackend` is created, not when this module is imported,
so `httpcore.aio` loads without it; creating the backend then fails with a clear `RuntimeError`
when it is not installed (or cannot be imported on this platform).
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
)
from httpcore.base._sync_backend import is_socket_readable

if TYPE_CHECKING:
    import trio

__all__ = ["TrioBackend", "TrioStream"]

_loaded = False


def _load_trio() -> None:
    """Bind the module global `trio` on first use."""
    global _loaded, trio
    try:
        import trio
    except (ImportError, NotImplementedError):
        raise RuntimeError(
            "Attempted to use 'httpcore.TrioBackend' but 'trio' is not installed."
        ) from None
    _loaded = True


def _socket_stream(stream: trio.abc.Stream) -> trio.SocketStream | None:
    """The socket stream at the bottom of a stack of `trio.SSLStream`s."""
    while isinstance(stream, trio.SSLStream):
        stream = stream.transport_stream
    return stream if isinstance(stream, trio.SocketStream) else None


class TrioStream(AsyncNetworkStream):
    """A trio stream (a `trio.SocketStream`, or a `trio.SSLStream` over one)."""

    __slots__ = ("_stream",)

    def __init__(self, stream: trio.abc.Stream) -> None:
        self._stream = stream

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            if timeout is None:
                data = await self._stream.receive_some(max_bytes)
            else:
                with trio.fail_after(timeout):
                    data = await self._stream.receive_some(max_bytes)
            # TLS streams may hand out bytearrays; the protocol code deals in bytes.
            return data if type(data) is bytes else bytes(data)
        except trio.TooSlowError as exc:
            raise ReadTimeout(exc) from exc
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise ReadError(exc) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            if timeout is None:
                await self._stream.send_all(buffer)
            else:
                with trio.fail_after(timeout):
                    await self._stream.send_all(buffer)
        except trio.TooSlowError as exc:
            raise WriteTimeout(exc) from exc
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise WriteError(exc) from exc

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> AsyncNetworkStream:
        tls_stream = trio.SSLStream(
            self._stream,
            ssl_context=ssl_context,
            server_hostname=server_hostname,
            https_compatible=True,
            server_side=False,
        )
        try:
            if timeout is None:
                await tls_stream.do_handshake()
            else:
                with trio.fail_after(timeout):
                    await tls_stream.do_handshake()
        except trio.TooSlowError as exc:
            await self.aclose()
            raise ConnectTimeout(exc) from exc
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            await self.aclose()
            raise ConnectError(exc) from exc
        except Exception:
            await self.aclose()
            raise
        return TrioStream(tls_stream)

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            if isinstance(self._stream, trio.SSLStream):
                return getattr(self._stream, "_ssl_object", self._stream)
            return None
        if info == "is_readable":
            if isinstance(self._stream, trio.SSLStream) and self._stream.pending():
                return True
            socket_stream = _socket_stream(self._stream)
            return is_socket_readable(None if socket_stream is None else socket_stream.socket)
        socket_stream = _socket_stream(self._stream)
        if socket_stream is None:
            return None
        sock = socket_stream.socket
        try:
            if info == "client_addr":
                return sock.getsockname()
            if info == "server_addr":
                return sock.getpeername()
        except OSError:
            return None
        if info == "socket":
            return sock
        return None


class TrioBackend(AsyncNetworkBackend):
    """The network backend on trio's own primitives. Only usable under trio.

    Requires the `trio` package (`pip install 'httpcore[trio]'`).
    """

    def __init__(self) -> None:
        if not _loaded:
            _load_trio()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> AsyncNetworkStream:
        try:
            if timeout is None:
                stream = await trio.open_tcp_stream(host, port, local_address=local_address)
            else:
                with trio.fail_after(timeout):
                    stream = await trio.open_tcp_stream(host, port, local_address=local_address)
        except trio.TooSlowError as exc:
            raise ConnectTimeout(exc) from exc
        except (OSError, trio.BrokenResourceError) as exc:
            raise ConnectError(exc) from exc
        return await _finish_connect(stream, socket_options)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> AsyncNetworkStream:
        try:
            if timeout is None:
                stream = await trio.open_unix_socket(path)
            else:
                with trio.fail_after(timeout):
                    stream = await trio.open_unix_socket(path)
        except trio.TooSlowError as exc:
            raise ConnectTimeout(exc) from exc
        except (OSError, trio.BrokenResourceError) as exc:
            raise ConnectError(exc) from exc
        return await _finish_connect(stream, socket_options)

    async def sleep(self, seconds: float) -> None:
        await trio.sleep(seconds)


async def _finish_connect(
    stream: trio.SocketStream, socket_options: Iterable[SOCKET_OPTION] | None
) -> TrioStream:
    if socket_options:
        try:
            for option in socket_options:
                stream.setsockopt(*option)
        except OSError as exc:
            await stream.aclose()
            raise ConnectError(exc) from exc
    return TrioStream(stream)
