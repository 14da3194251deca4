"""Async datagram endpoints (UDP) for QUIC: asyncio (a datagram transport), trio (a trio
socket) and anyio (a connected UDP socket). The contract is the sync one of
`httpcore.base._udp`: `read()` returns one datagram or raises `ReadTimeout`, `write()` sends
one, `aclose()` closes; errors are `ConnectError`, `ReadError`, `WriteError`."""

from __future__ import annotations

import asyncio
import collections
import socket
from typing import Any, Deque, Optional, Tuple, cast

from httpcore.base._exceptions import (
    ConnectError,
    ReadError,
    ReadTimeout,
    WriteError,
    WriteTimeout,
    timed_out,
)
from httpcore.base._udp import (
    MAX_DATAGRAM_SIZE,
    alternatives,
    resolve_udp,
    set_receive_buffer,
)

from ._asyncio import _wait

# -- asyncio ------------------------------------------------------------------------------


class _DatagramProtocol(asyncio.DatagramProtocol):
    """Queues the datagrams received and wakes the reader."""

    def __init__(self) -> None:
        self.datagrams: Deque[bytes] = collections.deque()
        self.error: Optional[BaseException] = None
        self.waiter: Optional[asyncio.Future[None]] = None

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def datagram_received(self, data: bytes, addr: Tuple[Any, ...]) -> None:
        self.datagrams.append(data)
        self._wake()

    def error_received(self, exc: Exception) -> None:
        # An ICMP error on a connected socket (e.g. port unreachable): reported to the reader.
        self.error = exc
        self._wake()

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if self.error is None:
            self.error = exc or ConnectionResetError("closed")
        self._wake()


def _recv_waiting(sock: Optional[socket.socket], max_bytes: int) -> Optional[bytes]:
    """A datagram already waiting in a non-blocking socket, or None (none, or closed)."""
    if sock is None or sock.fileno() == -1:
        return None
    try:
        return sock.recv(max_bytes)
    except (BlockingIOError, InterruptedError):
        return None
    except OSError as exc:
        raise ReadError(exc) from exc


class AsyncIODatagramStream:
    """A connected UDP endpoint on an asyncio datagram transport.

    The transport reads one datagram per turn of the event loop; a reader that finds its
    queue empty takes what waits in the socket directly (it is non-blocking), so that a
    burst of datagrams is taken in one go rather than one per loop turn."""

    def __init__(
        self,
        transport: asyncio.DatagramTransport,
        protocol: _DatagramProtocol,
        sock: Optional[socket.socket] = None,
        alternatives: Tuple[str, ...] = (),
    ):
        self._transport = transport
        self._protocol = protocol
        self._sock = sock
        self.alternatives = alternatives  # the other addresses of the host, in order

    def _recv_now(self, max_bytes: int) -> Optional[bytes]:
        """A datagram waiting in the socket, or None."""
        if self._transport.is_closing():
            return None
        return _recv_waiting(self._sock, max_bytes)

    async def read(
        self, max_bytes: int = MAX_DATAGRAM_SIZE, timeout: Optional[float] = None
    ) -> bytes:
        protocol = self._protocol
        if not protocol.datagrams and protocol.error is None:
            data = self._recv_now(max_bytes)
            if data is not None:
                return data
            if timeout == 0:
                raise ReadTimeout("no datagram waiting")  # a poll: no future, no timer
        while not protocol.datagrams:
            if protocol.error is not None:
                error, protocol.error = protocol.error, None
                raise ReadError(error) from error
            # A bare future and a timer, as the TCP streams wait: before Python 3.12,
            # `asyncio.wait_for` returned a datagram that came in the same loop turn as a
            # cancellation, and the cancellation was lost.
            try:
                await _wait(asyncio.get_running_loop(), protocol, "waiter", timeout)
            except TimeoutError as exc:
                raise ReadTimeout(timed_out(exc)) from exc
        return protocol.datagrams.popleft()[:max_bytes]

    async def write(self, datagram: bytes, timeout: Optional[float] = None) -> None:
        if self._transport.is_closing():
            raise WriteError("the UDP endpoint is closed")
        try:
            self._transport.sendto(datagram)
        except OSError as exc:  # pragma: no cover - sendto reports through error_received
            raise WriteError(exc) from exc

    async def aclose(self) -> None:
        self._transport.close()

    def get_extra_info(self, info: str) -> Any:
        if info == "alternative_addresses":
            return self.alternatives
        if info == "client_addr":
            return self._transport.get_extra_info("sockname")
        if info == "server_addr":
            return self._transport.get_extra_info("peername")
        if info == "socket":
            return self._transport.get_extra_info("socket")
        return None


