"""The network streams handed out after an HTTP/1.1 upgrade (`101`) or a `CONNECT` tunnel.

Rules it keeps: the bytes that arrived behind the response head (already read off the socket by
the connection) come first, then the socket itself; closing goes straight to the socket, and so
does TLS when no such bytes are left (otherwise they are the TLS session's first: it runs over
this stream, so that they are not lost).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Union

from ._backends import AsyncNetworkStream, NetworkStream

if TYPE_CHECKING:
    import ssl


class UpgradeStreamBase:
    """A network stream handed out after `101` or `CONNECT`: first the bytes h11 had already
    buffered, then the socket."""

    _stream: Union[NetworkStream, AsyncNetworkStream]

    def __init__(
        self, stream: Union[NetworkStream, AsyncNetworkStream], leading_data: bytes
    ) -> None:
        self._stream = stream
        self._leading_data = leading_data

    def _take_leading(self, max_bytes: int) -> bytes:
        data, self._leading_data = self._leading_data[:max_bytes], self._leading_data[max_bytes:]
        return data

    def get_extra_info(self, info: str) -> Any:
        """The socket's extra information (that of the stream it wraps)."""
        return self._stream.get_extra_info(info)


class HTTP11UpgradeStream(UpgradeStreamBase, NetworkStream):
    """The sync upgrade stream."""

    _stream: NetworkStream

    def read(self, max_bytes: int, timeout: Optional[float] = None) -> bytes:
        if self._leading_data:
            return self._take_leading(max_bytes)
        return self._stream.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: Optional[float] = None) -> None:
        self._stream.write(buffer, timeout)

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> NetworkStream:
        if self._leading_data:
            from ._sync_tls import SyncTLSStream

            return SyncTLSStream.handshake(self, ssl_context, server_hostname, timeout)
        return self._stream.start_tls(ssl_context, server_hostname, timeout)


class AsyncHTTP11UpgradeStream(UpgradeStreamBase, AsyncNetworkStream):
    """The async upgrade stream."""

    _stream: AsyncNetworkStream

    async def read(self, max_bytes: int, timeout: Optional[float] = None) -> bytes:
        if self._leading_data:
            return self._take_leading(max_bytes)
        return await self._stream.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: Optional[float] = None) -> None:
        await self._stream.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> AsyncNetworkStream:
        if self._leading_data:
            from httpcore.aio._memory_tls import MemoryTLSStream

            return await MemoryTLSStream.handshake(self, ssl_context, server_hostname, timeout)
        return await self._stream.start_tls(ssl_context, server_hostname, timeout)
