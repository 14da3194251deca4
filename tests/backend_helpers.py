"""Shared by the network backend tests (imported by tests/test_backends_*.py): small threaded
`socket`/`ssl` servers on 127.0.0.1 (echo, stall, hang up, TLS relay) and their fixtures, with
certificates from trustme, and the asyncio/trio `anyio_backend` fixture."""

from __future__ import annotations

import os
import select
import socket
import ssl
import sys
import tempfile
import threading
from typing import Any, Callable, Iterator

import pytest
import trustme

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


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)
