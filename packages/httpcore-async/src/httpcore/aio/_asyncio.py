"""A native asyncio network backend: transports and protocols, no stream layers on top.

The automatic backend uses it under asyncio (anyio's streams cost several awaits and a
selector registration per read). Reads hand out the chunks asyncio received without copying
them when they fit; timeouts are `call_later` timers rather than `wait_for` tasks.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import ssl
import sys
import threading
from collections import deque
from typing import Any, Deque, Dict, Iterable, List, Optional

from httpcore.base._backends import SOCKET_OPTION, AsyncNetworkBackend, AsyncNetworkStream
from httpcore.base._exceptions import (
    ConnectError,
    ConnectTimeout,
    ReadError,
    ReadTimeout,
    WriteError,
    WriteTimeout,
    said,
    timed_out,
)
from httpcore.base._happy_eyeballs import AddrInfo, Schedule, candidates, is_ip_literal
from httpcore.base._tls_records import PEER_ENDED

from ._memory_tls import MemoryTLSStream

# Stop reading from the socket while this much is buffered and unread.
HIGH_WATER = 4 * 1024 * 1024

# What one read from the socket may return at most (asyncio's own size for plain protocols).
READ_BUFFER_SIZE = 256 * 1024

_thread_state = threading.local()


def _read_buffer() -> memoryview:
    """The buffer the event loop of this thread reads every socket into.

    With a plain protocol asyncio reads into a new 256 KiB bytes object each time, which
    glibc maps, shrinks and unmaps (three more syscalls and a page fault per read). A loop
    calls `get_buffer()` and `buffer_updated()` back to back, so one buffer per thread serves
    all of its connections (none holds memory of its own while idle).
    """
    view: Optional[memoryview] = getattr(_thread_state, "read_buffer", None)
    if view is None:
        view = _thread_state.read_buffer = memoryview(bytearray(READ_BUFFER_SIZE))
    return view


NATIVE_TLS_LIMITED = sys.version_info < (3, 11)

# How long `aclose()` waits for a closing transport to release its socket (a TLS peer that
# does not answer our close_notify) before aborting it.
CLOSE_TIMEOUT = 1.0


def _wake(waiter: Optional[asyncio.Future[None]]) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


class _Protocol(asyncio.BufferedProtocol):
    """Buffers what arrives and wakes the one reader or writer waiting."""

    def __init__(self) -> None:
        self.read_buffer = _read_buffer()  # shared: see `_read_buffer`
        self.transport: Any = None
        self.chunks: Deque[bytes] = deque()
        self.buffered = 0
        self.eof = False
        self.error: Optional[BaseException] = None
        self.read_waiter: Optional[asyncio.Future[None]] = None
        self.write_waiter: Optional[asyncio.Future[None]] = None
        self.close_waiter: Optional[asyncio.Future[None]] = None
        self.lost = False
        self.write_paused = False
        self.read_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self.read_buffer[:nbytes].tobytes())

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
        self.lost = True
        if exc is not None:
            self.error = exc
        _wake(self.read_waiter)
        _wake(self.write_waiter)
        _wake(self.close_waiter)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        _wake(self.write_waiter)


def _timed_out(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError("timed out"))


async def _wait(
    loop: asyncio.AbstractEventLoop,
    owner: Any,
    attr: str,
    timeout: Optional[float],
    expire: Any = _timed_out,
) -> None:
    """Wait until `owner.<attr>` (a future set here) is woken, or `expire` runs after
    `timeout` (by default raising `TimeoutError`)."""
    waiter = loop.create_future()
    setattr(owner, attr, waiter)
    timer = None if timeout is None else loop.call_later(timeout, expire, waiter)
    try:
        await waiter
    finally:
        setattr(owner, attr, None)
        if timer is not None:
            timer.cancel()


def _watch_ciphertext_drain(raw_transport: Any, protocol: _Protocol) -> float:
    """Wake our writer when the TCP transport under native TLS drains.

    asyncio's TLS transport encrypts a whole write at once and hands the ciphertext to the
    TCP transport below without pausing its own protocol, however full that one is: a write
    would never wait, never time out, and the data of a peer that does not read would pile up
    in memory. `write()` therefore waits on the TCP transport's buffer itself, and this
    forwards that transport's resume_writing() (made to the TLS protocol) to our writer.

    Returns the buffer size above which `write()` is to wait: infinite (never wait) when the
    TLS protocol is not one whose method can be wrapped (another event loop's).
    """
    ssl_protocol = raw_transport.get_protocol()
    try:
        resume = ssl_protocol.resume_writing

        def resume_writing() -> None:
            resume()
            _wake(protocol.write_waiter)

        ssl_protocol.resume_writing = resume_writing
        return float(raw_transport.get_write_buffer_limits()[1])
    except (AttributeError, TypeError):  # pragma: no cover
        return float("inf")


class AsyncIOStream(AsyncNetworkStream):
    """A stream over an asyncio transport."""

    #: `write()` hands the whole buffer to the transport before its first await, so a
    #: cancelled write leaves nothing behind; `resume_write()` never waits.
    resumable_writes = True

    def __init__(
        self,
        transport: Any,
        protocol: _Protocol,
        raw_transport: Any = None,
        raw_high: float = float("inf"),
    ) -> None:
        self._transport = transport
        self._protocol = protocol
        # Under native TLS: the TCP transport below, whose buffer holds the unsent
        # ciphertext, and how full it may get before a write waits.
        self._raw_transport = raw_transport
        self._raw_high = raw_high
        self._loop = asyncio.get_running_loop()
        self._closed = False
        # A write failed or timed out: closing must not wait to flush what is left.
        self._broken = False

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
                raise ReadTimeout(timed_out(exc)) from exc
            if not protocol.chunks:
                if protocol.error is not None:
                    raise ReadError(protocol.error)
                if self._closed:
                    raise ReadError("Connection closed")
                return b""
        return self._take(max_bytes)

    def _take(self, max_bytes: int) -> bytes:
        protocol = self._protocol
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

    def read_nowait(self, max_bytes: int) -> Optional[bytes]:
        """What a read would return without waiting (b"" at the end), or None (internal: for
        `MemoryTLSStream`'s readability check)."""
        if self._protocol.chunks and not self._closed:
            return self._take(max_bytes)
        return b"" if self._protocol.eof or self._closed else None

    async def write(self, buffer: bytes, timeout: Optional[float] = None) -> None:
        if not buffer:
            return
        protocol = self._protocol
        if self._closed or (protocol.eof and protocol.error is not None):
            raise WriteError(protocol.error or "Connection closed")
        if self._transport.is_closing():
            raise WriteError("Connection closed")
        self._transport.write(buffer)
        raw = self._raw_transport
        if protocol.write_paused or (
            raw is not None and raw.get_write_buffer_size() > self._raw_high
        ):
            try:
                await _wait(self._loop, protocol, "write_waiter", timeout)
            except TimeoutError as exc:
                self._broken = True
                raise WriteTimeout(timed_out(exc)) from exc
            if protocol.error is not None:
                self._broken = True
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
        if self._closed:
            return
        self._closed = True
        transport, protocol = self._transport, self._protocol
        raw = self._raw_transport
        if (
            self._broken
            or transport.get_write_buffer_size()
            or (raw is not None and raw.get_write_buffer_size())
        ):
            # close() would keep the socket open until a peer that is not reading takes
            # the rest of the data, which may be never.
            transport.abort()
        else:
            transport.close()
            if raw is not None:
                # Native TLS: close() has handed our close_notify to the TCP transport and
                # would now wait for the peer's (up to 30 s); like the other backends, do
                # not wait for it. Abort if even the close_notify could not be sent.
                if raw.get_write_buffer_size():
                    raw.abort()
                else:
                    raw.close()
        _wake(protocol.read_waiter)
        # The transport closes its socket on the next loop iteration or so: wait for it
        # (bounded), so that the descriptor is released when this returns.
        for _ in range(2):
            if protocol.lost:
                return
            try:
                await _wait(self._loop, protocol, "close_waiter", CLOSE_TIMEOUT)
            except TimeoutError:
                transport.abort()
            except BaseException:
                transport.abort()
                raise

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
            self._abort()
            raise ConnectTimeout(timed_out(exc)) from exc
        except (OSError, ssl.SSLError, ConnectionError) as exc:
            self._abort()
            # asyncio's TLS says a connection lost mid-handshake with a bare
            # ConnectionResetError().
            said(exc, "The server closed the connection during the TLS handshake")
            raise ConnectError(exc) from exc
        except BaseException:
            self._abort()
            raise
        raw_high = _watch_ciphertext_drain(self._transport, self._protocol)
        # start_tls does not call connection_made again: without this, a full buffer would pause
        # the raw transport while `read()` resumes the TLS one, and the download would stall.
        self._protocol.transport = transport
        return AsyncIOStream(transport, self._protocol, self._transport, raw_high)

    def _abort(self) -> None:
        # A failed handshake: nothing left worth flushing.
        self._closed = True
        self._transport.abort()

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
        if info == PEER_ENDED:
            return self._protocol.eof  # native TLS: a close_notify is an EOF here
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
            if not socket_options and is_ip_literal(host):
                # The common case: nothing to resolve, one address, no options to set first.
                local_addr = None if local_address is None else (local_address, 0)
                transport, _ = await asyncio.wait_for(
                    loop.create_connection(lambda: protocol, host, port, local_addr=local_addr),
                    timeout,
                )
            else:
                sock = await _open_tcp(loop, host, port, timeout, local_address, socket_options)
                try:
                    transport, _ = await loop.create_connection(lambda: protocol, sock=sock)
                except BaseException:
                    sock.close()
                    raise
        except asyncio.TimeoutError as exc:
            raise ConnectTimeout(timed_out(exc)) from exc
        except OSError as exc:
            raise ConnectError(exc) from exc
        return AsyncIOStream(transport, protocol)

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
            raise ConnectTimeout(timed_out(exc)) from exc
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


# Windows' default loop cannot watch sockets with add_writer(): no race there, one address
# after the other.
_NO_ADD_WRITER: Any = getattr(asyncio, "ProactorEventLoop", ())
_IN_PROGRESS = {errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN}


def _new_socket(
    info: AddrInfo, local_address: Optional[str], options: List[SOCKET_OPTION]
) -> socket.socket:
    family, kind, proto, _, _ = info
    sock = socket.socket(family, kind, proto)
    try:
        sock.setblocking(False)
        for option in options:
            sock.setsockopt(*option)
        if local_address is not None:
            sock.bind((local_address, 0))
    except BaseException:
        sock.close()
        raise
    return sock


async def _open_tcp(
    loop: asyncio.AbstractEventLoop,
    host: str,
    port: int,
    timeout: Optional[float],
    local_address: Optional[str],
    socket_options: Optional[Iterable[SOCKET_OPTION]],
) -> socket.socket:
    """Resolve `host` (in the loop's executor) and connect to it, racing its addresses as
    RFC 8305 says; `timeout` bounds the whole (raises `asyncio.TimeoutError`)."""
    options = list(socket_options or ())
    deadline = None if timeout is None else loop.time() + timeout
    resolved = await asyncio.wait_for(
        loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout
    )
    infos = candidates(resolved, local_address)
    if not infos:
        raise OSError(f"no address of {host!r} matches the local address {local_address!r}")
    if isinstance(loop, _NO_ADD_WRITER):  # pragma: no cover  (Windows)
        return await _sequential(loop, infos, deadline, local_address, options)
    return await _race(loop, infos, deadline, local_address, options)


class _Race:
    """The attempts in progress, each watched with `add_writer()`."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.attempts: Dict[socket.socket, int] = {}  # socket -> its fd
        self.completed: Deque[socket.socket] = deque()
        self.waiter: Optional[asyncio.Future[None]] = None

    def watch(self, sock: socket.socket) -> None:
        self.attempts[sock] = sock.fileno()
        self.loop.add_writer(sock.fileno(), self._writable, sock)

    def _writable(self, sock: socket.socket) -> None:
        self.loop.remove_writer(self.attempts[sock])
        self.completed.append(sock)
        _wake(self.waiter)

    def close(self) -> None:
        for sock, fd in self.attempts.items():
            self.loop.remove_writer(fd)
            sock.close()
        self.attempts.clear()


async def _race(
    loop: asyncio.AbstractEventLoop,
    infos: List[AddrInfo],
    deadline: Optional[float],
    local_address: Optional[str],
    options: List[SOCKET_OPTION],
) -> socket.socket:
    schedule = Schedule(infos)
    race = _Race(loop)
    last_error: Optional[OSError] = None
    try:
        while True:
            while race.completed:
                sock = race.completed.popleft()
                del race.attempts[sock]
                error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if error == 0:
                    return sock
                sock.close()
                last_error = OSError(error, os.strerror(error))
                schedule.failed()
            now = loop.time()
            info = schedule.start(now)
            if info is not None:
                try:
                    sock = _new_socket(info, local_address, options)
                except OSError as exc:
                    last_error = exc
                    schedule.failed()
                    continue
                error = sock.connect_ex(info[4])
                if error == 0:
                    return sock
                if error in _IN_PROGRESS:
                    race.watch(sock)
                else:
                    sock.close()
                    last_error = OSError(error, os.strerror(error))
                    schedule.failed()
                continue
            if schedule.exhausted:
                assert last_error is not None
                raise last_error
            if deadline is not None and now >= deadline:
                raise asyncio.TimeoutError("timed out")
            await _wait(loop, race, "waiter", schedule.wait(now, deadline), expire=_wake)
    finally:
        race.close()


async def _sequential(  # pragma: no cover  (Windows)
    loop: asyncio.AbstractEventLoop,
    infos: List[AddrInfo],
    deadline: Optional[float],
    local_address: Optional[str],
    options: List[SOCKET_OPTION],
) -> socket.socket:
    last_error: Optional[OSError] = None
    for info in infos:
        try:
            sock = _new_socket(info, local_address, options)
        except OSError as exc:
            last_error = exc
            continue
        try:
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            await asyncio.wait_for(loop.sock_connect(sock, info[4]), remaining)
            return sock
        except OSError as exc:
            sock.close()
            last_error = exc
        except BaseException:
            sock.close()
            raise
    assert last_error is not None
    raise last_error
