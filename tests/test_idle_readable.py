"""The check the pool makes on an idle sync connection before it hands it out
(`get_extra_info("is_readable")`, API.md §3.7), on real sockets on 127.0.0.1.

On Linux a TCP stream answers from the socket's state and receive queue (`getsockopt`), which
CPython asks without releasing the GIL; elsewhere, and for other sockets, with `poll()`."""

from __future__ import annotations

import os
import select
import socket
import ssl
import struct
import sys
from typing import Any, Iterator, Tuple

import backend_helpers
import pytest
from backend_helpers import HAS_UNIX, Server

import httpcore.base._sync_backend as sync_backend
from httpcore.base._sync_backend import SyncBackend, SyncStream
from httpcore.base._sync_tls import SocketTransport

unix_echo_server, client_context, ca = (
    backend_helpers.unix_echo_server,
    backend_helpers.client_context,
    backend_helpers.ca,
)

LINUX = sys.platform == "linux"


def _stream_of(kind: str, sock: socket.socket) -> Any:
    if kind == "kernel-timeouts":
        return sync_backend._stream(sock, None, ())
    if kind == "settimeout":
        return SyncStream(sock)
    return SocketTransport(sock)


@pytest.fixture(params=["kernel-timeouts", "settimeout", "socket-transport"])
def connected(
    request: pytest.FixtureRequest,
) -> Iterator[Tuple[Any, socket.socket, socket.socket]]:
    """(our stream, its socket, the server's end of the connection)."""
    listener = socket.create_server(("127.0.0.1", 0))
    sock = socket.create_connection(listener.getsockname(), timeout=5)
    peer, _ = listener.accept()
    listener.close()
    stream = _stream_of(str(request.param), sock)
    try:
        yield stream, sock, peer
    finally:
        stream.close()
        peer.close()


def _wait_readable(sock: socket.socket) -> None:
    """Block until `sock` is readable (a synchronisation point, not a guess)."""
    assert select.select([sock], [], [], 5)[0], "timed out waiting for the socket"


def _drain(sock: socket.socket) -> bytes:
    data = b""
    while select.select([sock], [], [], 0)[0]:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_the_stream_on_linux_asks_the_kernel_not_poll(
    connected: Tuple[Any, socket.socket, socket.socket],
) -> None:
    stream, sock, _ = connected
    assert stream._tcp_state_check is LINUX
    assert sync_backend.tcp_state_check(sock) is LINUX


def test_idle_then_data_then_drained(connected: Tuple[Any, socket.socket, socket.socket]) -> None:
    stream, sock, peer = connected
    assert stream.get_extra_info("is_readable") is False
    peer.sendall(b"HTTP/1.1 408 Request Timeout\r\n\r\n")  # unsolicited, without a FIN
    _wait_readable(sock)
    assert stream.get_extra_info("is_readable") is True
    assert _drain(sock).startswith(b"HTTP/1.1 408")
    assert stream.get_extra_info("is_readable") is False


def test_a_fin_alone(connected: Tuple[Any, socket.socket, socket.socket]) -> None:
    stream, sock, peer = connected
    peer.shutdown(socket.SHUT_WR)
    _wait_readable(sock)
    assert stream.get_extra_info("is_readable") is True


def test_a_fin_behind_data_already_read(
    connected: Tuple[Any, socket.socket, socket.socket],
) -> None:
    """Data and FIN often arrive in one segment: once the data is read nothing is queued, yet
    the next read returns b"" at once."""
    stream, sock, peer = connected
    peer.sendall(b"last words")
    peer.shutdown(socket.SHUT_WR)
    received = b""
    while len(received) < len(b"last words"):
        _wait_readable(sock)
        received += sock.recv(100)
    _wait_readable(sock)  # the FIN
    assert stream.get_extra_info("is_readable") is True
    assert sock.recv(100) == b""
    assert stream.get_extra_info("is_readable") is True


def test_a_reset(connected: Tuple[Any, socket.socket, socket.socket]) -> None:
    stream, sock, peer = connected
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.close()
    _wait_readable(sock)
    assert stream.get_extra_info("is_readable") is True


def test_closed_by_us(connected: Tuple[Any, socket.socket, socket.socket]) -> None:
    stream, _, _ = connected
    stream.close()
    assert stream.get_extra_info("is_readable") is True


def test_over_ipv6() -> None:
    listener = socket.create_server(("::1", 0), family=socket.AF_INET6)
    sock = socket.create_connection(listener.getsockname()[:2], timeout=5)
    peer, _ = listener.accept()
    listener.close()
    stream = sync_backend._stream(sock, None, ())
    try:
        assert stream._tcp_state_check is LINUX
        assert stream.get_extra_info("is_readable") is False
        peer.shutdown(socket.SHUT_WR)
        _wait_readable(sock)
        assert stream.get_extra_info("is_readable") is True
    finally:
        stream.close()
        peer.close()


def test_a_socket_made_without_a_protocol_number_is_tcp_too() -> None:
    """`socket.socket()` leaves `proto` 0 where `create_connection` has 6 (IPPROTO_TCP)."""
    listener = socket.create_server(("127.0.0.1", 0))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.connect(listener.getsockname())
        assert sock.proto == 0
        assert sync_backend.tcp_state_check(sock) is LINUX
    finally:
        sock.close()
        listener.close()


def test_a_closed_tcp_socket_counts_as_readable() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.close()
    assert sync_backend.tcp_readable(sock) is True


class _NoPoll:
    def poll(self, timeout: Any = None) -> Any:
        raise AssertionError("poll() releases the GIL")


@pytest.mark.skipif(not LINUX, reason="Linux only: elsewhere the check is poll()")
def test_on_linux_the_check_makes_no_poll(
    connected: Tuple[Any, socket.socket, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pool asks under its lock, and `poll()` releases the GIL: with threads waiting for
    the GIL, that lets them run into the pool's lock and queue on it. `getsockopt` keeps it."""
    stream, sock, peer = connected

    def no_poll(fd: int) -> bool:
        raise AssertionError("poll() releases the GIL")

    monkeypatch.setattr(sync_backend, "_fd_readable", no_poll)
    if isinstance(stream, SocketTransport):
        stream._readable = _NoPoll()  # type: ignore[assignment]
    assert stream.get_extra_info("is_readable") is False
    peer.sendall(b"x")
    _wait_readable(sock)
    assert stream.get_extra_info("is_readable") is True


def test_sockets_the_kernel_check_does_not_serve(
    client_context: ssl.SSLContext, unix_echo_server: Server
) -> None:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    assert sync_backend.tcp_state_check(udp) is False
    udp.close()
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tls = client_context.wrap_socket(
        tcp, server_hostname="localhost", do_handshake_on_connect=False
    )
    assert sync_backend.tcp_state_check(tls) is False  # may hold decrypted bytes
    tls.close()
    if HAS_UNIX:
        stream = SyncBackend().connect_unix_socket(unix_echo_server.address, timeout=5)
        sock = stream.get_extra_info("socket")
        assert sync_backend.tcp_state_check(sock) is False
        assert stream.get_extra_info("is_readable") is False  # by poll()
        stream.write(b"x")
        _wait_readable(sock)
        assert stream.get_extra_info("is_readable") is True
        stream.close()


def test_the_platform_flag() -> None:
    machine = os.uname().machine if hasattr(os, "uname") else ""
    expected = LINUX and not machine.startswith(("parisc", "sparc"))
    assert sync_backend._TCP_STATE_CHECK is expected
