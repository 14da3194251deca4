"""An idle TLS stream that received records without application data (TLS 1.3 session tickets)
is not readable; one that received application data is, and keeps that data for the next read.

The pool asks `get_extra_info("is_readable")` of an idle HTTP/1.1 connection (API.md §3.7) and
discards it when true. A TLS 1.3 server sends its session tickets after the handshake, and may
send more (or a key update) at any time; taking those for "the server spoke out of turn" threw
healthy connections away under the streams that run TLS in memory: `SyncTLSStream` (sync),
`MemoryTLSStream` (trio, asyncio before 3.11, and TLS inside TLS everywhere).

Real sockets on 127.0.0.1: `backend_helpers`' TLS echo server (TLS 1.3, two tickets after each
handshake) and its TLS relay (an HTTPS proxy's tunnel, for TLS inside TLS). Each test waits,
bounded, for the tickets to reach the client's socket before asking.
"""

from __future__ import annotations

import select
import ssl
import time
from typing import Any

import backend_helpers
import pytest
from backend_helpers import Server

from httpcore.aio._asyncio import AsyncIOBackend
from httpcore.aio._memory_tls import MemoryTLSStream
from httpcore.aio._trio import TrioBackend
from httpcore.base._sync_backend import SyncBackend
from httpcore.base._sync_tls import SyncTLSStream

anyio_backend = backend_helpers.anyio_backend
ca, client_context, server_context = (
    backend_helpers.ca,
    backend_helpers.client_context,
    backend_helpers.server_context,
)
tls_echo_server = backend_helpers.tls_echo_server
tls_proxy_server = backend_helpers.tls_proxy_server

WAIT = 5.0


def wait_for_bytes(stream: Any) -> None:
    """Until the socket under `stream` has bytes queued (bounded)."""
    sock = stream.get_extra_info("socket")
    readable, _, _ = select.select([sock], [], [], WAIT)
    assert readable, "nothing arrived from the server"


# -- sync -----------------------------------------------------------------------------------


def sync_tls(server: Server, context: ssl.SSLContext, inner: bool = False) -> Any:
    stream = SyncBackend().connect_tcp("127.0.0.1", server.port, timeout=WAIT)
    stream = stream.start_tls(context, server_hostname="localhost", timeout=WAIT)
    if inner:
        stream = stream.start_tls(context, server_hostname="localhost", timeout=WAIT)
    return stream


@pytest.mark.parametrize("inner", [False, True], ids=["tls", "tls-in-tls"])
def test_sync_tickets_leave_an_idle_stream_unreadable(
    tls_echo_server: Server, tls_proxy_server: Server, client_context: ssl.SSLContext, inner: bool
) -> None:
    stream = sync_tls(tls_proxy_server if inner else tls_echo_server, client_context, inner)
    try:
        assert isinstance(stream, SyncTLSStream)
        assert stream.get_extra_info("ssl_object").version() == "TLSv1.3"
        wait_for_bytes(stream)  # the tickets
        assert stream.get_extra_info("is_readable") is False
        # Still in step with the server: nothing was lost or left half-read.
        stream.write(b"ping", timeout=WAIT)
        assert stream.read(100, timeout=WAIT) == b"ping"
        assert stream.get_extra_info("is_readable") is False
    finally:
        stream.close()


@pytest.mark.parametrize("inner", [False, True], ids=["tls", "tls-in-tls"])
def test_sync_data_found_by_the_check_is_kept_for_the_next_read(
    tls_echo_server: Server, tls_proxy_server: Server, client_context: ssl.SSLContext, inner: bool
) -> None:
    stream = sync_tls(tls_proxy_server if inner else tls_echo_server, client_context, inner)
    try:
        stream.write(b"hello", timeout=WAIT)
        # Bounded: the echo may take a round or two through the relay.
        for _ in range(100):
            wait_for_bytes(stream)
            if stream.get_extra_info("is_readable"):
                break
        assert stream.get_extra_info("is_readable") is True
        assert stream.read(2, timeout=WAIT) == b"he"
        assert stream.read(100, timeout=WAIT) == b"llo"
        assert stream.get_extra_info("is_readable") is False
    finally:
        stream.close()