async def connect_udp_asyncio(
    host: str, port: int, local_address: Optional[str], timeout: Optional[float]
) -> AsyncIODatagramStream:
    infos = resolve_udp(host, port, local_address)
    family, kind, proto, _name, address = infos[0]
    loop = asyncio.get_running_loop()
    sock = socket.socket(family, kind, proto)
    try:
        sock.setblocking(False)
        set_receive_buffer(sock)
        if local_address is not None:
            sock.bind((local_address, 0))
        sock.connect(address)  # UDP: no packet sent, no wait
        transport, protocol = await loop.create_datagram_endpoint(_DatagramProtocol, sock=sock)
    except OSError as exc:
        sock.close()
        raise ConnectError(exc) from exc
    except BaseException:
        sock.close()
        raise
    return AsyncIODatagramStream(transport, protocol, sock, alternatives(infos))


# -- trio ---------------------------------------------------------------------------------


class TrioDatagramStream:
    """A connected UDP endpoint on a trio socket.

    A read takes a datagram already waiting in the socket directly (it is non-blocking)
    before it waits: trio cancels a wait whose deadline has passed before it even looks at the
    socket, so a poll (`timeout=0`) would never return what is there. A poll is no checkpoint;
    other reads are one, as trio's own."""

    def __init__(
        self, sock: Any, alternatives: Tuple[str, ...] = (), raw: Optional[socket.socket] = None
    ) -> None:
        self._sock = sock
        self._raw = raw  # the stdlib socket under `sock`, for polls
        self.alternatives = alternatives  # the other addresses of the host, in order

    async def read(
        self, max_bytes: int = MAX_DATAGRAM_SIZE, timeout: Optional[float] = None
    ) -> bytes:
        import trio

        poll = timeout is not None and timeout <= 0
        if not poll:
            await trio.lowlevel.checkpoint_if_cancelled()
        data = _recv_waiting(self._raw, max_bytes)
        if data is not None:
            if not poll:
                await trio.lowlevel.cancel_shielded_checkpoint()
            return data
        if poll:
            raise ReadTimeout("no datagram waiting")
        try:
            with trio.fail_after(float("inf") if timeout is None else timeout):
                return await self._sock.recv(max_bytes)  # type: ignore[no-any-return]
        except trio.TooSlowError as exc:
            raise ReadTimeout(timed_out(exc)) from exc
        except (OSError, trio.ClosedResourceError) as exc:
            raise ReadError(exc) from exc

    async def write(self, datagram: bytes, timeout: Optional[float] = None) -> None:
        import trio

        # aioquic counts a datagram it handed out as sent, so a cancellation must not lose it
        # (a cancelled request's RESET_STREAM and STOP_SENDING, say): it goes straight to the
        # socket, which a datagram rarely waits for, then to a schedule point that cannot
        # raise Cancelled. Only a full socket buffer makes it wait, shielded, in its timeout.
        raw = self._raw
        try:
            if raw is not None:
                try:
                    raw.send(datagram)
                except BlockingIOError:
                    pass
                else:
                    await trio.lowlevel.cancel_shielded_checkpoint()
                    return
            with trio.CancelScope(shield=True) as scope:
                if timeout is not None:
                    scope.deadline = trio.current_time() + timeout
                await self._sock.send(datagram)
        except (OSError, trio.ClosedResourceError) as exc:
            raise WriteError(exc) from exc
        if scope.cancelled_caught:
            raise WriteTimeout("timed out")

    async def aclose(self) -> None:
        self._sock.close()

    def get_extra_info(self, info: str) -> Any:
        sock = self._sock
        if sock.fileno() == -1:
            return None  # closed
        if info == "alternative_addresses":
            return self.alternatives
        if info == "client_addr":
            return sock.getsockname()
        if info == "server_addr":
            return sock.getpeername()
        if info == "socket":
            return sock
        return None


