"""Datagram endpoints (UDP), what QUIC needs from a network backend.

A datagram stream is *connected* to one peer: `read()` returns one whole datagram (never
`b""`: a datagram may be empty, but end of stream does not exist for UDP) or raises
`ReadTimeout` once `timeout` seconds pass without one; `write()` sends one datagram. Errors
are the documented ones: `ConnectError` when the address does not resolve or the socket
cannot be set up, `ReadError`/`WriteError` on a socket error (a peer that is not listening
shows up as a `ReadError` from the ICMP "port unreachable" on a connected socket).

The sync implementation lives here; the async ones in `httpcore.aio._udp`; the backends'
`connect_udp()` methods call `connect_udp_sync()` and friends.
"""

from __future__ import annotations

import select
import socket
from typing import List, Optional, Protocol, Sequence, Tuple, Union

from ._exceptions import ConnectError, ReadError, ReadTimeout, WriteError

#: Large enough for any QUIC datagram (QUIC packets are at most 65527 bytes of UDP payload).
MAX_DATAGRAM_SIZE = 65536
#: The receive buffer asked for (the system caps it at net.core.rmem_max on Linux). The
#: default (~200 kB) overflows while a busy client is away from the socket during a fast
#: download, and each datagram dropped there makes the server's congestion control slow down.
RECEIVE_BUFFER = 1 << 22

_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)


class _Socket(Protocol):
    def setsockopt(self, level: int, option: int, value: int, /) -> None: ...


