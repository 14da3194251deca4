"""A request body of the wrong kind for the connection's flavour (API.md §0: sync objects take
iterables of bytes, async ones async iterables; `bytes` works with both) is refused with a
`TypeError` before anything is sent or connected, and leaves the connection as it was.

Before, the request head went out and iterating the body failed: `AttributeError: 'list'
object has no attribute '__aiter__'` under async."""

from __future__ import annotations

from typing import Any, AsyncIterator, List, Optional

import pytest
from servers import HTTPServer
from test_http2 import ORIGIN, URL, FakeServer

import httpcore
from httpcore.http2 import AsyncHTTP2Connection, HTTP2Connection


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Recording(httpcore.MockStream):
    """A mock stream that keeps what was written to it."""

    def __init__(self, buffer: List[bytes]) -> None:
        super().__init__(buffer)
        self.data = b""

    def write(self, buffer: bytes, timeout: Optional[float] = None) -> None:
        self.data += buffer


class AsyncRecording(httpcore.AsyncMockStream):
    def __init__(self, buffer: List[bytes]) -> None:
        super().__init__(buffer)
        self.data = b""

    async def write(self, buffer: bytes, timeout: Optional[float] = None) -> None:
        self.data += buffer


def sync_only() -> List[object]:
    return [[b"ab"], bytearray(b"ab"), iter([b"ab"]), (chunk for chunk in [b"ab"])]


async def _agen() -> AsyncIterator[bytes]:
    yield b"ab"


def async_message(body: object) -> str:
    return (
        "request body must be bytes or an async iterable of bytes on an async connection, "
        f"but got {type(body).__name__}."
    )


def post(url: str, body: Any) -> httpcore.Request:
    host = url.split("/")[2].encode()
    headers = [(b"Host", host), (b"Content-Length", b"2")]
    return httpcore.Request("POST", url, headers=headers, content=body)


@pytest.mark.anyio
async def test_an_async_pool_refuses_a_sync_body_before_connecting(server: HTTPServer) -> None:
    async with httpcore.AsyncConnectionPool() as pool:
        for body in sync_only():
            with pytest.raises(TypeError) as info:
                await pool.handle_async_request(post(server.url + "/echo", body))
            assert str(info.value) == async_message(body)
            assert pool.connections == []  # nothing connected, nothing left
        response = await pool.request("POST", server.url + "/echo", content=b"ab")
        assert response.content == b"ab"


def test_a_sync_pool_refuses_an_async_body_before_connecting(server: HTTPServer) -> None:
    body = _agen()
    with httpcore.ConnectionPool() as pool:
        with pytest.raises(TypeError) as info:
            pool.handle_request(post(server.url + "/echo", body))
        assert str(info.value) == (
            "request body must be bytes or an iterable of bytes on a sync connection, "
            "but got async_generator."
        )
        assert pool.connections == []
        response = pool.request("POST", server.url + "/echo", content=b"ab")
        assert response.content == b"ab"


class Chunks:
    """A body iterable by the sequence protocol alone (no `__iter__`), as `iter()` takes it
    and as memoryview is before Python 3.10."""

    def __getitem__(self, index: int) -> bytes:
        if index >= 2:
            raise IndexError(index)
        return b"ab"[index : index + 1]


def test_a_sync_pool_sends_a_body_iterable_by_the_sequence_protocol(server: HTTPServer) -> None:
    with httpcore.ConnectionPool() as pool:
        response = pool.handle_request(post(server.url + "/echo", Chunks()))
        try:
            assert response.read() == b"ab"
        finally:
            response.close()


@pytest.mark.anyio
async def test_an_async_http11_connection_refuses_it_before_writing() -> None:
    origin = httpcore.Origin(b"http", b"example.com", 80)
    stream = AsyncRecording([b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"])
    async with httpcore.AsyncHTTP11Connection(origin, stream) as conn:
        for body in sync_only():
            with pytest.raises(TypeError) as info:
                await conn.handle_async_request(post("http://example.com/", body))
            assert str(info.value) == async_message(body)
            assert stream.data == b"" and not conn.is_closed()
        response = await conn.request("GET", "http://example.com/")
        assert response.content == b"ok"
        assert conn.is_idle()


@pytest.mark.anyio
async def test_an_async_http2_connection_refuses_it_before_writing() -> None:
    stream = AsyncRecording(FakeServer().respond(1).chunks)
    async with AsyncHTTP2Connection(ORIGIN, stream) as conn:
        for body in sync_only():
            with pytest.raises(TypeError) as info:
                await conn.handle_async_request(post(URL, body))
            assert str(info.value) == async_message(body)
            assert stream.data == b"" and conn.is_idle()
        response = await conn.request("GET", URL)
        assert response.content == b"Hello, world!"


def test_a_sync_http2_connection_refuses_an_async_body_before_writing() -> None:
    stream = Recording(FakeServer().respond(1).chunks)
    body = _agen()
    with HTTP2Connection(ORIGIN, stream) as conn:
        with pytest.raises(TypeError, match="but got async_generator"):
            conn.handle_request(post(URL, body))
        assert stream.data == b"" and conn.is_idle()
        assert conn.request("GET", URL).content == b"Hello, world!"
