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


class StallingResumableStream(httpcore.AsyncMockStream):
    """Sends half of one write, then stalls; `resume_write` sends the rest."""

    resumable_writes = True

    def __init__(self, chunks: list, stall_on: int) -> None:
        super().__init__(chunks)
        self.writes = 0
        self.stalled = False
        self.sent = b""
        self._unsent = b""
        self._stall_on = stall_on

    async def write(self, buffer: bytes, timeout: object = None) -> None:
        self.writes += 1
        if self.writes == self._stall_on:
            self.stalled = True
            half = len(buffer) // 2
            self.sent += buffer[:half]
            self._unsent = buffer[half:]
            await anyio.sleep_forever()
        self.sent += buffer

    async def resume_write(self, buffer: bytes, timeout: object = None) -> None:
        self.sent += self._unsent + buffer
        self._unsent = b""

    async def read(self, max_bytes: int, timeout: object = None) -> bytes:
        if not self._buffer:
            await anyio.sleep_forever()
        return await super().read(max_bytes)


@pytest.mark.anyio
async def test_cancelled_http2_writer_of_a_resumable_stream_keeps_the_connection() -> None:
    import h2.config
    import h2.connection
    import h2.events
    from test_http2 import ORIGIN

    from httpcore.http2 import AsyncHTTP2Connection

    stream = StallingResumableStream(FakeServer().respond(3).chunks, stall_on=2)
    async with AsyncHTTP2Connection(ORIGIN, stream) as conn:
        with anyio.move_on_after(0.05) as scope:
            await conn.request("GET", URL)  # stream 1: cancelled in its HEADERS write
        assert scope.cancelled_caught and stream.stalled
        assert conn.is_available() and not conn.has_expired()
        response = await conn.request("GET", URL)  # stream 3
        assert response.status == 200
        assert response.content == b"Hello, world!"
    # What reached the "server" is a well-formed HTTP/2 conversation: nothing lost or torn.
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    events = server.receive_data(stream.sent)
    assert [e.stream_id for e in events if isinstance(e, h2.events.RequestReceived)] == [1, 3]
    assert [e.stream_id for e in events if isinstance(e, h2.events.StreamReset)] == [1]


@pytest.mark.anyio
async def test_waiter_of_a_connection_that_failed_to_connect_gets_another() -> None:
    gate = anyio.Event()
    connecting = anyio.Event()
    attempts: list = []

    class FailingFirstBackend(httpcore.AsyncMockBackend):
        async def connect_tcp(self, *args: object, **kwargs: object) -> httpcore.AsyncNetworkStream:
            attempts.append(None)
            if len(attempts) == 1:
                connecting.set()
                await gate.wait()
                raise httpcore.ConnectError("refused")
            return await super().connect_tcp(*args, **kwargs)  # type: ignore[arg-type]

    backend = FailingFirstBackend(FakeServer().respond(1).chunks, http2=True)
    async with httpcore.AsyncConnectionPool(network_backend=backend, http2=True) as pool:
        outcomes: list = []

        async def request() -> None:
            try:
                outcomes.append((await pool.request("GET", URL)).status)
            except httpcore.ConnectError:
                outcomes.append("ConnectError")

        async with anyio.create_task_group() as tg:
            tg.start_soon(request)
            await connecting.wait()
            tg.start_soon(request)  # shares the pending connection, waits for it
            await anyio.wait_all_tasks_blocked()
            gate.set()
        assert sorted(outcomes, key=str) == [200, "ConnectError"]
        # The waiter opened a connection of its own, in the pool (not the dropped one).
        assert len(attempts) == 2
        assert [c.info() for c in pool.connections] == [
            "'https://example.com:443', HTTP/2, IDLE, Request Count: 1"
        ]
