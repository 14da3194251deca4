"""`SyncBackend` against real sockets on 127.0.0.1: TCP and Unix socket connects, reads, writes
and their timeouts, socket options and extra info, TLS and TLS inside TLS."""

from __future__ import annotations

import os
import select
import socket
import ssl
import struct
import sys
import threading
import time
from typing import Any

import backend_helpers
import pytest
from backend_helpers import BIG, HAS_UNIX, Server, _hard_shutdown

import httpcore.base._exceptions as exc_mod
import httpcore.base._sync_backend as sync_backend
from httpcore.base._sync_backend import SyncBackend

ca, client_context, echo_server, hangup_server, refusing_port, server_context, stall_server = (
    backend_helpers.ca,
    backend_helpers.client_context,
    backend_helpers.echo_server,
    backend_helpers.hangup_server,
    backend_helpers.refusing_port,
    backend_helpers.server_context,
    backend_helpers.stall_server,
)
tls_echo_server, tls_proxy_server, unix_echo_server, unresponsive_port, untrusting_context = (
    backend_helpers.tls_echo_server,
    backend_helpers.tls_proxy_server,
    backend_helpers.unix_echo_server,
    backend_helpers.unresponsive_port,
    backend_helpers.untrusting_context,
)


# --------------------------------------------------------------------------------------------
# SyncBackend


