"""The network backends against real sockets on 127.0.0.1 (and the mock backends).

The servers are small threaded `socket`/`ssl` servers defined here; certificates come from
trustme. Sync tests use `SyncBackend`; async tests run `AnyIOBackend` and `AutoBackend` under
asyncio and trio, and `TrioBackend` under trio.
"""

from __future__ import annotations

import os
import select
import socket
import ssl
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from typing import Any, Callable, Iterator

import pytest
import trustme

import httpcore.base._exceptions as exc_mod
from httpcore.aio._anyio import AnyIOBackend
from httpcore.aio._auto import AutoBackend
from httpcore.aio._trio import TrioBackend
from httpcore.base._backends import (
    AsyncNetworkBackend,
    AsyncNetworkStream,
    NetworkBackend,
    NetworkStream,
)
from httpcore.base._mock import AsyncMockBackend, AsyncMockStream, MockBackend, MockStream
from httpcore.base._sync_backend import SyncBackend

HAS_UNIX = hasattr(socket, "AF_UNIX")
LINUX = sys.platform.startswith("linux")
BIG = b"x" * (64 * 1024 * 1024)  # more than any loopback socket buffers hold

# --------------------------------------------------------------------------------------------
# Servers


Handler = Callable[[socket.socket, "Server"], None]


def _hard_shutdown(sock: socket.socket) -> None:
    """Shut down the TCP connection under `sock` (bypassing `SSLSocket.shutdown`)."""
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


class Server:
    """A threaded stream server: one thread accepts, one thread per connection runs `handler`.

    The listening socket is bound and listening before the constructor returns, so clients can
    connect at once. `close()` wakes and joins every thread.
    """

    def __init__(
        self,
        handler: Handler,
        *,
        ssl_context: ssl.SSLContext | None = None,
        unix_path: str | None = None,
        target: Any = None,
    ) -> None:
        self.handler = handler
        self.ssl_context = ssl_context
        self.target = target
        self.stopped = threading.Event()
        self.connections: list[socket.socket] = []
        self.threads: list[threading.Thread] = []
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        if unix_path is not None:
            self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.listener.bind(unix_path)
        else:
            self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.address = self.listener.getsockname()
        self._accepter = threading.Thread(target=self._accept_loop, daemon=True)
        self._accepter.start()

    @property
    def port(self) -> int:
        port: int = self.address[1]
        return port

    def track(self, sock: socket.socket) -> None:
        with self._lock:
            self.connections.append(sock)
        if self.stopped.is_set():
            _hard_shutdown(sock)

    def _accept_loop(self) -> None:
        while True:
            conn, _ = self.listener.accept()
            if self.stopped.is_set():
                conn.close()
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            with self._lock:
                self.threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        self.track(conn)
        try:
            if self.ssl_context is not None:
                conn = self.ssl_context.wrap_socket(conn, server_side=True)
                self.track(conn)
            self.handler(conn, self)
        except OSError:
            pass  # clients that fail handshakes or hang up are part of the tests
        except BaseException as exc:  # pragma: no cover
            self.errors.append(exc)
        finally:
            conn.close()

    def close(self) -> None:
        self.stopped.set()
        family = self.listener.family
        with socket.socket(family, socket.SOCK_STREAM) as waker:
            waker.connect(self.address)
        self._accepter.join(5)
        self.listener.close()
        with self._lock:
            connections = list(self.connections)
            threads = list(self.threads)
        for sock in connections:
            _hard_shutdown(sock)
        for thread in threads:
            thread.join(5)
        assert not self.errors, self.errors


def echo(conn: socket.socket, server: Server) -> None:
    while True:
        data = conn.recv(65536)
        if not data:
            return
        conn.sendall(data)


def stall(conn: socket.socket, server: Server) -> None:
    """Accept, then neither read nor write until the server stops."""
    server.stopped.wait()


def hang_up_on_first_byte(conn: socket.socket, server: Server) -> None:
    conn.recv(1)