async def connect_udp_trio(
    host: str, port: int, local_address: Optional[str], timeout: Optional[float]
) -> TrioDatagramStream:
    import trio

    infos = resolve_udp(host, port, local_address)
    family, kind, proto, _name, address = infos[0]
    raw = socket.socket(family, kind, proto)
    sock = trio.socket.from_stdlib_socket(raw)  # the same socket, made non-blocking
    try:
        set_receive_buffer(sock)
        if local_address is not None:
            await sock.bind((local_address, 0))
        await sock.connect(address)
    except OSError as exc:
        sock.close()
        raise ConnectError(exc) from exc
    return TrioDatagramStream(sock, alternatives(infos), raw)


# -- anyio --------------------------------------------------------------------------------


class AnyIODatagramStream:
    """A connected UDP endpoint on anyio's `ConnectedUDPSocket`."""

    def __init__(self, sock: Any, alternatives: Tuple[str, ...] = ()) -> None:
        self._sock = sock
        self.alternatives = alternatives  # the other addresses of the host, in order

    async def read(
        self, max_bytes: int = MAX_DATAGRAM_SIZE, timeout: Optional[float] = None
    ) -> bytes:
        import anyio

        try:
            with anyio.fail_after(timeout):
                return (await self._sock.receive())[:max_bytes]  # type: ignore[no-any-return]
        except TimeoutError as exc:
            raise ReadTimeout(timed_out(exc)) from exc
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            raise ReadError(exc) from exc

    async def write(self, datagram: bytes, timeout: Optional[float] = None) -> None:
        import anyio

        # Shielded, as trio's above: anyio's send checks for cancellation before it sends,
        # and aioquic has already counted the datagram as sent.
        try:
            with anyio.CancelScope(shield=True) as scope:
                if timeout is not None:
                    scope.deadline = anyio.current_time() + timeout
                await self._sock.send(datagram)
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            raise WriteError(exc) from exc
        if scope.cancelled_caught:
            raise WriteTimeout("timed out")

    async def aclose(self) -> None:
        await self._sock.aclose()

    def get_extra_info(self, info: str) -> Any:
        import anyio.abc

        if info == "alternative_addresses":
            return self.alternatives
        if info == "client_addr":
            return self._sock.extra(anyio.abc.SocketAttribute.local_address, None)
        if info == "server_addr":
            return self._sock.extra(anyio.abc.SocketAttribute.remote_address, None)
        return None


async def connect_udp_anyio(
    host: str, port: int, local_address: Optional[str], timeout: Optional[float]
) -> AnyIODatagramStream:
    import anyio
    import anyio.abc

    infos = resolve_udp(host, port, local_address)
    family, _kind, _proto, _name, address = infos[0]
    try:
        sock = await anyio.create_connected_udp_socket(
            str(address[0]), int(address[1]), family=cast(Any, family), local_host=local_address
        )
    except OSError as exc:
        raise ConnectError(exc) from exc
    set_receive_buffer(sock.extra(anyio.abc.SocketAttribute.raw_socket))
    return AnyIODatagramStream(sock, alternatives(infos))


__all__ = [
    "connect_udp_anyio",
    "connect_udp_asyncio",
    "connect_udp_trio",
]
