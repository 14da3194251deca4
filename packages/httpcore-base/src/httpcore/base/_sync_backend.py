"""The blocking network backend, on the standard `socket` and `ssl` modules.

This is the hot path of every synchronous request, so the stream methods are written to do as
little as possible per call: the socket timeout is only changed when it differs from the one
set last, errors are mapped with a plain `try`/`except`, and a write is one call.
On Linux the socket stays blocking and its timeouts are the kernel's (`SO_RCVTIMEO`,
`SO_SNDTIMEO`): with `settimeout()`, CPython polls before every `recv` and `send`, two more
syscalls a request (and two more releases of the GIL) for every caller that sets timeouts.
"""

from __future__ import annotations

import errno
import os
import select
import selectors
import socket
import struct
import sys
import time
from typing import TYPE_CHECKING, Any, Iterable, Optional, Protocol

from ._backends import SOCKET_OPTION, NetworkBackend, NetworkStream
from ._exceptions import (
    ConnectError,
    ConnectTimeout,
    ReadError,
    ReadTimeout,
    WriteError,
    WriteTimeout,
)
from ._happy_eyeballs import AddrInfo, Schedule, candidates

if TYPE_CHECKING:
    import ssl

__all__ = ["SyncBackend", "SyncStream", "is_socket_readable"]

# A cached timeout that equals no timeout (NaN != anything): forces the next call to set it.
_UNKNOWN_TIMEOUT = float("nan")

# `SO_RCVTIMEO`/`SO_SNDTIMEO` take a `struct timeval` of two native longs on 64-bit Linux.
_KERNEL_TIMEOUTS = sys.platform == "linux" and struct.calcsize("@l") == 8
_TIMEVAL = struct.Struct("@ll")
_NO_TIMEOUT = _TIMEVAL.pack(0, 0)  # zero is "wait for ever" to the kernel
_MAX_SECONDS = 2**31

# Linux tells through `getsockopt` whether an idle TCP connection is still open with nothing
# queued. CPython keeps the GIL across `getsockopt`; it releases it around `poll()`. The pool
# asks under its lock at every checkout: with threads, a GIL release there let the others run
# into that lock and queue on it (8 threads: half the futex calls, ~25% of a request's CPU).
# SO_MEMINFO is the generic number (parisc and sparc have their own).
_TCP_STATE_CHECK = sys.platform == "linux" and not os.uname().machine.startswith(
    ("parisc", "sparc")
)
_SO_MEMINFO = 55
_TCP_ESTABLISHED = b"\x01"  # the first byte of `struct tcp_info` is the state
_NOTHING_QUEUED = b"\0\0\0\0"  # the first field of SO_MEMINFO: bytes in the receive queue


if hasattr(select, "poll"):

    def _fd_readable(fd: int) -> bool:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))

else:  # pragma: no cover  (Windows)

    def _fd_readable(fd: int) -> bool:
        readable, _, _ = select.select([fd], [], [], 0)
        return bool(readable)


class HasFileno(Protocol):
    """A socket, an `ssl.SSLSocket`, a trio or asyncio socket wrapper."""

    def fileno(self) -> int: ...


class SocketLike(Protocol):
    """A stdlib socket, or anything with the same methods (such as a trio socket)."""

    def getsockname(self) -> object: ...

    def getpeername(self) -> object: ...


def is_socket_readable(sock: Optional[HasFileno]) -> bool:
    """Tell, without blocking, whether reading `sock` would return at once (data or EOF).

    `sock` is anything with `fileno()` (a socket, an `ssl.SSLSocket`, a trio or asyncio
    wrapper). A missing or closed socket counts as readable: a connection in that state must
    not be reused. Decrypted bytes already buffered inside an `ssl.SSLSocket` count too.
    """
    if sock is None:
        return True
    try:
        fd = sock.fileno()
        if fd < 0:
            return True
        pending = getattr(sock, "pending", None)
        if pending is not None and pending():
            return True
        return _fd_readable(fd)
    except (OSError, ValueError):
        return True


def tcp_state_check(sock: socket.socket) -> bool:
    """Whether `tcp_readable` can tell about `sock`: a TCP socket, on Linux."""
    return (
        _TCP_STATE_CHECK
        and type(sock) is socket.socket  # an `ssl.SSLSocket` may hold decrypted bytes
        and sock.family in (socket.AF_INET, socket.AF_INET6)
        and sock.type == socket.SOCK_STREAM
        and sock.proto in (0, socket.IPPROTO_TCP)
    )


def tcp_readable(sock: socket.socket) -> bool:
    """`is_socket_readable` for a socket that passed `tcp_state_check`, without a syscall that
    releases the GIL: readable once the server's FIN or reset arrived, or bytes are queued."""
    try:
        if sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1) != _TCP_ESTABLISHED:
            return True
        return sock.getsockopt(socket.SOL_SOCKET, _SO_MEMINFO, 4) != _NOTHING_QUEUED
    except OSError:  # closed
        return True


