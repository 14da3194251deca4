"""Every socket is closed by us, never by the garbage collector.

Each case runs with the garbage collector disabled, so that a socket we forget to close stays
open (it is not rescued by a collection) and shows up in the descriptor count; then collects,
recording `ResourceWarning`s and unraisable exceptions, so that a socket closed only by the
collector shows up too. The faults: a server that never reads (write timeout), never answers
(read timeout), resets the connection mid-response or mid-upload, and (asyncio, trio) a request
cancelled mid-read or mid-write. Through a connection pool with sync, asyncio and trio, plain
and TLS, and on each network backend directly.
"""

from __future__ import annotations

import contextlib
import gc
import os
import ssl
from typing import Any, Callable, Iterator, List

import anyio
import helpers
import pytest
from servers.raw import (
    read_then_stall,
    reset_after,
    reset_during_upload,
    sockets_to,
    stall,
)

import httpcore
from httpcore.aio._anyio import AnyIOBackend
from httpcore.aio._asyncio import AsyncIOBackend
from httpcore.aio._memory_tls import MemoryTLSStream
from httpcore.aio._trio import TrioBackend
from httpcore.base._sync_backend import SyncBackend

anyio_backend, flavour, api = helpers.anyio_backend, helpers.flavour, helpers.api

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts /proc fds")

BIG = b"x" * (16 * 1024 * 1024)  # more than the loopback socket buffers hold (4 MiB + 4 MiB)
CUT_SHORT = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 10
BROKEN = (httpcore.NetworkError, httpcore.RemoteProtocolError)


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


@contextlib.contextmanager
def collector_off(after: Callable[[], None]) -> Iterator[None]:
    """Run the body with the garbage collector disabled, then `after()` (still disabled), then
    collect: no ResourceWarning and no unraisable exception may come of any of it."""
    with helpers.left_to_the_collector() as found:
        yield
        after()
    assert found == []


@contextlib.contextmanager
def no_leaks() -> Iterator[None]:
    """The body (which must close its servers too) leaves as many descriptors open as there
    were before, with the collector disabled; collecting afterwards warns of nothing."""
    gc.collect()
    before, listing = fd_count(), helpers.open_descriptors()
    counted: List[Any] = []

    def count() -> None:
        counted.extend([fd_count(), sorted(helpers.open_descriptors() - listing)])

    with collector_off(count):
        yield
    after, leaked = counted
    # Descriptors are compared by what they point to (socket inodes), not counted: servers of
    # earlier tests may still be closing theirs in other threads.
    assert leaked == [], f"descriptors left open: {leaked} ({before} before, {after} after)"


def _timeout(**values: float) -> Any:
    return {"timeout": values}


# -- through a connection pool -----------------------------------------------------------------

# (server handler, method, body, timeouts, expected exception)
FAULTS = {
    "write-timeout": (stall, "POST", BIG, _timeout(write=0.2), httpcore.WriteTimeout),
    "read-timeout": (read_then_stall, "GET", None, _timeout(read=0.2), httpcore.ReadTimeout),
    "reset-mid-response": (reset_after(CUT_SHORT), "GET", None, _timeout(read=5), BROKEN),
    "reset-mid-upload": (reset_during_upload, "POST", BIG, _timeout(write=5, read=5), BROKEN),
}


@pytest.mark.anyio
@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
@pytest.mark.parametrize("fault", list(FAULTS))
async def test_pool_closes_every_socket_after_a_fault(
    api: helpers.API,
    raw_server: Callable[..., Any],
    client_ssl_context: ssl.SSLContext,
    fault: str,
    tls: bool,
) -> None:
    handler, method, body, extensions, expected = FAULTS[fault]
    with no_leaks():
        server = raw_server(handler, tls=tls)
        try:
            async with api.ConnectionPool(ssl_context=client_ssl_context) as pool:
                for _ in range(2):
                    with pytest.raises(expected):
                        await pool.request(method, server.url, content=body, extensions=extensions)
                assert pool.connections == []
            assert sockets_to(server.port) == []  # closed by now, not later
            assert server.connections == 2
        finally:
            server.close()


@pytest.mark.anyio
@pytest.mark.parametrize("flavour", ["asyncio", "trio"])
@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
@pytest.mark.parametrize("where", ["mid-read", "mid-write"])
async def test_pool_closes_every_socket_after_a_cancellation(
    api: helpers.API,
    raw_server: Callable[..., Any],
    client_ssl_context: ssl.SSLContext,
    where: str,
    tls: bool,
) -> None:
    handler, method, body = (
        (read_then_stall, "GET", None) if where == "mid-read" else (stall, "POST", BIG)
    )
    with no_leaks():
        server = raw_server(handler, tls=tls)
        try:
            async with api.ConnectionPool(ssl_context=client_ssl_context) as pool:
                for _ in range(2):
                    with anyio.move_on_after(0.3) as scope:
                        await pool.request(method, server.url, content=body)
                    assert scope.cancelled_caught
                assert pool.connections == []
            assert sockets_to(server.port) == []
        finally:
            server.close()


# -- on the network backends directly ----------------------------------------------------------

