"""A native asyncio network backend: transports and protocols, no stream layers on top.

The automatic backend uses it under asyncio (anyio's streams cost several awaits and a
selector registration per read). Reads hand out the chunks asyncio received without copying
them when they fit; timeouts are `call_later` timers rather than `wait_for` tasks.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import sys
from collections import deque
from typing import Any, Deque, Iterable, Optional

from httpcore.base._backends import SOCKET_OPTION, AsyncNetworkBackend, AsyncNetworkStream
from httpcore.base._exceptions import (
    ConnectError,
    ConnectTimeout,
    ReadError,
    ReadTimeout,
    WriteError,
    WriteTimeout,
)

from ._memory_tls import MemoryTLSStream

# Stop reading from the socket while this much is buffered and unread.
HIGH_WATER = 4 * 1024 * 1024

NATIVE_TLS_LIMITED = sys.version_info < (3, 11)


def _wake(waiter: Optional[asyncio.Future[None]]) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


class _Protocol(asyncio.Protocol):
    """Buffers what arrives and wakes the one reader or writer waiting."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.chunks: Deque[bytes] = deque()
        self.buffered = 0
        self.eof = False
        self.error: Optional[BaseException] = None
        self.read_waiter: Optional[asyncio.Future[None]] = None
        self.write_waiter: Optional[asyncio.Future[None]] = None
        self.write_paused = False
        self.read_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.buffered += len(data)
        if self.buffered > HIGH_WATER and not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()
        _wake(self.read_waiter)

    def eof_received(self) -> bool:
        self.eof = True
        _wake(self.read_waiter)
        return False  # let the transport close itself

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self.eof = True
        if exc is not None:
            self.error = exc
        _wake(self.read_waiter)
        _wake(self.write_waiter)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        _wake(self.write_waiter)