@pytest.fixture(
    autouse=True,
    params=["kernel-timeouts", "settimeout"] if sync_backend._KERNEL_TIMEOUTS else ["settimeout"],
)
def plain_stream_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test over both plain streams: Linux's (blocking, with the kernel's timeouts) and
    the one of other systems (`settimeout()`), which Linux would otherwise never run."""
    if request.param == "settimeout":
        monkeypatch.setattr(sync_backend, "_KERNEL_TIMEOUTS", False)
    return str(request.param)


def wait_readable(sock: Any, timeout: float = 5.0) -> None:
    """Block until `sock` is readable (a synchronisation point, not a guess)."""
    readable, _, _ = select.select([sock], [], [], timeout)
    assert readable, "timed out waiting for the socket to become readable"


def test_sync_connect_read_write_close(echo_server: Server) -> None:
    stream = SyncBackend().connect_tcp("127.0.0.1", echo_server.port, timeout=5)
    stream.write(b"")  # no-op
    stream.write(b"hello")
    assert stream.read(5, timeout=5) == b"hello"
    stream.write(b"world", timeout=None)
    assert stream.read(5) == b"world"
    stream.close()
    stream.close()  # idempotent
    with pytest.raises(exc_mod.ReadError):
        stream.read(1)
    with pytest.raises(exc_mod.WriteError):
        stream.write(b"x")


def test_sync_read_returns_empty_bytes_at_eof(hangup_server: Server) -> None:
    stream = SyncBackend().connect_tcp("127.0.0.1", hangup_server.port)
    stream.write(b"x")
    assert stream.read(10, timeout=5) == b""
    stream.close()


def test_sync_large_round_trip(echo_server: Server) -> None:
    payload = os.urandom(1024 * 1024)
    stream = SyncBackend().connect_tcp("localhost", echo_server.port)
    received = bytearray()

    def reader() -> None:
        while len(received) < len(payload):
            received.extend(stream.read(65536, timeout=10))

    thread = threading.Thread(target=reader)
    thread.start()
    stream.write(payload, timeout=10)
    thread.join(10)
    assert bytes(received) == payload
    stream.close()


def test_sync_read_timeout_then_read(echo_server: Server) -> None:
    stream = SyncBackend().connect_tcp("127.0.0.1", echo_server.port)
    with pytest.raises(exc_mod.ReadTimeout) as info:
        stream.read(10, timeout=0.05)
    assert isinstance(info.value.__cause__, socket.timeout)
    assert str(info.value) == str(info.value.__cause__)
    # The timeout is changed again for the next call.
    stream.write(b"abc")
    assert stream.read(10, timeout=5) == b"abc"
    stream.write(b"def")
    assert stream.read(10) == b"def"
    stream.close()


def test_sync_write_timeout(stall_server: Server) -> None:
    stream = SyncBackend().connect_tcp("127.0.0.1", stall_server.port)
    with pytest.raises(exc_mod.WriteTimeout):
        stream.write(BIG, timeout=0.2)
    stream.close()


def test_sync_zero_timeout_is_a_timeout(echo_server: Server, stall_server: Server) -> None:
    stream = SyncBackend().connect_tcp("127.0.0.1", echo_server.port)
    try:
        with pytest.raises(exc_mod.ReadTimeout) as info:
            stream.read(10, timeout=0)
        assert isinstance(info.value.__cause__, socket.timeout)
    finally:
        stream.close()
    stream = SyncBackend().connect_tcp("127.0.0.1", stall_server.port)
    try:
        with pytest.raises(exc_mod.WriteTimeout) as write_info:
            stream.write(BIG, timeout=0)
        assert isinstance(write_info.value.__cause__, socket.timeout)
    finally:
        stream.close()


def _timeval(seconds: float) -> bytes:
    return struct.pack("@ll", int(seconds), int(seconds % 1 * 1_000_000))


def test_the_caller_s_socket_timeouts_hold_where_no_timeout_is_set(
    echo_server: Server, stall_server: Server
) -> None:
    # SO_RCVTIMEO / SO_SNDTIMEO in socket_options: a call without a timeout of its own ends
    # when the kernel's runs out, before and after calls with their own timeout.
    options = [
        (socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(0.2)),
        (socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(0.2)),
    ]
    stream = SyncBackend().connect_tcp("127.0.0.1", echo_server.port, socket_options=options)
    try:
        with pytest.raises(exc_mod.ReadTimeout) as info:
            stream.read(10)
        assert isinstance(info.value.__cause__, socket.timeout)
        with pytest.raises(exc_mod.ReadTimeout):
            stream.read(10, timeout=0.05)
        stream.write(b"abc")
        assert stream.read(10) == b"abc"
        with pytest.raises(exc_mod.ReadTimeout):
            stream.read(10, timeout=None)
    finally:
        stream.close()
    stream = SyncBackend().connect_tcp("127.0.0.1", stall_server.port, socket_options=options)
    try:
        with pytest.raises(exc_mod.WriteTimeout):
            stream.write(BIG)
    finally:
        stream.close()


def test_sync_connect_refused(refusing_port: int) -> None:
    with pytest.raises(exc_mod.ConnectError) as info:
        SyncBackend().connect_tcp("127.0.0.1", refusing_port)
    assert isinstance(info.value.__cause__, ConnectionRefusedError)


def test_sync_connect_unknown_host() -> None:
    with pytest.raises(exc_mod.ConnectError):
        SyncBackend().connect_tcp("nonexistent.invalid", 80, timeout=5)


def test_sync_connect_timeout(unresponsive_port: int) -> None:
    with pytest.raises(exc_mod.ConnectTimeout):
        SyncBackend().connect_tcp("127.0.0.1", unresponsive_port, timeout=0.1)


def test_sync_extra_info(echo_server: Server) -> None:
    stream = SyncBackend().connect_tcp("127.0.0.1", echo_server.port, local_address="127.0.0.1")
    sock = stream.get_extra_info("socket")
    assert isinstance(sock, socket.socket)
    assert stream.get_extra_info("client_addr") == sock.getsockname()
    assert stream.get_extra_info("client_addr")[0] == "127.0.0.1"
    assert stream.get_extra_info("server_addr") == ("127.0.0.1", echo_server.port)
    assert stream.get_extra_info("ssl_object") is None
    assert stream.get_extra_info("is_readable") is False
    assert stream.get_extra_info("nonsense") is None
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    stream.close()
    assert stream.get_extra_info("is_readable") is True
    assert stream.get_extra_info("client_addr") is None


def test_sync_is_readable_after_peer_close(hangup_server: Server) -> None:
    stream = SyncBackend().connect_tcp("127.0.0.1", hangup_server.port)
    assert stream.get_extra_info("is_readable") is False
    stream.write(b"x")  # the server hangs up on receiving it
    wait_readable(stream.get_extra_info("socket"))
    assert stream.get_extra_info("is_readable") is True
    assert stream.read(1) == b""
    assert stream.get_extra_info("is_readable") is True
    stream.close()


def test_sync_is_readable_with_data(echo_server: Server) -> None:
    stream = SyncBackend().connect_tcp("127.0.0.1", echo_server.port)
    stream.write(b"x")
    wait_readable(stream.get_extra_info("socket"))
    assert stream.get_extra_info("is_readable") is True
    assert stream.read(1) == b"x"
    assert stream.get_extra_info("is_readable") is False
    stream.close()


def test_sync_socket_options(echo_server: Server) -> None:
    options = [
        (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
        (socket.SOL_SOCKET, socket.SO_RCVBUF, 32768),
    ]
    stream = SyncBackend().connect_tcp("127.0.0.1", echo_server.port, socket_options=options)
    sock = stream.get_extra_info("socket")
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    stream.close()


def test_sync_bad_socket_option(echo_server: Server) -> None:
    with pytest.raises(exc_mod.ConnectError):
        SyncBackend().connect_tcp(
            "127.0.0.1", echo_server.port, socket_options=[(socket.SOL_SOCKET, 987654, 1)]
        )


@pytest.mark.skipif(not HAS_UNIX, reason="no AF_UNIX")
def test_sync_connect_unix_socket(unix_echo_server: Server) -> None:
    options = [(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)]
    stream = SyncBackend().connect_unix_socket(
        unix_echo_server.address, timeout=5, socket_options=options
    )
    stream.write(b"over unix")
    assert stream.read(100, timeout=5) == b"over unix"
    assert stream.get_extra_info("socket").family == socket.AF_UNIX
    stream.close()


@pytest.mark.skipif(not HAS_UNIX, reason="no AF_UNIX")
def test_sync_connect_unix_socket_missing() -> None:
    with pytest.raises(exc_mod.ConnectError):
        SyncBackend().connect_unix_socket("/nonexistent/socket/path")


def test_sync_connect_unix_socket_on_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "win32")
    with pytest.raises(RuntimeError) as info:
        SyncBackend().connect_unix_socket("/tmp/whatever")
    assert str(info.value) == "Attempted to connect to a UNIX socket on a Windows system."


def test_sync_start_tls(tls_echo_server: Server, client_context: ssl.SSLContext) -> None:
    stream = SyncBackend().connect_tcp("127.0.0.1", tls_echo_server.port)
    tls = stream.start_tls(client_context, server_hostname="localhost", timeout=5)
    ssl_object = tls.get_extra_info("ssl_object")
    assert ssl_object.selected_alpn_protocol() == "http/1.1"
    assert ssl_object.version().startswith("TLS")
    assert tls.get_extra_info("server_addr") == ("127.0.0.1", tls_echo_server.port)
    tls.write(b"secret")
    assert tls.read(100, timeout=5) == b"secret"
    # (Only now: TLS 1.3 session tickets can arrive unread right after the handshake.)
    assert tls.get_extra_info("is_readable") is False
    tls.close()
    with pytest.raises(exc_mod.ReadError):
        tls.read(1)
    assert tls.get_extra_info("is_readable") is True


def test_sync_start_tls_bad_certificate(
    tls_echo_server: Server, untrusting_context: ssl.SSLContext
) -> None:
    stream = SyncBackend().connect_tcp("127.0.0.1", tls_echo_server.port)
    with pytest.raises(exc_mod.ConnectError) as info:
        stream.start_tls(untrusting_context, server_hostname="localhost", timeout=5)
    assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)
    with pytest.raises(exc_mod.ReadError):  # the stream was closed
        stream.read(1)


def test_sync_start_tls_wrong_hostname(
    tls_echo_server: Server, client_context: ssl.SSLContext
) -> None:
    stream = SyncBackend().connect_tcp("127.0.0.1", tls_echo_server.port)
    with pytest.raises(exc_mod.ConnectError):
        stream.start_tls(client_context, server_hostname="example.org", timeout=5)


def test_sync_start_tls_timeout(stall_server: Server, client_context: ssl.SSLContext) -> None:
    stream = SyncBackend().connect_tcp("127.0.0.1", stall_server.port)
    with pytest.raises(exc_mod.ConnectTimeout):
        stream.start_tls(client_context, server_hostname="localhost", timeout=0.1)


def test_sync_start_tls_not_tls(echo_server: Server, client_context: ssl.SSLContext) -> None:
    # The echo server bounces the ClientHello back: not a valid ServerHello.
    stream = SyncBackend().connect_tcp("127.0.0.1", echo_server.port)
    with pytest.raises(exc_mod.ConnectError):
        stream.start_tls(client_context, server_hostname="localhost", timeout=5)


def test_sync_tls_in_tls(tls_proxy_server: Server, client_context: ssl.SSLContext) -> None:
    stream = SyncBackend().connect_tcp("127.0.0.1", tls_proxy_server.port)
    outer = stream.start_tls(client_context, server_hostname="localhost", timeout=5)
    inner = outer.start_tls(client_context, server_hostname="localhost", timeout=5)
    assert type(inner).__name__ == "TLSinTLSStream"
    outer_ssl = outer.get_extra_info("ssl_object")
    inner_ssl = inner.get_extra_info("ssl_object")
    assert isinstance(inner_ssl, ssl.SSLObject)
    assert inner_ssl is not outer_ssl
    assert inner_ssl.selected_alpn_protocol() == "http/1.1"
    assert inner.get_extra_info("socket") is outer.get_extra_info("socket")
    assert inner.get_extra_info("server_addr") == ("127.0.0.1", tls_proxy_server.port)
    inner.write(b"")
    inner.write(b"tunnelled")
    assert inner.read(100, timeout=5) == b"tunnelled"
    assert inner.get_extra_info("is_readable") is False
    payload = os.urandom(300_000)  # several TLS records
    inner.write(payload, timeout=5)
    received = b""
    while len(received) < len(payload):
        received += inner.read(65536, timeout=5)
    assert received == payload

    with pytest.raises(exc_mod.ReadTimeout):
        inner.read(100, timeout=0.05)
    inner.write(b"again")
    wait_readable(inner.get_extra_info("socket"))
    assert inner.get_extra_info("is_readable") is True
    assert inner.read(100, timeout=5) == b"again"

    inner.close()
    assert inner.get_extra_info("is_readable") is True
    with pytest.raises(exc_mod.ReadError):
        inner.read(1)
    with pytest.raises(exc_mod.WriteError):
        inner.write(b"x")


def test_sync_tls_in_tls_bad_certificate(
    tls_proxy_server: Server,
    client_context: ssl.SSLContext,
    untrusting_context: ssl.SSLContext,
) -> None:
    stream = SyncBackend().connect_tcp("127.0.0.1", tls_proxy_server.port)
    outer = stream.start_tls(client_context, server_hostname="localhost", timeout=5)
    with pytest.raises(exc_mod.ConnectError):
        outer.start_tls(untrusting_context, server_hostname="localhost", timeout=5)
    with pytest.raises(exc_mod.ReadError):  # the outer stream was closed too
        outer.read(1)


def test_sync_tls_in_tls_peer_close(
    tls_proxy_server: Server, tls_echo_server: Server, client_context: ssl.SSLContext
) -> None:
    stream = SyncBackend().connect_tcp("127.0.0.1", tls_proxy_server.port)
    outer = stream.start_tls(client_context, server_hostname="localhost", timeout=5)
    inner = outer.start_tls(client_context, server_hostname="localhost", timeout=5)
    # Closing the origin server's side of the tunnel ends the tunnel (no close_notify).
    tls_echo_server.stopped.set()
    for sock in list(tls_echo_server.connections):
        _hard_shutdown(sock)
    assert inner.read(100, timeout=5) == b""
    inner.close()


def test_sync_sleep() -> None:
    start = time.monotonic()
    SyncBackend().sleep(0.01)
    assert time.monotonic() - start >= 0.009


class _BadFileno:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def fileno(self) -> int:
        raise self.error


def test_is_socket_readable(
    echo_server: Server, tls_echo_server: Server, client_context: ssl.SSLContext
) -> None:
    # What cannot be asked counts as readable: such a connection must not be reused.
    assert sync_backend.is_socket_readable(None) is True
    assert sync_backend.is_socket_readable(_BadFileno(OSError("gone"))) is True
    assert sync_backend.is_socket_readable(_BadFileno(ValueError("closed file"))) is True
    sock = socket.create_connection(("127.0.0.1", echo_server.port), timeout=5)
    try:
        assert sync_backend.is_socket_readable(sock) is False
        sock.sendall(b"ping")
        wait_readable(sock)
        assert sync_backend.is_socket_readable(sock) is True
    finally:
        sock.close()
    assert sync_backend.is_socket_readable(sock) is True  # closed: fileno() is -1
    # Bytes decrypted and buffered inside an SSLSocket count, though its descriptor has none.
    raw = socket.create_connection(("127.0.0.1", tls_echo_server.port), timeout=5)
    tls = client_context.wrap_socket(raw, server_hostname="localhost")
    try:
        tls.sendall(b"0123456789")
        assert tls.recv(1) == b"0"  # the echo is one record: nine bytes of it stay inside
        assert tls.pending() == 9
        assert not select.select([tls.fileno()], [], [], 0)[0]
        assert sync_backend.is_socket_readable(tls) is True
    finally:
        tls.close()


def test_start_tls_on_a_closed_stream_is_a_connect_error(
    echo_server: Server, client_context: ssl.SSLContext
) -> None:
    stream = SyncBackend().connect_tcp("127.0.0.1", echo_server.port)
    stream.close()
    with pytest.raises(exc_mod.ConnectError):
        stream.start_tls(client_context, server_hostname="localhost", timeout=5)


def test_a_connect_timeout_under_a_second_is_time_enough(echo_server: Server) -> None:
    stream = SyncBackend().connect_tcp("127.0.0.1", echo_server.port, timeout=0.5)
    try:
        stream.write(b"ok", timeout=0.5)
        assert stream.read(10, timeout=0.5) == b"ok"
    finally:
        stream.close()


@pytest.mark.skipif(not HAS_UNIX, reason="needs UNIX sockets")
def test_unix_socket_options_are_applied(unix_echo_server: Server) -> None:
    options = [(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(0.2))]
    stream = SyncBackend().connect_unix_socket(unix_echo_server.address, socket_options=options)
    try:
        with pytest.raises(exc_mod.ReadTimeout):
            stream.read(10)  # the option's timeout: the call has none of its own
    finally:
        stream.close()
