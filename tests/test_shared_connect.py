"""A pending HTTP/2 connection shared by several requests survives one of them being cancelled."""

from __future__ import annotations

import anyio
import pytest
from test_http2 import URL, FakeServer

import httpcore


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


@pytest.mark.anyio
async def test_waiter_cancelled_while_another_request_connects() -> None:
    gate = anyio.Event()
    connecting = anyio.Event()

    class GatedBackend(httpcore.AsyncMockBackend):
        async def connect_tcp(self, *args: object, **kwargs: object) -> httpcore.AsyncNetworkStream:
            connecting.set()
            await gate.wait()
            return await super().connect_tcp(*args, **kwargs)  # type: ignore[arg-type]

    backend = GatedBackend(FakeServer().respond(1).chunks, http2=True)
    async with httpcore.AsyncConnectionPool(network_backend=backend, http2=True) as pool:
        statuses = []

        async def first() -> None:
            statuses.append((await pool.request("GET", URL)).status)

        async with anyio.create_task_group() as tg:
            tg.start_soon(first)
            await connecting.wait()
            # The second request shares the pending (maybe HTTP/2) connection and waits for
            # the first to connect it; it is cancelled while waiting.
            with anyio.move_on_after(0.05) as scope:
                await pool.request("GET", URL)
            assert scope.cancelled_caught
            gate.set()
        assert statuses == [200]
        assert [c.info() for c in pool.connections] == [
            "'https://example.com:443', HTTP/2, IDLE, Request Count: 1"
        ]


class StallingAtomicStream(httpcore.AsyncMockStream):
    """Takes every write whole, but stalls (as if draining) on one of them."""

    atomic_writes = True

    def __init__(self, chunks: list, stall_on: int) -> None:
        super().__init__(chunks)
        self.writes = 0
        self.stalled = False
        self._stall_on = stall_on

    async def write(self, buffer: bytes, timeout: object = None) -> None:
        self.writes += 1
        if self.writes == self._stall_on:
            self.stalled = True
            await anyio.sleep_forever()

    async def read(self, max_bytes: int, timeout: object = None) -> bytes:
        if not self._buffer:
            await anyio.sleep_forever()
        return await super().read(max_bytes)


@pytest.mark.anyio
async def test_cancelled_http2_writer_of_an_atomic_stream_keeps_the_connection() -> None:
    from test_http2 import ORIGIN

    from httpcore.http2 import AsyncHTTP2Connection

    stream = StallingAtomicStream(FakeServer().respond(3).chunks, stall_on=2)
    async with AsyncHTTP2Connection(ORIGIN, stream) as conn:
        with anyio.move_on_after(0.05) as scope:
            await conn.request("GET", URL)  # stream 1: cancelled in its HEADERS write
        assert scope.cancelled_caught and stream.stalled
        assert conn.is_available() and not conn.has_expired()
        response = await conn.request("GET", URL)  # stream 3
        assert response.status == 200
        assert response.content == b"Hello, world!"