def _timed_out(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


async def _wait(
    loop: asyncio.AbstractEventLoop, protocol: _Protocol, attr: str, timeout: Optional[float]
) -> None:
    waiter = loop.create_future()
    setattr(protocol, attr, waiter)
    timer = None if timeout is None else loop.call_later(timeout, _timed_out, waiter)
    try:
        await waiter
    finally:
        setattr(protocol, attr, None)
        if timer is not None:
            timer.cancel()


class AsyncIOStream(AsyncNetworkStream):
    """A stream over an asyncio transport."""

    #: `write()` hands the whole buffer to the transport before its first await, so a
    #: cancelled write leaves nothing behind; `resume_write()` never waits.
    resumable_writes = True

    def __init__(self, transport: Any, protocol: _Protocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self._loop = asyncio.get_running_loop()
        self._closed = False

    async def read(self, max_bytes: int, timeout: Optional[float] = None) -> bytes:
        protocol = self._protocol
        if self._closed:
            raise ReadError("Connection closed")
        if not protocol.chunks:
            if protocol.eof:
                if protocol.error is not None:
                    raise ReadError(protocol.error)
                return b""
            try:
                await _wait(self._loop, protocol, "read_waiter", timeout)
            except TimeoutError as exc:
                raise ReadTimeout(exc) from exc
            if not protocol.chunks:
                if protocol.error is not None:
                    raise ReadError(protocol.error)
                if self._closed:
                    raise ReadError("Connection closed")
                return b""
        chunk = protocol.chunks[0]
        if len(chunk) <= max_bytes:
            protocol.chunks.popleft()
        else:
            protocol.chunks[0] = chunk[max_bytes:]
            chunk = chunk[:max_bytes]
        protocol.buffered -= len(chunk)
        if protocol.read_paused and protocol.buffered <= HIGH_WATER // 2:
            protocol.read_paused = False
            self._transport.resume_reading()
        return chunk

    async def write(self, buffer: bytes, timeout: Optional[float] = None) -> None:
        if not buffer:
            return
        protocol = self._protocol
        if self._closed or (protocol.eof and protocol.error is not None):
            raise WriteError(protocol.error or "Connection closed")
        if self._transport.is_closing():
            raise WriteError("Connection closed")
        self._transport.write(buffer)
        if protocol.write_paused:
            try:
                await _wait(self._loop, protocol, "write_waiter", timeout)
            except TimeoutError as exc:
                raise WriteTimeout(exc) from exc
            if protocol.error is not None:
                raise WriteError(protocol.error)

    async def resume_write(self, buffer: bytes, timeout: Optional[float] = None) -> None:
        """Write `buffer` after a cancelled `write()`, without awaiting (nothing to cancel)."""
        if not buffer:
            return
        protocol = self._protocol
        if self._closed or self._transport.is_closing():
            raise WriteError(protocol.error or "Connection closed")
        self._transport.write(buffer)

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._transport.close()
            _wake(self._protocol.read_waiter)

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> AsyncNetworkStream:
        if NATIVE_TLS_LIMITED or self._transport.get_extra_info("sslcontext") is not None:
            # TLS through an HTTPS proxy (TLS over a TLS transport), and every TLS before
            # Python 3.11, whose asyncio can hang on a failed handshake: TLS in memory.
            return await MemoryTLSStream.handshake(self, ssl_context, server_hostname, timeout)
        try:
            transport = await asyncio.wait_for(
                self._loop.start_tls(
                    self._transport,
                    self._protocol,
                    ssl_context,
                    server_hostname=server_hostname,
                ),
                timeout,
            )
        except asyncio.TimeoutError as exc:
            self._transport.close()
            raise ConnectTimeout(exc) from exc
        except (OSError, ssl.SSLError, ConnectionError) as exc:
            self._transport.close()
            raise ConnectError(exc) from exc
        except BaseException:
            self._transport.close()
            raise
        return AsyncIOStream(transport, self._protocol)

    def get_extra_info(self, info: str) -> Any:
        transport = self._transport
        if info == "ssl_object":
            return transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return transport.get_extra_info("sockname")
        if info == "server_addr":
            return transport.get_extra_info("peername")
        if info == "socket":
            return transport.get_extra_info("socket")
        if info == "is_readable":
            # The event loop keeps reading the socket into the protocol, which therefore
            # already knows of any data or EOF: no poll() needed.
            protocol = self._protocol
            return bool(protocol.chunks) or protocol.eof or self._closed
        return None


class AsyncIOBackend(AsyncNetworkBackend):
    """Connections over asyncio transports (used by the automatic backend under asyncio)."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: Optional[float] = None,
        local_address: Optional[str] = None,
        socket_options: Optional[Iterable[SOCKET_OPTION]] = None,
    ) -> AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        protocol = _Protocol()
        try:
            if socket_options:
                sock = await asyncio.wait_for(
                    self._connect_socket(loop, host, port, local_address, socket_options),
                    timeout,
                )
                transport, _ = await loop.create_connection(lambda: protocol, sock=sock)
            else:
                local_addr = None if local_address is None else (local_address, 0)
                transport, _ = await asyncio.wait_for(
                    loop.create_connection(lambda: protocol, host, port, local_addr=local_addr),
                    timeout,
                )
        except asyncio.TimeoutError as exc:
            raise ConnectTimeout(exc) from exc
        except OSError as exc:
            raise ConnectError(exc) from exc
        return AsyncIOStream(transport, protocol)

    @staticmethod
    async def _connect_socket(
        loop: asyncio.AbstractEventLoop,
        host: str,
        port: int,
        local_address: Optional[str],
        socket_options: Iterable[SOCKET_OPTION],
    ) -> socket.socket:
        options = list(socket_options)
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        error: Optional[OSError] = None
        for family, kind, proto, _, address in infos:
            sock = socket.socket(family, kind, proto)
            try:
                sock.setblocking(False)
                for option in options:
                    sock.setsockopt(*option)
                if local_address is not None:
                    sock.bind((local_address, 0))
                await loop.sock_connect(sock, address)
                return sock
            except OSError as exc:
                sock.close()
                error = exc
            except BaseException:
                sock.close()
                raise
        raise error or OSError(f"could not resolve {host!r}")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: Optional[float] = None,
        socket_options: Optional[Iterable[SOCKET_OPTION]] = None,
    ) -> AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        protocol = _Protocol()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            for option in socket_options or ():
                sock.setsockopt(*option)
            await asyncio.wait_for(loop.sock_connect(sock, path), timeout)
            transport, _ = await loop.create_unix_connection(lambda: protocol, sock=sock)
        except asyncio.TimeoutError as exc:
            sock.close()
            raise ConnectTimeout(exc) from exc
        except OSError as exc:
            sock.close()
            raise ConnectError(exc) from exc
        except BaseException:
            sock.close()
            raise
        return AsyncIOStream(transport, protocol)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def connect_udp(
        self,
        host: str,
        port: int,
        local_address: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> Any:
        from ._udp import connect_udp_asyncio

        return await connect_udp_asyncio(host, port, local_address, timeout)
