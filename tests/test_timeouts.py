"""Read and write timeouts through a connection and a pool, HTTP/1.1 and HTTP/2, against real
servers that stop answering or stop reading (sync, asyncio and trio).

Every timeout is 0.2 s and every bound generous (5 s). A timeout that is ignored shows up as a
failure, never as a slower suite: the servers give up after 6 s (`SERVER_PATIENCE`), and an
upload that was never timed out then ends in a ReadTimeout (1 s), not in a WriteTimeout.
"""

from __future__ import annotations

import time
from typing import Any, Callable, List

import anyio
import helpers
import pytest
from h2servers import H2Server
from servers import RawServer, Responder, StallServer

import httpcore

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

anyio_backend, flavour, api = helpers.anyio_backend, helpers.flavour, helpers.api

RawFactory = Callable[..., RawServer]

TIMEOUT = 0.2
BOUND = 5.0
SERVER_PATIENCE = 6.0
UPLOAD = 32 * 1024 * 1024  # far beyond what the socket buffers hold


def timeouts(**values: float) -> dict:
    return {"timeout": values}


class Clock:
    """Measures the time a block took (wall clock, as a user would)."""

    def __enter__(self) -> Clock:
        self.start = time.monotonic()
        return self

    def __exit__(self, *args: Any) -> None:
        self.elapsed = time.monotonic() - self.start


async def wait_closed(responder: Responder, count: int) -> bool:
    return await anyio.to_thread.run_sync(responder.wait_closed, count)  # type: ignore[no-any-return]


# -- HTTP/1.1 ---------------------------------------------------------------------------------


async def test_read_timeout_through_a_pool(api: Any, raw_server: RawFactory) -> None:
    responder = Responder(silent=True)
    srv = raw_server(responder, conn_timeout=SERVER_PATIENCE)
    async with api.ConnectionPool() as pool:
        with Clock() as clock, pytest.raises(httpcore.ReadTimeout, match=r"^timed out$"):
            await pool.request("GET", srv.url + "/", extensions=timeouts(read=TIMEOUT))
        assert TIMEOUT <= clock.elapsed < BOUND
        assert pool.connections == []
        assert await wait_closed(responder, 1)
    assert responder.requests == 1


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nhalf\r\n",
    ],
    ids=["content-length", "chunked"],
)
async def test_read_timeout_in_the_body_through_a_pool(
    api: Any, raw_server: RawFactory, head: bytes
) -> None:
    """The head arrived, the rest of the body never does: each body read has the timeout."""
    responder = Responder([head])
    srv = raw_server(responder, conn_timeout=SERVER_PATIENCE)
    async with api.ConnectionPool() as pool:
        async with pool.stream("GET", srv.url + "/", extensions=timeouts(read=TIMEOUT)) as r:
            with Clock() as clock, pytest.raises(httpcore.ReadTimeout, match=r"^timed out$"):
                await r.aread()
            assert clock.elapsed < BOUND
        assert pool.connections == []
        assert await wait_closed(responder, 1)


async def test_read_timeout_through_a_connection(api: Any, raw_server: RawFactory) -> None:
    responder = Responder(silent=True)
    srv = raw_server(responder, conn_timeout=SERVER_PATIENCE)
    async with api.HTTPConnection(helpers.origin(srv.url)) as conn:
        with Clock() as clock, pytest.raises(httpcore.ReadTimeout, match=r"^timed out$"):
            await conn.request("GET", srv.url + "/", extensions=timeouts(read=TIMEOUT))
        assert TIMEOUT <= clock.elapsed < BOUND
        assert conn.is_closed()
        assert await wait_closed(responder, 1)


async def test_write_timeout_through_a_pool(api: Any, stall_server: StallServer) -> None:
    async with api.ConnectionPool() as pool:
        with Clock() as clock, pytest.raises(httpcore.WriteTimeout, match=r"^timed out$"):
            await pool.request(
                "POST",
                stall_server.url + "/",
                content=b"x" * UPLOAD,
                extensions=timeouts(write=TIMEOUT, read=1.0),
            )
        assert clock.elapsed < BOUND
        assert pool.connections == []
        stall_server.drain()
        assert await anyio.to_thread.run_sync(stall_server.wait_closed, 1)
    assert stall_server.connections == 1
    assert stall_server.received[0] > 0