def set_receive_buffer(sock: _Socket) -> None:
    """Ask for `RECEIVE_BUFFER` bytes of receive buffer on a UDP socket (best effort)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    except OSError:  # pragma: no cover - a platform refusing it keeps its default
        pass


#: One `getaddrinfo` answer: (family, type, proto, canonname, sockaddr).
AddrInfo = Tuple[
    socket.AddressFamily,
    socket.SocketKind,
    int,
    str,
    Union[Tuple[str, int], Tuple[str, int, int, int], Tuple[int, bytes]],
]


def resolve_udp(host: str, port: int, local_address: Optional[str]) -> List[AddrInfo]:
    """The `getaddrinfo` entries for `host`:`port` over UDP, in its order, each address once
    (family chosen by `local_address` if given). Raises `ConnectError` when nothing resolves.

    The endpoint connects to the first; the others are its `alternative_addresses`, which
    QUIC tries in order when the handshake with the first fails."""
    family = socket.AF_UNSPEC
    if local_address is not None:
        family = socket.AF_INET6 if ":" in local_address else socket.AF_INET
    try:
        infos = socket.getaddrinfo(host, port, family, socket.SOCK_DGRAM)
    except OSError as exc:
        raise ConnectError(exc) from exc
    unique: List[AddrInfo] = []
    seen = set()
    for family_, kind, proto, name, address in infos:
        if address not in seen:
            seen.add(address)
            unique.append((family_, kind, proto, name, address))
    if not unique:  # pragma: no cover - getaddrinfo raises instead
        raise ConnectError(f"no address for {host!r}")
    return unique


def alternatives(infos: Sequence[AddrInfo]) -> Tuple[str, ...]:
    """The hosts (IP addresses) of the entries after the first."""
    return tuple(str(info[4][0]) for info in infos[1:])


if hasattr(select, "poll"):

    def _readable(sock: socket.socket, timeout: float) -> bool:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(max(0.0, timeout) * 1000.0))

else:  # pragma: no cover - Windows

    def _readable(sock: socket.socket, timeout: float) -> bool:
        return bool(select.select([sock], [], [], max(0.0, timeout))[0])


class SyncDatagramStream:
    """A connected UDP socket used synchronously (see the module docstring)."""

    __slots__ = ("_closed", "_sock", "alternatives")

    def __init__(self, sock: socket.socket, alternatives: Tuple[str, ...] = ()) -> None:
        self._sock = sock
        self._closed = False
        self.alternatives = alternatives  # the other addresses of the host, in order

    def read(self, max_bytes: int = MAX_DATAGRAM_SIZE, timeout: Optional[float] = None) -> bytes:
        """One datagram; `ReadTimeout` after `timeout` seconds without one."""
        if self._closed:
            raise ReadError("the UDP endpoint is closed")
        sock = self._sock
        try:
            if timeout == 0 and _DONTWAIT:
                # A poll for one more datagram of a burst: one system call.
                try:
                    return sock.recv(max_bytes, _DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    raise ReadTimeout("no datagram waiting") from None
            # The socket stays blocking (a writer in another thread must not see a timeout
            # set for a read); the wait for a datagram is a poll.
            if timeout is not None and not _readable(sock, timeout):
                raise ReadTimeout("timed out")
            return sock.recv(max_bytes)
        except OSError as exc:
            raise ReadError(exc) from exc

    def write(self, datagram: bytes, timeout: Optional[float] = None) -> None:
        """Send one datagram (UDP sends do not block for long)."""
        if self._closed:
            raise WriteError("the UDP endpoint is closed")
        try:
            self._sock.send(datagram)
        except OSError as exc:
            raise WriteError(exc) from exc

    def close(self) -> None:
        """Close the socket (idempotent)."""
        if not self._closed:
            self._closed = True
            self._sock.close()

    def get_extra_info(self, info: str) -> object:
        """`"socket"`, `"client_addr"`, `"server_addr"`, `"alternative_addresses"`; None for
        anything else."""
        if self._closed:
            return None
        if info == "alternative_addresses":
            return self.alternatives
        if info == "socket":
            return self._sock
        if info == "client_addr":
            return self._sock.getsockname()
        if info == "server_addr":
            return self._sock.getpeername()
        return None


def connect_udp_sync(
    host: str,
    port: int,
    local_address: Optional[str] = None,
    timeout: Optional[float] = None,
) -> SyncDatagramStream:
    """A UDP socket connected to `host`:`port` (`ConnectError` if that fails)."""
    infos = resolve_udp(host, port, local_address)
    family, kind, proto, _name, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        set_receive_buffer(sock)
        if local_address is not None:
            sock.bind((local_address, 0))
        sock.connect(address)
    except OSError as exc:
        sock.close()
        raise ConnectError(exc) from exc
    return SyncDatagramStream(sock, alternatives(infos))


class MockDatagramStream:
    """A datagram stream that reads scripted datagrams and records what is written.

    Once the script is used up, `read()` raises `ReadTimeout` (nothing arrives any more).
    """

    __slots__ = ("closed", "datagrams", "written")

    def __init__(self, datagrams: Sequence[bytes]) -> None:
        self.datagrams: List[bytes] = list(datagrams)
        self.written: List[bytes] = []
        self.closed = False

    def read(self, max_bytes: int = MAX_DATAGRAM_SIZE, timeout: Optional[float] = None) -> bytes:
        if self.closed:
            raise ReadError("closed")
        if not self.datagrams:
            raise ReadTimeout("no more datagrams")
        return self.datagrams.pop(0)[:max_bytes]

    def write(self, datagram: bytes, timeout: Optional[float] = None) -> None:
        if self.closed:
            raise WriteError("closed")
        self.written.append(datagram)

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, info: str) -> object:
        return None


class AsyncMockDatagramStream(MockDatagramStream):
    """The async twin of `MockDatagramStream`."""

    __slots__ = ()

    async def read(  # type: ignore[override]
        self, max_bytes: int = MAX_DATAGRAM_SIZE, timeout: Optional[float] = None
    ) -> bytes:
        return MockDatagramStream.read(self, max_bytes, timeout)

    async def write(  # type: ignore[override]
        self, datagram: bytes, timeout: Optional[float] = None
    ) -> None:
        MockDatagramStream.write(self, datagram, timeout)

    async def aclose(self) -> None:
        self.closed = True