# (anyio backend, network backend, TLS)
BACKENDS = [
    pytest.param(runner, name, tls, id=f"{ident}-{'tls' if tls else 'plain'}")
    for runner, name, ident in [
        ("asyncio", "sync", "SyncBackend"),
        ("asyncio", "asyncio", "AsyncIOBackend"),
        ("asyncio", "anyio", "asyncio-AnyIOBackend"),
        ("trio", "trio", "TrioBackend"),
        ("trio", "anyio", "trio-AnyIOBackend"),
    ]
    for tls in (False, True)
]
# TLS in memory over an asyncio transport, as under an HTTPS proxy and before Python 3.11.
BACKENDS.append(pytest.param("asyncio", "asyncio-memory-tls", True, id="AsyncIOBackend-memory-TLS"))


async def _open(
    name: str, server: Any, tls: bool, context: ssl.SSLContext, timeout: float = 5.0
) -> Any:
    if name == "sync":
        stream = SyncBackend().connect_tcp(server.host, server.port, timeout=timeout)
        return stream.start_tls(context, server.host, timeout) if tls else stream
    backend: Any = {"trio": TrioBackend, "anyio": AnyIOBackend}.get(name, AsyncIOBackend)()
    stream = await backend.connect_tcp(server.host, server.port, timeout=timeout)
    if not tls:
        return stream
    if name == "asyncio-memory-tls":  # as under an HTTPS proxy, and before Python 3.11
        return await MemoryTLSStream.handshake(stream, context, server.host, timeout)
    return await stream.start_tls(context, server.host, timeout)


async def _close(stream: Any) -> None:
    await helpers.API.aw(stream.aclose() if hasattr(stream, "aclose") else stream.close())


async def _write_timeout(stream: Any) -> None:
    with pytest.raises(httpcore.WriteTimeout):
        await helpers.API.aw(stream.write(BIG, 0.2))


async def _read_timeout(stream: Any) -> None:
    await helpers.API.aw(stream.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 5.0))
    with pytest.raises(httpcore.ReadTimeout):
        await helpers.API.aw(stream.read(65536, 0.2))


async def _reset(stream: Any) -> None:
    await helpers.API.aw(stream.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 5.0))
    with pytest.raises(BROKEN):
        while await helpers.API.aw(stream.read(65536, 5.0)):
            pass
        raise httpcore.ReadError("EOF")  # a clean EOF counts as a broken connection here


STREAM_FAULTS = {
    "write-timeout": (stall, _write_timeout),
    "read-timeout": (read_then_stall, _read_timeout),
    "reset": (reset_after(CUT_SHORT), _reset),
}


@pytest.mark.anyio
@pytest.mark.parametrize("fault", list(STREAM_FAULTS))
@pytest.mark.parametrize(("anyio_backend", "backend_name", "tls"), BACKENDS)
async def test_stream_closed_after_a_fault_releases_its_socket(
    raw_server: Callable[..., Any],
    client_ssl_context: ssl.SSLContext,
    backend_name: str,
    fault: str,
    tls: bool,
) -> None:
    handler, provoke = STREAM_FAULTS[fault]
    with no_leaks():
        server = raw_server(handler, tls=tls)
        try:
            stream = await _open(backend_name, server, tls, client_ssl_context)
            try:
                await provoke(stream)
            finally:
                await _close(stream)
            assert sockets_to(server.port) == []
        finally:
            server.close()


# -- HTTP/2 -----------------------------------------------------------------------------------

H2_FAULTS = {
    # The server takes the connection preface (as if it were a request head) and says nothing.
    "read-timeout": (read_then_stall, _timeout(read=0.2), httpcore.ReadTimeout),
    "reset": (reset_during_upload, _timeout(read=5), BROKEN),
}


@pytest.mark.anyio
@pytest.mark.parametrize("fault", list(H2_FAULTS))
async def test_http2_pool_closes_every_socket_after_a_fault(
    api: helpers.API,
    raw_server: Callable[..., Any],
    client_ssl_context: ssl.SSLContext,
    fault: str,
) -> None:
    handler, extensions, expected = H2_FAULTS[fault]
    with no_leaks():
        server = raw_server(handler, tls=True, alpn=["h2"])
        try:
            async with api.ConnectionPool(
                ssl_context=client_ssl_context, http1=False, http2=True
            ) as pool:
                for _ in range(2):
                    with pytest.raises(expected):
                        await pool.request("GET", server.url, extensions=extensions)
                # (A stream's read timeout leaves an HTTP/2 connection open: closing the pool
                # closes it.)
            assert sockets_to(server.port) == []
        finally:
            server.close()


@pytest.mark.anyio
@pytest.mark.parametrize("flavour", ["asyncio", "trio"])
async def test_http2_pool_closes_every_socket_after_a_cancellation(
    api: helpers.API, raw_server: Callable[..., Any], client_ssl_context: ssl.SSLContext
) -> None:
    with no_leaks():
        server = raw_server(read_then_stall, tls=True, alpn=["h2"])
        try:
            async with api.ConnectionPool(
                ssl_context=client_ssl_context, http1=False, http2=True
            ) as pool:
                for _ in range(2):
                    with anyio.move_on_after(0.3) as scope:
                        await pool.request("GET", server.url)
                    assert scope.cancelled_caught
            assert sockets_to(server.port) == []
        finally:
            server.close()