async def test_write_timeout_with_a_streamed_body(api: Any, stall_server: StallServer) -> None:
    """The request body comes from an iterator (written chunk by chunk, through h11)."""
    chunks = [b"x" * 65536] * (UPLOAD // 65536)
    async with api.ConnectionPool() as pool:
        with Clock() as clock, pytest.raises(httpcore.WriteTimeout, match=r"^timed out$"):
            await pool.request(
                "POST",
                stall_server.url + "/",
                content=api.body(chunks),
                extensions=timeouts(write=TIMEOUT, read=1.0),
            )
        assert clock.elapsed < BOUND
        assert pool.connections == []
    stall_server.drain()
    assert await anyio.to_thread.run_sync(stall_server.wait_closed, 1)


async def test_write_timeout_through_a_connection(api: Any, stall_server: StallServer) -> None:
    async with api.HTTPConnection(helpers.origin(stall_server.url)) as conn:
        with Clock() as clock, pytest.raises(httpcore.WriteTimeout, match=r"^timed out$"):
            await conn.request(
                "POST",
                stall_server.url + "/",
                content=b"x" * UPLOAD,
                extensions=timeouts(write=TIMEOUT, read=1.0),
            )
        assert clock.elapsed < BOUND
        assert conn.is_closed()
    stall_server.drain()
    assert await anyio.to_thread.run_sync(stall_server.wait_closed, 1)


# -- HTTP/2 -----------------------------------------------------------------------------------


def h2c_pool(api: Any) -> Any:
    return api.ConnectionPool(http1=False, http2=True)


async def test_http2_read_timeout(api: Any, h2_server: Callable[..., H2Server]) -> None:
    """The server accepts the stream and answers nothing on its first connection: ReadTimeout
    for that request. Silent for a whole read timeout, the connection may be dead (API.md §4.4:
    a read exception makes it unavailable): the pool closes it, and the next request goes to a
    new connection."""
    srv = h2_server(hold=2, conn_timeout=SERVER_PATIENCE)
    async with h2c_pool(api) as pool:
        with Clock() as clock, pytest.raises(httpcore.ReadTimeout, match=r"^timed out$"):
            await pool.request("GET", srv.url + "/first", extensions=timeouts(read=TIMEOUT))
        assert TIMEOUT <= clock.elapsed < BOUND
        assert pool.connections == []
        response = await pool.request("GET", srv.url + "/second")
        assert response.content == b"ok /second"
        assert response.extensions["http_version"] == b"HTTP/2"
        assert len(pool.connections) == 1
    assert srv.connections == 2
    assert srv.protocol_errors == 0


async def until(api: Any, condition: Callable[[], bool]) -> None:
    """Poll ``condition`` (up to 10 s), suspending (async) or sleeping (sync threads)."""
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "condition never met"
        if api.is_async:
            await anyio.sleep(0.005)
        else:
            time.sleep(0.005)
    if api.is_async:
        await anyio.wait_all_tasks_blocked()


async def test_http2_read_timeout_while_another_request_reads(
    api: Any, h2_server: Callable[..., H2Server]
) -> None:
    """Request A (no timeout) waits for its response; B, on the same connection, waits for
    data too (for the reader's role, or reading itself) and must time out in time. A third
    request lets the server answer A and C."""
    srv = h2_server(hold=3, conn_timeout=SERVER_PATIENCE)
    results: List[Any] = []
    async with h2c_pool(api) as pool:

        async def a() -> None:
            results.append((await pool.request("GET", srv.url + "/a")).content)

        async def b_then_c() -> None:
            await until(api, lambda: srv.requests >= 1)
            with Clock() as clock, pytest.raises(httpcore.ReadTimeout, match=r"^timed out$"):
                await pool.request("GET", srv.url + "/b", extensions=timeouts(read=TIMEOUT))
            assert TIMEOUT <= clock.elapsed < BOUND
            results.append((await pool.request("GET", srv.url + "/c")).content)

        await api.concurrently(a, b_then_c)
        assert sorted(results) == [b"ok /a", b"ok /c"]
        assert len(pool.connections) == 1
    assert srv.connections == 1
    assert srv.protocol_errors == 0


async def test_http2_write_timeout(api: Any, h2_server: Callable[..., H2Server]) -> None:
    """The server stops reading once the upload's headers arrived: WriteTimeout; the pool is
    left with no broken connection."""
    srv = h2_server(stall=True, conn_timeout=SERVER_PATIENCE)
    async with h2c_pool(api) as pool:
        assert (await pool.request("GET", srv.url + "/warm")).content == b"ok /warm"
        with Clock() as clock, pytest.raises(httpcore.WriteTimeout, match=r"^timed out$"):
            await pool.request(
                "POST",
                srv.url + "/stall",
                content=b"x" * UPLOAD,
                extensions=timeouts(write=TIMEOUT, read=1.0),
            )
        assert clock.elapsed < BOUND
        srv.resume.set()
        # A write cut short leaves a torn frame: that connection is not used again.
        response = await pool.request("GET", srv.url + "/after")
        assert response.content == b"ok /after"
        assert len(pool.connections) == 1
    assert srv.connections == 2