def tcp_socket_of(stream: Any) -> Any:
    """The TCP socket under `stream` (any backend's, through TLS), where `peer_closed` can
    ask the kernel about it: on Linux. None elsewhere, and for streams without one."""
    if not _TCP_STATE_CHECK:
        return None
    sock = stream.get_extra_info("socket")
    try:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM:
            return sock
    except (AttributeError, OSError):
        pass
    return None


def peer_closed(sock: Any) -> bool:
    """Whether the server's FIN or a reset arrived on `sock` (from `tcp_socket_of`), read or
    not, whatever else is queued: the TCP state is no longer ESTABLISHED."""
    try:
        return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1) != _TCP_ESTABLISHED)
    except OSError:  # closed
        return True


def _socket_info(sock: SocketLike, info: str) -> object:
    """The `get_extra_info` keys that only depend on the (outermost) socket (a stdlib socket,
    or anything with the same methods, such as a trio socket)."""
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


class SyncStream(NetworkStream):
    """A connected blocking socket, plain (`start_tls` hands the socket to a `SyncTLSStream`,
    see `_sync_tls`)."""

    __slots__ = ("_sock", "_tcp_state_check", "_timeout")

    def __init__(self, sock: socket.socket, timeout: float | None = None) -> None:
        self._sock = sock
        # The timeout currently set on the socket, so that it is only changed when needed.
        self._timeout = timeout
        self._tcp_state_check = tcp_state_check(sock)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            if timeout != self._timeout:
                self._sock.settimeout(timeout)
                self._timeout = timeout
            return self._sock.recv(max_bytes)
        except socket.timeout as exc:
            raise ReadTimeout(exc) from exc
        except BlockingIOError:
            # A zero timeout (a non-blocking socket), or the caller's SO_RCVTIMEO running out.
            timed_out = _timed_out()
            raise ReadTimeout(timed_out) from timed_out
        except OSError as exc:
            raise ReadError(exc) from exc

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            if timeout != self._timeout:
                self._sock.settimeout(timeout)
                self._timeout = timeout
            self._sock.sendall(buffer)
        except socket.timeout as exc:
            raise WriteTimeout(exc) from exc
        except BlockingIOError:
            timed_out = _timed_out()
            raise WriteTimeout(timed_out) from timed_out
        except OSError as exc:
            raise WriteError(exc) from exc

    def close(self) -> None:
        self._sock.close()

    def shared_by_threads(self) -> NetworkStream:
        """This connection as a stream that threads may read and write at once (sync HTTP/2
        without TLS): each call waits for its own timeout, where `settimeout()` is one
        setting per socket that a read and a write of two threads would race on. It owns
        the socket from now on."""
        from ._sync_tls import SocketTransport

        self._timeout = _UNKNOWN_TIMEOUT
        return SocketTransport(self._sock, *self._untimed())

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> NetworkStream:
        from ._sync_tls import SocketTransport, SyncTLSStream  # TLS users only

        # The TLS stream owns the socket from now on (non-blocking: see `_sync_tls`).
        self._timeout = _UNKNOWN_TIMEOUT
        try:
            transport = SocketTransport(self._sock, *self._untimed())
        except OSError as exc:
            self.close()
            raise ConnectError(exc) from exc
        return SyncTLSStream.handshake(transport, ssl_context, server_hostname, timeout)

    def _untimed(self) -> tuple[float | None, float | None]:
        """The read and write timeouts of calls without their own: the caller's SO_RCVTIMEO
        and SO_SNDTIMEO, where this stream knows them (see `_KernelTimeoutStream`)."""
        return None, None

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            if self._tcp_state_check:
                return tcp_readable(self._sock)
            return is_socket_readable(self._sock)
        return _socket_info(self._sock, info)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} fd={self._sock.fileno()}>"