def test_sync_end_of_stream_is_readable(
    tls_echo_server: Server, client_context: ssl.SSLContext
) -> None:
    stream = sync_tls(tls_echo_server, client_context)
    try:
        wait_for_bytes(stream)
        assert stream.get_extra_info("is_readable") is False
        # The server thread tracks its TLS socket only once its handshake call returned,
        # which may be after the client saw the tickets (bounded polling).
        deadline = time.monotonic() + WAIT
        while not any(isinstance(c, ssl.SSLSocket) for c in tls_echo_server.connections):
            assert time.monotonic() < deadline, "the server never tracked its TLS socket"
            time.sleep(0.001)
        for conn in list(tls_echo_server.connections):  # the server ends the connection
            backend_helpers._hard_shutdown(conn)
        for _ in range(100):  # bounded: the second ticket may come first, then the FIN
            wait_for_bytes(stream)
            if stream.get_extra_info("is_readable"):
                break
        assert stream.get_extra_info("is_readable") is True
        assert stream.read(100, timeout=WAIT) == b""
    finally:
        stream.close()


# -- async: TLS in memory (trio always; asyncio through MemoryTLSStream) ----------------------


async def async_tls(kind: str, server: Server, context: ssl.SSLContext, inner: bool = False) -> Any:
    if kind == "trio":
        stream: Any = await TrioBackend().connect_tcp("127.0.0.1", server.port, timeout=WAIT)
        stream = await stream.start_tls(context, server_hostname="localhost", timeout=WAIT)
    else:
        # asyncio's own TLS before Python 3.11 is this stream; from 3.11 on, only TLS in TLS.
        stream = await AsyncIOBackend().connect_tcp("127.0.0.1", server.port, timeout=WAIT)
        stream = await MemoryTLSStream.handshake(stream, context, "localhost", WAIT)
    if inner:
        stream = await stream.start_tls(context, server_hostname="localhost", timeout=WAIT)
    assert isinstance(stream, MemoryTLSStream)
    return stream


async def until_readable_by_the_loop(stream: Any, anyio_backend: str) -> None:
    """Until bytes from the server are where the stream's check looks: on the socket (trio
    reads it only when asked), or in the protocol's buffer (asyncio reads the socket in its
    loop's callbacks). Bounded polling."""
    import anyio

    if anyio_backend == "trio":
        wait_for_bytes(stream)
        return
    transport = stream
    while isinstance(transport, MemoryTLSStream):
        transport = transport._inner
    with anyio.fail_after(WAIT):
        while not transport.get_extra_info("is_readable"):
            await anyio.sleep(0.001)


@pytest.mark.anyio
@pytest.mark.parametrize("inner", [False, True], ids=["tls", "tls-in-tls"])
async def test_async_tickets_leave_an_idle_stream_unreadable(
    anyio_backend: str,
    tls_echo_server: Server,
    tls_proxy_server: Server,
    client_context: ssl.SSLContext,
    inner: bool,
) -> None:
    server = tls_proxy_server if inner else tls_echo_server
    stream = await async_tls(anyio_backend, server, client_context, inner)
    try:
        await until_readable_by_the_loop(stream, anyio_backend)
        assert stream.get_extra_info("is_readable") is False
        await stream.write(b"ping", timeout=WAIT)
        assert await stream.read(100, timeout=WAIT) == b"ping"
    finally:
        await stream.aclose()


@pytest.mark.anyio
@pytest.mark.parametrize("inner", [False, True], ids=["tls", "tls-in-tls"])
async def test_async_data_found_by_the_check_is_kept_for_the_next_read(
    anyio_backend: str,
    tls_echo_server: Server,
    tls_proxy_server: Server,
    client_context: ssl.SSLContext,
    inner: bool,
) -> None:
    server = tls_proxy_server if inner else tls_echo_server
    stream = await async_tls(anyio_backend, server, client_context, inner)
    try:
        await stream.write(b"hello", timeout=WAIT)
        for _ in range(100):
            await until_readable_by_the_loop(stream, anyio_backend)
            if stream.get_extra_info("is_readable"):
                break
        assert stream.get_extra_info("is_readable") is True
        assert await stream.read(2, timeout=WAIT) == b"he"
        assert await stream.read(100, timeout=WAIT) == b"llo"
    finally:
        await stream.aclose()