def relay(conn: socket.socket, server: Server) -> None:
    """Forward bytes both ways between `conn` and a new connection to `server.target`.

    With a TLS `conn` and a TLS server as target, this is an HTTPS proxy's CONNECT tunnel.
    """
    upstream = socket.create_connection(server.target)
    server.track(upstream)
    try:
        while True:
            pending = isinstance(conn, ssl.SSLSocket) and conn.pending()
            ready = [conn] if pending else select.select([conn, upstream], [], [])[0]
            for source in ready:
                data = source.recv(65536)
                if not data:
                    return
                (upstream if source is conn else conn).sendall(data)
    finally:
        upstream.close()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    context.set_alpn_protocols(["http/1.1"])
    return context


@pytest.fixture
def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    context.set_alpn_protocols(["http/1.1"])
    return context


@pytest.fixture
def untrusting_context() -> ssl.SSLContext:
    """A verifying context that does not know the test CA."""
    context = ssl.create_default_context()
    context.load_verify_locations(cadata=trustme.CA().cert_pem.bytes().decode("ascii"))
    return context


def _serve(handler: Handler, **kwargs: Any) -> Iterator[Server]:
    server = Server(handler, **kwargs)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def echo_server() -> Iterator[Server]:
    yield from _serve(echo)


@pytest.fixture
def tls_echo_server(server_context: ssl.SSLContext) -> Iterator[Server]:
    yield from _serve(echo, ssl_context=server_context)


@pytest.fixture
def tls_proxy_server(server_context: ssl.SSLContext, tls_echo_server: Server) -> Iterator[Server]:
    """A TLS server tunnelling to `tls_echo_server`: TLS inside TLS, like an HTTPS proxy."""
    yield from _serve(relay, ssl_context=server_context, target=tls_echo_server.address)


@pytest.fixture
def stall_server() -> Iterator[Server]:
    yield from _serve(stall)


@pytest.fixture
def hangup_server() -> Iterator[Server]:
    yield from _serve(hang_up_on_first_byte)


@pytest.fixture
def unix_echo_server() -> Iterator[Server]:
    if not HAS_UNIX:
        pytest.skip("no AF_UNIX")
    with tempfile.TemporaryDirectory() as directory:
        yield from _serve(echo, unix_path=os.path.join(directory, "echo.sock"))


