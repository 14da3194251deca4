"""`peer_closed`, the check an idle HTTP/2 connection makes before the pool hands it out
(API.md §12.7): the server's FIN or reset, told by the TCP state, for every backend's stream,
plain and through TLS. Unlike `is_readable`, bytes waiting to be read do not count.

On Linux only: elsewhere `tcp_socket_of` gives None and the HTTP/2 check is not made."""

from __future__ import annotations

import socket
import ssl
import sys
import time
from typing import Any, Callable, Iterator

import backend_helpers
import pytest
from backend_helpers import Server

from httpcore.aio import AnyIOBackend, TrioBackend
from httpcore.aio._asyncio import AsyncIOBackend
from httpcore.base import MockStream, SyncBackend
from httpcore.base._sync_backend import peer_closed, tcp_socket_of

ca, server_context, client_context, anyio_backend = (
    backend_helpers.ca,
    backend_helpers.server_context,
    backend_helpers.client_context,
    backend_helpers.anyio_backend,
)

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the TCP state is Linux's")

DEADLINE = 5.0


def on_command(conn: socket.socket, server: Server) -> None:
    """b"d": send some bytes; b"f": a bare FIN (no TLS close_notify); b"r": a reset."""
    while True:
        command = conn.recv(1)
        if command == b"d":
            conn.sendall(b"data")
        elif command == b"f":
            socket.socket.shutdown(conn, socket.SHUT_WR)
        elif command == b"r":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
            socket.socket.close(conn)
            return
        else:
            return


@pytest.fixture
def plain_server() -> Iterator[Server]:
    server = Server(on_command)
    yield server
    server.close()


@pytest.fixture
def tls_server(server_context: ssl.SSLContext) -> Iterator[Server]:
    server = Server(on_command, ssl_context=server_context)
    yield server
    server.close()


def wait_until(condition: Callable[[], bool]) -> bool:
    """Polls a kernel state that changes without any event this thread could wait on."""
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def servers(request: pytest.FixtureRequest, tls: bool) -> Server:
    return request.getfixturevalue("tls_server" if tls else "plain_server")  # type: ignore[no-any-return]


@pytest.mark.parametrize("ending", [b"f", b"r"])
@pytest.mark.parametrize("tls", [False, True])
def test_sync(
    request: pytest.FixtureRequest, tls: bool, ending: bytes, client_context: ssl.SSLContext
) -> None:
    server = servers(request, tls)
    stream: Any = SyncBackend().connect_tcp("127.0.0.1", server.port, timeout=DEADLINE)
    if tls:
        stream = stream.start_tls(client_context, "localhost", timeout=DEADLINE)
    try:
        sock = tcp_socket_of(stream)
        assert sock is not None
        assert not peer_closed(sock)
        stream.write(b"d", timeout=DEADLINE)
        assert wait_until(lambda: bool(stream.get_extra_info("is_readable")))
        assert not peer_closed(sock)  # readable, with bytes: still open
        stream.write(ending, timeout=DEADLINE)
        assert wait_until(lambda: peer_closed(sock))
    finally:
        stream.close()
    assert peer_closed(sock)  # closed here: no longer a connection to use


ASYNC_BACKENDS = {
    "asyncio": [AsyncIOBackend, AnyIOBackend],
    "trio": [TrioBackend, AnyIOBackend],
}


@pytest.mark.anyio
@pytest.mark.parametrize("kind", [0, 1], ids=["native", "anyio"])
@pytest.mark.parametrize("ending", [b"f", b"r"])
@pytest.mark.parametrize("tls", [False, True])
async def test_async(
    request: pytest.FixtureRequest,
    anyio_backend: str,
    kind: int,
    tls: bool,
    ending: bytes,
    client_context: ssl.SSLContext,
) -> None:
    server = servers(request, tls)
    backend = ASYNC_BACKENDS[anyio_backend][kind]()
    stream: Any = await backend.connect_tcp("127.0.0.1", server.port, timeout=DEADLINE)
    if tls:
        stream = await stream.start_tls(client_context, "localhost", timeout=DEADLINE)
    try:
        sock = tcp_socket_of(stream)
        assert sock is not None
        assert not peer_closed(sock)
        await stream.write(b"d", timeout=DEADLINE)
        assert await stream.read(4, timeout=DEADLINE) == b"data"
        assert not peer_closed(sock)
        await stream.write(ending, timeout=DEADLINE)
        assert wait_until(lambda: peer_closed(sock))
    finally:
        await stream.aclose()


def test_a_stream_without_a_tcp_socket_is_not_checked() -> None:
    assert tcp_socket_of(MockStream([])) is None
    left, right = socket.socketpair()
    with left, right:
        assert tcp_socket_of(_Plain(left)) is None


class _Plain:
    """A stream over a Unix socket pair: a socket, not TCP."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def get_extra_info(self, info: str) -> Any:
        return self._sock if info == "socket" else None
