"""The native trio network backend.

`trio` is imported the first time a `TrioBackend` is created, not when this module is imported,
so `httpcore.aio` loads without it; creating the backend then fails with a clear `RuntimeError`
when it is not installed (or cannot be imported on this platform).
"""

from __future__ import annotations

import os
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
from httpcore.base._sync_backend import _socket_info, is_socket_readable

from ._memory_tls import MemoryTLSStream

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


class TrioStream(AsyncNetworkStream):
    """A `trio.SocketStream`. TLS runs in memory on top of it (`MemoryTLSStream`)."""

    __slots__ = ("_socket", "_stream", "_unsent")

    #: A cancelled `write()` keeps what it had not sent; `resume_write()` sends it.
    resumable_writes = True

    def __init__(self, stream: trio.SocketStream) -> None:
        self._stream = stream
        self._socket = stream.socket
        self._unsent = b""

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            if timeout is None:
                return await self._stream.receive_some(max_bytes)
            with trio.fail_after(timeout):
                return await self._stream.receive_some(max_bytes)
        except trio.TooSlowError as exc:
            raise ReadTimeout(timed_out(exc)) from exc
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise ReadError(exc) from exc

    async def _send(self, view: memoryview) -> None:
        # trio's send_all cannot tell how much of an interrupted call went out; this loop can.
        sock = self._socket
        try:
            while view:
                view = view[await sock.send(view) :]
        except BaseException:
            self._unsent = bytes(view)
            raise

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            if timeout is None:
                await self._send(memoryview(buffer))
            else:
                with trio.fail_after(timeout):
                    await self._send(memoryview(buffer))
        except trio.TooSlowError as exc:
            raise WriteTimeout(timed_out(exc)) from exc
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise WriteError(exc) from exc

    async def resume_write(self, buffer: bytes, timeout: float | None = None) -> None:
        """Finish a cancelled `write()`, then write `buffer`, shielded from cancellation
        (but not from `timeout`)."""
        data, self._unsent = self._unsent + buffer, b""
        if not data:
            return
        with trio.CancelScope(shield=True) as scope:
            if timeout is not None:
                scope.deadline = trio.current_time() + timeout
            try:
                await self._send(memoryview(data))
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                raise WriteError(exc) from exc
        if scope.cancelled_caught:
            raise WriteTimeout("Timed out finishing an interrupted write.")

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> AsyncNetworkStream:
        return await MemoryTLSStream.handshake(self, ssl_context, server_hostname, timeout)

    def read_nowait(self, max_bytes: int) -> bytes | None:
        """What a read would return without waiting (b"" at the end), or None (internal: for
        `MemoryTLSStream`'s readability check)."""
        sock = self._socket
        if not is_socket_readable(sock):
            return None
        try:  # trio's sockets are non-blocking, and trio keeps no buffer of its own
            return os.read(sock.fileno(), max_bytes)
        except BlockingIOError:
            return None
        except OSError:  # reset: the end, as far as a reader is concerned
            return b""

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            return is_socket_readable(self._socket)
        return _socket_info(self._socket, info)


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
            raise ConnectTimeout(timed_out(exc)) from exc
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
            raise ConnectTimeout(timed_out(exc)) from exc
        except (OSError, trio.BrokenResourceError) as exc:
            raise ConnectError(exc) from exc
        return await _finish_connect(stream, socket_options)

    async def sleep(self, seconds: float) -> None:
        await trio.sleep(seconds)

    async def connect_udp(
        self,
        host: str,
        port: int,
        local_address: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        from ._udp import connect_udp_trio

        return await connect_udp_trio(host, port, local_address, timeout)


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