class SyncBackend(NetworkBackend):
    """The default backend of the synchronous classes: blocking sockets and `ssl`."""

    __slots__ = ()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> NetworkStream:
        options = () if socket_options is None else tuple(socket_options)
        try:
            sock = _open_tcp(host, port, timeout, local_address, options)
        except socket.timeout as exc:
            raise ConnectTimeout(exc) from exc
        except OSError as exc:
            raise ConnectError(exc) from exc
        # What the connect left on the socket (the time remaining, or non-blocking after a
        # race): the stream sets the caller's timeout on its first read or write.
        return _stream(sock, sock.gettimeout(), options)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> NetworkStream:
        if sys.platform == "win32":
            raise RuntimeError("Attempted to connect to a UNIX socket on a Windows system.")
        options = () if socket_options is None else tuple(socket_options)
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                for option in options:
                    sock.setsockopt(*option)
                sock.settimeout(timeout)
                sock.connect(path)
            except BaseException:
                sock.close()
                raise
        except socket.timeout as exc:
            raise ConnectTimeout(exc) from exc
        except OSError as exc:
            raise ConnectError(exc) from exc
        return _stream(sock, timeout, options)

    def connect_udp(
        self,
        host: str,
        port: int,
        local_address: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        from ._udp import connect_udp_sync  # only HTTP/3 needs it

        return connect_udp_sync(host, port, local_address, timeout)


def _timeval(timeout: float | None) -> bytes:
    """`timeout` (seconds, positive, or `None` for none) as the kernel's `struct timeval`."""
    if timeout is None:
        return _NO_TIMEOUT
    if timeout >= _MAX_SECONDS:
        return _TIMEVAL.pack(_MAX_SECONDS, 0)
    seconds = int(timeout)
    # At least 1 µs: a positive timeout must not become zero, the kernel's "for ever".
    return _TIMEVAL.pack(seconds, max(int((timeout - seconds) * 1_000_000), 0 if seconds else 1))


def _seconds(timeval: bytes) -> float | None:
    """A `struct timeval` as seconds; zero, the kernel's "no timeout", as None."""
    seconds, microseconds = _TIMEVAL.unpack(timeval)
    return seconds + microseconds / 1_000_000 if seconds or microseconds else None


def _timed_out() -> socket.timeout:
    """The exception a timed-out socket call raises, as the cause of our `*Timeout`."""
    return socket.timeout("timed out")


class _KernelTimeoutStream(SyncStream):
    """A `SyncStream` whose socket stays blocking, with the kernel's per-direction timeouts
    (Linux). A blocking `send` returns early only when its timeout ends (or a signal
    interrupts it), so a write keeps one deadline however much of it had to wait."""

    __slots__ = ("_read_timeout", "_read_untimed", "_write_timeout", "_write_untimed")

    def __init__(self, sock: socket.socket, options: tuple[SOCKET_OPTION, ...] = ()) -> None:
        sock.settimeout(None)
        super().__init__(sock, None)
        # Unknown until set: a socket option of the caller's may have set either.
        self._read_timeout: float | None = _UNKNOWN_TIMEOUT
        self._write_timeout: float | None = _UNKNOWN_TIMEOUT
        # What a call without a timeout sets: none, or the `SO_RCVTIMEO`/`SO_SNDTIMEO` the
        # caller gave in `socket_options`, which stays in force where the pool sets no
        # timeout (as it does on a blocking socket without this stream).
        self._read_untimed = self._write_untimed = _NO_TIMEOUT
        for option in options:
            if option[0] == socket.SOL_SOCKET and option[1] == socket.SO_RCVTIMEO:
                self._read_untimed = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16)
            elif option[0] == socket.SOL_SOCKET and option[1] == socket.SO_SNDTIMEO:
                self._write_untimed = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, 16)

    def _untimed(self) -> tuple[float | None, float | None]:
        return _seconds(self._read_untimed), _seconds(self._write_untimed)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        started = time.monotonic()
        try:
            if timeout != self._read_timeout:
                if timeout is not None and timeout <= 0:
                    return self._sock.recv(max_bytes, socket.MSG_DONTWAIT)
                self._sock.setsockopt(
                    socket.SOL_SOCKET,
                    socket.SO_RCVTIMEO,
                    self._read_untimed if timeout is None else _timeval(timeout),
                )
                self._read_timeout = timeout
            try:
                return self._sock.recv(max_bytes)
            except BlockingIOError:
                if timeout is None:
                    raise
                return self._read_rest(max_bytes, timeout, started)
        except BlockingIOError:
            timed_out = _timed_out()
            raise ReadTimeout(timed_out) from timed_out
        except OSError as exc:
            raise ReadError(exc) from exc

    def _read_rest(self, max_bytes: int, timeout: float, started: float) -> bytes:
        # The kernel's timer counts in jiffies, which can lag the clock (on a VM, say): it may
        # end a wait before `timeout` has passed. Wait for what is left.
        while True:
            self._arm_for_rest(socket.SO_RCVTIMEO, timeout, started)
            self._read_timeout = _UNKNOWN_TIMEOUT  # set for this read only
            try:
                return self._sock.recv(max_bytes)
            except BlockingIOError:
                pass

    def _arm_for_rest(self, option: int, timeout: float, started: float) -> None:
        """Set `option` to what is left of `timeout`; BlockingIOError if nothing is."""
        left = started + timeout - time.monotonic()
        if left <= 0:
            raise BlockingIOError
        self._sock.setsockopt(socket.SOL_SOCKET, option, _timeval(left))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        started = time.monotonic()
        try:
            if timeout != self._write_timeout:
                if timeout is not None and timeout <= 0:
                    sent = self._sock.send(buffer, socket.MSG_DONTWAIT)
                    if sent < len(buffer):
                        raise BlockingIOError
                    return
                self._sock.setsockopt(
                    socket.SOL_SOCKET,
                    socket.SO_SNDTIMEO,
                    self._write_untimed if timeout is None else _timeval(timeout),
                )
                self._write_timeout = timeout
            try:
                sent = self._sock.send(buffer)
            except BlockingIOError:
                if timeout is None:
                    raise
                sent = 0  # nothing went before the kernel's timer ended: early, perhaps
            if sent < len(buffer):
                self._write_rest(memoryview(buffer)[sent:], timeout, started)
        except BlockingIOError:
            timed_out = _timed_out()
            raise WriteTimeout(timed_out) from timed_out
        except OSError as exc:
            raise WriteError(exc) from exc

    def _write_rest(self, view: memoryview, timeout: float | None, started: float) -> None:
        # A short send: the timeout ran out (or the kernel's timer ended early: see
        # `_read_rest`), or a signal came while waiting for room.
        while view:
            if timeout is not None:
                self._arm_for_rest(socket.SO_SNDTIMEO, timeout, started)
                self._write_timeout = _UNKNOWN_TIMEOUT  # set for this write only
            try:
                view = view[self._sock.send(view) :]
            except BlockingIOError:
                if timeout is None:
                    raise