@pytest.fixture
def refusing_port() -> Iterator[int]:
    """A port that is bound (so nothing else takes it) but not listening: connects are refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
def unresponsive_port() -> Iterator[int]:
    """A listening port whose accept queue is full: the kernel drops new SYNs, so connecting
    hangs until the client gives up."""
    if not LINUX:
        pytest.skip("relies on Linux dropping SYNs when the accept queue is full")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        address = listener.getsockname()
        fillers: list[socket.socket] = []
        try:
            for _ in range(64):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.settimeout(0.1)
                try:
                    sock.connect(address)
                except socket.timeout:
                    sock.close()
                    break
                fillers.append(sock)
            else:  # pragma: no cover
                pytest.skip("could not fill the accept queue")
            yield address[1]
        finally:
            for sock in fillers:
                sock.close()


def wait_readable(sock: Any, timeout: float = 5.0) -> None:
    """Block until `sock` is readable (a synchronisation point, not a guess)."""
    readable, _, _ = select.select([sock], [], [], timeout)
    assert readable, "timed out waiting for the socket to become readable"


# --------------------------------------------------------------------------------------------
# Interfaces


def test_interfaces_are_abstract() -> None:
    stream = NetworkStream()
    backend = NetworkBackend()
    with pytest.raises(NotImplementedError):
        stream.read(1)
    with pytest.raises(NotImplementedError):
        stream.write(b"x")
    with pytest.raises(NotImplementedError):
        stream.close()
    with pytest.raises(NotImplementedError):
        stream.start_tls(ssl.create_default_context())
    assert stream.get_extra_info("ssl_object") is None
    with pytest.raises(NotImplementedError):
        backend.connect_tcp("127.0.0.1", 1)
    with pytest.raises(NotImplementedError):
        backend.connect_unix_socket("/nonexistent")
    backend.sleep(0)


@pytest.mark.anyio
async def test_async_interfaces_are_abstract() -> None:
    stream = AsyncNetworkStream()
    backend = AsyncNetworkBackend()
    with pytest.raises(NotImplementedError):
        await stream.read(1)
    with pytest.raises(NotImplementedError):
        await stream.write(b"x")
    with pytest.raises(NotImplementedError):
        await stream.aclose()
    with pytest.raises(NotImplementedError):
        await stream.start_tls(ssl.create_default_context())
    assert stream.get_extra_info("ssl_object") is None
    with pytest.raises(NotImplementedError):
        await backend.connect_tcp("127.0.0.1", 1)
    with pytest.raises(NotImplementedError):
        await backend.connect_unix_socket("/nonexistent")
    with pytest.raises(NotImplementedError):
        await backend.sleep(0)


def test_socket_option_alias() -> None:
    from httpcore.base._backends import SOCKET_OPTION

    assert str(SOCKET_OPTION).startswith("typing.Union[")


# --------------------------------------------------------------------------------------------
# SyncBackend


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


# --------------------------------------------------------------------------------------------
# Async backends: AnyIOBackend and AutoBackend under asyncio and trio, TrioBackend under trio.


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


ASYNC_COMBINATIONS = [
    pytest.param("asyncio", "anyio", id="asyncio-AnyIOBackend"),
    pytest.param("asyncio", "auto", id="asyncio-AutoBackend"),
    pytest.param("trio", "anyio", id="trio-AnyIOBackend"),
    pytest.param("trio", "trio", id="trio-TrioBackend"),
    pytest.param("trio", "auto", id="trio-AutoBackend"),
]
each_async_backend = pytest.mark.parametrize(("anyio_backend", "backend_name"), ASYNC_COMBINATIONS)


def make_backend(name: str) -> AsyncNetworkBackend:
    if name == "anyio":
        return AnyIOBackend()
    if name == "trio":
        return TrioBackend()
    return AutoBackend()


def timeout_cause(anyio_backend: str, backend_name: str) -> type[BaseException]:
    if backend_name == "trio" or (backend_name == "auto" and anyio_backend == "trio"):
        import trio

        too_slow: type[BaseException] = trio.TooSlowError
        return too_slow
    return TimeoutError


@pytest.mark.anyio
@each_async_backend
async def test_async_connect_read_write_close(echo_server: Server, backend_name: str) -> None:
    stream = await make_backend(backend_name).connect_tcp("127.0.0.1", echo_server.port, timeout=5)
    await stream.write(b"")
    await stream.write(b"hello", timeout=5)
    assert await stream.read(5, timeout=5) == b"hello"
    await stream.write(b"world")
    assert await stream.read(5) == b"world"
    await stream.aclose()
    with pytest.raises(exc_mod.ReadError):
        await stream.read(1)
    with pytest.raises(exc_mod.WriteError):
        await stream.write(b"x")


@pytest.mark.anyio
@each_async_backend
async def test_async_auto_picks_native_stream(
    echo_server: Server, anyio_backend: str, backend_name: str
) -> None:
    stream = await make_backend(backend_name).connect_tcp("127.0.0.1", echo_server.port)
    expected = {"anyio": "AnyIOStream", "trio": "TrioStream"}.get(backend_name)
    if expected is None:
        # The automatic backend uses native asyncio transports under asyncio.
        expected = "TrioStream" if anyio_backend == "trio" else "AsyncIOStream"
    assert type(stream).__name__ == expected
    await stream.aclose()


@pytest.mark.anyio
@each_async_backend
async def test_async_eof_and_is_readable(hangup_server: Server, backend_name: str) -> None:
    stream = await make_backend(backend_name).connect_tcp("127.0.0.1", hangup_server.port)
    assert stream.get_extra_info("is_readable") is False
    await stream.write(b"x")  # the server hangs up on receiving it
    assert await stream.read(10, timeout=5) == b""
    assert stream.get_extra_info("is_readable") is True
    await stream.aclose()
    assert stream.get_extra_info("is_readable") is True


@pytest.mark.anyio
@each_async_backend
async def test_async_read_timeout(
    echo_server: Server, anyio_backend: str, backend_name: str
) -> None:
    stream = await make_backend(backend_name).connect_tcp("127.0.0.1", echo_server.port)
    with pytest.raises(exc_mod.ReadTimeout) as info:
        await stream.read(10, timeout=0.05)
    assert isinstance(info.value.__cause__, timeout_cause(anyio_backend, backend_name))
    await stream.write(b"still works")
    assert await stream.read(100, timeout=5) == b"still works"
    await stream.aclose()


@pytest.mark.anyio
@each_async_backend
async def test_async_write_timeout(stall_server: Server, backend_name: str) -> None:
    stream = await make_backend(backend_name).connect_tcp("127.0.0.1", stall_server.port)
    with pytest.raises(exc_mod.WriteTimeout):
        await stream.write(BIG, timeout=0.2)
    await stream.aclose()


@pytest.mark.anyio
@each_async_backend
async def test_async_connect_refused(refusing_port: int, backend_name: str) -> None:
    with pytest.raises(exc_mod.ConnectError) as info:
        await make_backend(backend_name).connect_tcp("127.0.0.1", refusing_port)
    assert isinstance(info.value.__cause__, OSError)
    if backend_name == "anyio":
        assert str(info.value) == "All connection attempts failed"


@pytest.mark.anyio
@each_async_backend
async def test_async_connect_timeout(unresponsive_port: int, backend_name: str) -> None:
    with pytest.raises(exc_mod.ConnectTimeout):
        await make_backend(backend_name).connect_tcp("127.0.0.1", unresponsive_port, timeout=0.1)


@pytest.mark.anyio
@each_async_backend
async def test_async_extra_info_and_socket_options(echo_server: Server, backend_name: str) -> None:
    options = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    stream = await make_backend(backend_name).connect_tcp(
        "127.0.0.1", echo_server.port, local_address="127.0.0.1", socket_options=options
    )
    sock = stream.get_extra_info("socket")
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    client_addr = stream.get_extra_info("client_addr")
    assert client_addr[0] == "127.0.0.1"
    assert client_addr == sock.getsockname()
    assert stream.get_extra_info("server_addr") == ("127.0.0.1", echo_server.port)
    assert stream.get_extra_info("ssl_object") is None
    assert stream.get_extra_info("is_readable") is False
    assert stream.get_extra_info("nonsense") is None
    await stream.aclose()


@pytest.mark.anyio
@each_async_backend
async def test_async_bad_socket_option(echo_server: Server, backend_name: str) -> None:
    with pytest.raises(exc_mod.ConnectError):
        await make_backend(backend_name).connect_tcp(
            "127.0.0.1", echo_server.port, socket_options=[(socket.SOL_SOCKET, 987654, 1)]
        )


@pytest.mark.anyio
@each_async_backend
@pytest.mark.skipif(not HAS_UNIX, reason="no AF_UNIX")
async def test_async_connect_unix_socket(unix_echo_server: Server, backend_name: str) -> None:
    backend = make_backend(backend_name)
    options = [(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)]
    stream = await backend.connect_unix_socket(
        unix_echo_server.address, timeout=5, socket_options=options
    )
    await stream.write(b"over unix")
    assert await stream.read(100, timeout=5) == b"over unix"
    await stream.aclose()
    with pytest.raises(exc_mod.ConnectError):
        await backend.connect_unix_socket("/nonexistent/socket/path", timeout=5)


@pytest.mark.anyio
@each_async_backend
async def test_async_start_tls(
    tls_echo_server: Server, client_context: ssl.SSLContext, backend_name: str
) -> None:
    stream = await make_backend(backend_name).connect_tcp("127.0.0.1", tls_echo_server.port)
    tls = await stream.start_tls(client_context, server_hostname="localhost", timeout=5)
    ssl_object = tls.get_extra_info("ssl_object")
    assert ssl_object.selected_alpn_protocol() == "http/1.1"
    assert ssl_object.version().startswith("TLS")
    assert tls.get_extra_info("server_addr") == ("127.0.0.1", tls_echo_server.port)
    assert tls.get_extra_info("socket") is not None
    await tls.write(b"secret")
    assert await tls.read(100, timeout=5) == b"secret"
    # (Only now: TLS 1.3 session tickets can arrive unread right after the handshake.)
    assert tls.get_extra_info("is_readable") is False
    await tls.aclose()
    with pytest.raises(exc_mod.ReadError):
        await tls.read(1)


@pytest.mark.anyio
@each_async_backend
async def test_async_start_tls_bad_certificate(
    tls_echo_server: Server, untrusting_context: ssl.SSLContext, backend_name: str
) -> None:
    stream = await make_backend(backend_name).connect_tcp("127.0.0.1", tls_echo_server.port)
    with pytest.raises(exc_mod.ConnectError):
        await stream.start_tls(untrusting_context, server_hostname="localhost", timeout=5)
    with pytest.raises(exc_mod.ReadError):  # the stream was closed
        await stream.read(1)


@pytest.mark.anyio
@each_async_backend
async def test_async_start_tls_timeout(
    stall_server: Server, client_context: ssl.SSLContext, backend_name: str
) -> None:
    stream = await make_backend(backend_name).connect_tcp("127.0.0.1", stall_server.port)
    with pytest.raises(exc_mod.ConnectTimeout):
        await stream.start_tls(client_context, server_hostname="localhost", timeout=0.1)


@pytest.mark.anyio
@each_async_backend
async def test_async_tls_in_tls(
    tls_proxy_server: Server, client_context: ssl.SSLContext, backend_name: str
) -> None:
    stream = await make_backend(backend_name).connect_tcp("127.0.0.1", tls_proxy_server.port)
    outer = await stream.start_tls(client_context, server_hostname="localhost", timeout=5)
    inner = await outer.start_tls(client_context, server_hostname="localhost", timeout=5)
    inner_ssl = inner.get_extra_info("ssl_object")
    assert inner_ssl is not outer.get_extra_info("ssl_object")
    assert inner_ssl.selected_alpn_protocol() == "http/1.1"
    assert inner.get_extra_info("server_addr") == ("127.0.0.1", tls_proxy_server.port)
    await inner.write(b"tunnelled")
    assert await inner.read(100, timeout=5) == b"tunnelled"
    await inner.aclose()


def slurp(conn: socket.socket, server: Server) -> None:
    """Read nothing until `server.go` is set; then `server.expect` bytes, into `server.got`."""
    server.go.wait(30)  # type: ignore[attr-defined]
    chunks, left = [], server.expect  # type: ignore[attr-defined]
    while left > 0:
        data = conn.recv(min(left, 1 << 20))
        if not data:
            break
        chunks.append(data)
        left -= len(data)
    server.got.append(b"".join(chunks))  # type: ignore[attr-defined]


RESUMABLE = [
    pytest.param("asyncio", "auto", id="asyncio-AutoBackend"),
    pytest.param("trio", "trio", id="trio-TrioBackend"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("anyio_backend", "backend_name"), RESUMABLE)
@pytest.mark.parametrize("tls", ["plain", "tls", "memory-tls"])
async def test_async_cancelled_write_is_resumed_in_order(
    server_context: ssl.SSLContext,
    client_context: ssl.SSLContext,
    backend_name: str,
    tls: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import anyio

    import httpcore.aio._asyncio

    if tls == "memory-tls":
        monkeypatch.setattr(httpcore.aio._asyncio, "NATIVE_TLS_LIMITED", True)
    server = Server(slurp, ssl_context=None if tls == "plain" else server_context)
    server.go = threading.Event()  # type: ignore[attr-defined]
    server.got = []  # type: ignore[attr-defined]
    server.expect = len(BIG) + 3  # type: ignore[attr-defined]
    try:
        stream = await make_backend(backend_name).connect_tcp("127.0.0.1", server.port)
        if tls != "plain":
            stream = await stream.start_tls(client_context, server_hostname="localhost")
        assert getattr(stream, "resumable_writes", False)
        await stream.write(b"<")
        async with anyio.create_task_group() as tg:
            tg.start_soon(stream.write, BIG)
            await anyio.wait_all_tasks_blocked()  # stuck: the server reads nothing yet
            tg.cancel_scope.cancel()
        server.go.set()  # type: ignore[attr-defined]
        await stream.resume_write(b">", timeout=30)  # type: ignore[attr-defined]
        await stream.write(b"!")
        # Closed once the server has it all (the server's unread TLS session tickets would
        # make an earlier close a reset).
        await anyio.to_thread.run_sync(lambda: [t.join(30) for t in server.threads])
        await stream.aclose()
    finally:
        server.go.set()  # type: ignore[attr-defined]
        server.close()
    got = server.got[0]  # type: ignore[attr-defined]
    assert len(got) == len(BIG) + 3
    assert got == b"<" + BIG + b">!"


@pytest.mark.anyio
@each_async_backend
async def test_async_sleep(backend_name: str) -> None:
    await make_backend(backend_name).sleep(0)


# --------------------------------------------------------------------------------------------
# AutoBackend environment errors


@pytest.mark.anyio
async def test_auto_unsupported_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import sniffio

    monkeypatch.setattr(sniffio, "current_async_library", lambda: "curio")
    with pytest.raises(RuntimeError) as info:
        await AutoBackend().sleep(0)
    assert str(info.value) == "Running under an unsupported async environment."


@pytest.mark.anyio
async def test_auto_missing_library(monkeypatch: pytest.MonkeyPatch, anyio_backend: str) -> None:
    # The library that is running cannot be imported (anew) by the backend selection.
    monkeypatch.setitem(sys.modules, "anyio" if anyio_backend == "asyncio" else "trio", None)
    with pytest.raises(RuntimeError) as info:
        await AutoBackend().sleep(0)
    extra = "asyncio" if anyio_backend == "asyncio" else "trio"
    assert str(info.value) == (
        f"Running with {extra} requires installation of 'httpcore[{extra}]'."
    )


def test_auto_outside_event_loop() -> None:
    coroutine = AutoBackend().sleep(0)
    with pytest.raises(RuntimeError, match=r"^Running under an unsupported async environment\.$"):
        coroutine.send(None)
    coroutine.close()


# --------------------------------------------------------------------------------------------
# Without anyio / trio installed


def _run_isolated(code: str, tmp_path: Any) -> None:
    """Run `code` in a fresh interpreter where `anyio` is absent and `trio` fails to import
    with `NotImplementedError` (as on an unsupported platform)."""
    fake = tmp_path / "fake"
    (fake / "trio").mkdir(parents=True)
    (fake / "trio" / "__init__.py").write_text("raise NotImplementedError('unsupported')\n")
    prelude = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(fake)!r})
        sys.modules["anyio"] = None
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_placeholders_without_anyio_and_trio(tmp_path: Any) -> None:
    _run_isolated(
        """
        import asyncio
        import httpcore.aio._anyio, httpcore.aio._trio, httpcore.aio._auto
        from httpcore.aio._anyio import AnyIOBackend
        from httpcore.aio._trio import TrioBackend
        from httpcore.aio._auto import AutoBackend

        try:
            AnyIOBackend()
        except RuntimeError as exc:
            assert str(exc) == (
                "Attempted to use 'httpcore.AnyIOBackend' but 'anyio' is not installed."
            ), exc
        else:
            raise AssertionError("AnyIOBackend() did not raise")

        try:
            TrioBackend()
        except RuntimeError as exc:
            assert str(exc) == (
                "Attempted to use 'httpcore.TrioBackend' but 'trio' is not installed."
            ), exc
        else:
            raise AssertionError("TrioBackend() did not raise")

        async def main():
            await AutoBackend().connect_tcp("127.0.0.1", 1)

        try:
            asyncio.run(main())
        except RuntimeError as exc:
            assert str(exc) == (
                "Running with asyncio requires installation of 'httpcore[asyncio]'."
            ), exc
        else:
            raise AssertionError("AutoBackend did not raise")
        """,
        tmp_path,
    )


def test_async_backends_import_lazily(tmp_path: Any) -> None:
    code = """
        import sys
        del sys.modules["anyio"]
        import httpcore.aio._anyio, httpcore.aio._trio, httpcore.aio._auto
        loaded = sorted(name for name in ("anyio", "trio") if name in sys.modules)
        assert not loaded, loaded
    """
    _run_isolated(code, tmp_path)


# --------------------------------------------------------------------------------------------
# Mock backends


def test_mock_backend() -> None:
    backend = MockBackend([b"one", b"two"])
    stream = backend.connect_tcp("example.com", 80)
    assert isinstance(stream, MockStream)
    assert repr(stream) == "<httpcore.MockStream>"
    stream.write(b"ignored")
    assert stream.read(1) == b"one"  # whole chunks, whatever max_bytes
    assert stream.start_tls(ssl.create_default_context()) is stream
    assert stream.read(100) == b"two"
    assert stream.read(100) == b""
    assert stream.get_extra_info("ssl_object").selected_alpn_protocol() == "http/1.1"
    assert stream.get_extra_info("is_readable") is None
    stream.close()
    with pytest.raises(exc_mod.ReadError, match=r"^Connection closed$"):
        stream.read(100)
    # Every connection replays the whole buffer.
    again = backend.connect_unix_socket("/tmp/sock")
    assert again.read(100) == b"one"
    assert backend._buffer == [b"one", b"two"]
    backend.sleep(1000)


def test_mock_backend_http2_and_subclassing() -> None:
    class FlippingStream(MockStream):
        def start_tls(self, *args: Any, **kwargs: Any) -> NetworkStream:
            self._http2 = True
            return self

    class Backend(MockBackend):
        def __init__(self, buffer: list[bytes], http2: bool = False) -> None:
            super().__init__(buffer, http2)

        def connect_tcp(self, *args: Any, **kwargs: Any) -> NetworkStream:
            return FlippingStream(list(self._buffer), http2=self._http2)

    assert MockBackend([], http2=True).connect_tcp("h", 1).get_extra_info(
        "ssl_object"
    ).selected_alpn_protocol() == ("h2")
    stream = Backend([b"x"]).connect_tcp("h", 1)
    assert stream.get_extra_info("ssl_object").selected_alpn_protocol() == "http/1.1"
    stream.start_tls(ssl.create_default_context())
    assert stream.get_extra_info("ssl_object").selected_alpn_protocol() == "h2"


@pytest.mark.anyio
async def test_async_mock_backend() -> None:
    class Backend(AsyncMockBackend):
        def __init__(self, buffer: list[bytes], http2: bool = False) -> None:
            super().__init__(buffer, http2)

    backend = Backend([b"one", b"two"], True)
    assert backend._buffer == [b"one", b"two"]
    assert backend._http2 is True
    stream = await backend.connect_tcp("example.com", 443)
    assert isinstance(stream, AsyncMockStream)
    assert repr(stream) == "<httpcore.AsyncMockStream>"
    assert await stream.start_tls(ssl.create_default_context()) is stream
    assert stream.get_extra_info("ssl_object").selected_alpn_protocol() == "h2"
    await stream.write(b"ignored")
    assert await stream.read(1) == b"one"
    assert await stream.read(1) == b"two"
    assert await stream.read(1) == b""
    await stream.aclose()
    with pytest.raises(exc_mod.ReadError, match=r"^Connection closed$"):
        await stream.read(1)
    again = await backend.connect_unix_socket("/tmp/sock")
    assert await again.read(100) == b"one"
    await backend.sleep(1000)