def _stream(
    sock: socket.socket, timeout: float | None, options: tuple[SOCKET_OPTION, ...]
) -> SyncStream:
    """The stream over a socket just connected (`timeout`: the one it was left with;
    `options`: the caller's socket options, applied)."""
    if _KERNEL_TIMEOUTS:
        return _KernelTimeoutStream(sock, options)
    return SyncStream(sock, timeout)


def _open_tcp(
    host: str,
    port: int,
    timeout: float | None,
    local_address: str | None,
    options: tuple[SOCKET_OPTION, ...],
) -> socket.socket:
    """Connect to `host`, racing its addresses as RFC 8305 says when it has several.

    The socket options are applied before connecting (so that buffer sizes, keep-alive and the
    like are in force from the SYN on), and `TCP_NODELAY` is always set. The name lookup
    blocks (it cannot be interrupted) but its time counts against `timeout`.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    infos = candidates(socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM), local_address)
    if not infos:
        raise OSError(f"no address of {host!r} matches the local address {local_address!r}")
    if deadline is not None:
        timeout = deadline - time.monotonic()
        if timeout <= 0:
            raise socket.timeout("timed out")
    if len(infos) == 1:
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            _prepare(sock, local_address, options)
            sock.settimeout(timeout)
            sock.connect(address)
        except BaseException:
            sock.close()
            raise
        return sock
    return _race(infos, deadline, local_address, options)


def _prepare(
    sock: socket.socket, local_address: str | None, options: tuple[SOCKET_OPTION, ...]
) -> None:
    for option in options:
        sock.setsockopt(*option)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if local_address is not None:
        sock.bind((local_address, 0))


_IN_PROGRESS = {errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN}


def _race(
    infos: list[AddrInfo],
    deadline: float | None,
    local_address: str | None,
    options: tuple[SOCKET_OPTION, ...],
) -> socket.socket:
    """Staggered non-blocking connects to `infos`; the first to connect is returned, every
    other socket is closed before this returns."""
    schedule = Schedule(infos)
    selector = selectors.DefaultSelector()
    attempts: set[socket.socket] = set()
    last_error: OSError | None = None
    try:
        while True:
            now = time.monotonic()
            info = schedule.start(now)
            if info is not None:
                family, kind, proto, _, address = info
                sock = socket.socket(family, kind, proto)
                try:
                    _prepare(sock, local_address, options)
                    sock.setblocking(False)
                    error = sock.connect_ex(address)
                except BaseException as exc:
                    sock.close()
                    if not isinstance(exc, OSError):
                        raise
                    last_error = exc
                    schedule.failed()
                    continue
                if error == 0:
                    return sock
                if error not in _IN_PROGRESS:
                    sock.close()
                    last_error = OSError(error, os.strerror(error))
                    schedule.failed()
                    continue
                attempts.add(sock)
                selector.register(sock, selectors.EVENT_WRITE)
                continue
            if schedule.exhausted:
                assert last_error is not None
                raise last_error
            if deadline is not None and now >= deadline:
                raise socket.timeout("timed out")
            for key, _ in selector.select(schedule.wait(now, deadline)):
                sock = key.fileobj  # type: ignore[assignment]
                selector.unregister(sock)
                attempts.discard(sock)
                error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if error == 0:
                    return sock
                sock.close()
                last_error = OSError(error, os.strerror(error))
                schedule.failed()
    finally:
        for sock in attempts:
            sock.close()
        selector.close()
