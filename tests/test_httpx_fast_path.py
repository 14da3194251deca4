"""Requests exactly as httpx 0.28 builds them take the HTTP/1.1 fast paths (issue 11).

httpx hands the pool its own request stream (`httpx.ByteStream` for an in-memory body, empty for
a GET), its default header set, and reads the response by iterating `Response.stream` and then
closing it. These requests go out in one write (head and body joined; a large body as a second
write, not copied), and give what h11 gives: the same bytes on the wire, the same response, the
same keep-alive decision. A body that is not in memory (a generator) still goes through h11.
"""

from __future__ import annotations

from typing import Any, List

import h11
import helpers
import httpx
import pytest
from helpers import origin

import httpcore

pytestmark = pytest.mark.anyio

anyio_backend, flavour, api = helpers.anyio_backend, helpers.flavour, helpers.api

URL = "http://example.com/path?q=1"
RESPONSE = [
    b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/plain\r\n",
    b"Content-Length: 13\r\nConnection: keep-alive\r\n\r\nHello, world!",
]
RESPONSE_HEADERS = [
    (b"Server", b"nginx"),
    (b"Content-Type", b"text/plain"),
    (b"Content-Length", b"13"),
    (b"Connection", b"keep-alive"),
]


def as_httpcore(request: httpx.Request) -> httpcore.Request:
    """The request httpx's transport hands to the pool (httpx/_transports/default.py)."""
    return httpcore.Request(
        method=request.method,
        url=httpcore.URL(
            scheme=request.url.raw_scheme,
            host=request.url.raw_host,
            port=request.url.port,
            target=request.url.raw_path,
        ),
        headers=request.headers.raw,
        content=request.stream,
        extensions=request.extensions,
    )


def httpx_request(method: str, url: str = URL, **kwargs: Any) -> httpcore.Request:
    with httpx.Client() as client:
        return as_httpcore(client.build_request(method, url, **kwargs))


def h11_bytes(request: httpcore.Request, chunks: List[bytes]) -> bytes:
    """What h11 writes for `request` with a body sent as `chunks`."""
    conn = h11.Connection(h11.CLIENT)
    data = conn.send(
        h11.Request(method=request.method, target=request.url.target, headers=request.headers)
    )
    for chunk in chunks:
        data += conn.send(h11.Data(data=chunk))
    data += conn.send(h11.EndOfMessage())
    return data


@pytest.fixture
def h11_sends(monkeypatch: pytest.MonkeyPatch) -> List[Any]:
    """The events an h11 client was asked to serialize (the fast path asks it for none).

    Server-side h11 (the test servers, in a background thread) is left out.
    """
    sent: List[Any] = []
    send = h11.Connection.send

    def recording_send(self: h11.Connection, event: Any) -> Any:
        if self.our_role is h11.CLIENT:
            sent.append(event)
        return send(self, event)

    monkeypatch.setattr(h11.Connection, "send", recording_send)
    return sent


async def read_from_outside(api: Any, response: Any) -> bytes:
    """Iterate `response.stream` and close it, as httpx does (not through `read()`)."""
    stream = response.stream
    chunks = []
    if api.is_async:
        async for chunk in stream:
            chunks.append(chunk)
        await stream.aclose()
    else:
        for chunk in stream:
            chunks.append(chunk)
        stream.close()
    return b"".join(chunks)


def test_httpx_builds_the_request_shapes_these_tests_assume() -> None:
    get = httpx_request("GET")
    assert type(get.stream) is httpx.ByteStream
    assert [name for name, _ in get.headers] == [
        b"Host",
        b"Accept",
        b"Accept-Encoding",
        b"Connection",
        b"User-Agent",
    ]
    post = httpx_request("POST", content=b"abc")
    assert type(post.stream) is httpx.ByteStream
    assert (b"Content-Length", b"3") in post.headers


@pytest.mark.parametrize("content", [None, b"", b"abc", b"x" * 65536])
async def test_small_httpx_request_is_one_write_of_what_h11_writes(api, content, h11_sends):
    method = "GET" if content is None else "POST"
    request = httpx_request(method, content=content)
    expected = h11_bytes(request, [content] if content else [])
    stream = api.mock_stream(RESPONSE + RESPONSE)
    async with api.HTTP11Connection(origin("http://example.com:80"), stream) as conn:
        del h11_sends[:]
        response = await conn.handle_async_request(request)
        assert h11_sends == []  # serialized without h11
        assert len(stream.written) == 1
        assert stream.written[0] == expected

        assert response.status == 200
        assert response.headers == RESPONSE_HEADERS
        assert response.extensions["http_version"] == b"HTTP/1.1"
        assert await read_from_outside(api, response) == b"Hello, world!"
        assert conn.is_idle()

        # Kept alive: the next request of the same shape goes out on the same connection.
        response = await conn.handle_async_request(httpx_request(method, content=content))
        assert await read_from_outside(api, response) == b"Hello, world!"
        assert len(stream.written) == 2
        assert conn.info() == "'http://example.com:80', HTTP/1.1, IDLE, Request Count: 2"


async def test_large_httpx_body_follows_its_head_without_a_copy(api, h11_sends):
    content = bytes(range(256)) * 1024  # 256 KiB
    request = httpx_request("POST", content=content)
    stream = api.mock_stream(RESPONSE)
    async with api.HTTP11Connection(origin("http://example.com:80"), stream) as conn:
        response = await conn.handle_async_request(request)
        assert h11_sends == []
        assert await read_from_outside(api, response) == b"Hello, world!"
        assert len(stream.written) == 2
        head, body = stream.written
        assert body is content  # the caller's bytes, as they are
        assert head + body == h11_bytes(request, [content])
        assert conn.is_idle()


async def test_large_body_of_this_library_follows_its_head_too(api):
    content = b"y" * 100_000
    stream = api.mock_stream(RESPONSE)
    async with api.HTTP11Connection(origin("http://example.com:80"), stream) as conn:
        response = await conn.request("PUT", "http://example.com/u", content=content)
        assert response.content == b"Hello, world!"
        assert len(stream.written) == 2 and stream.written[1] is content
        assert conn.is_idle()


async def test_response_is_released_when_closed_not_when_read(api):
    # API.md §3.4: closing the response is what releases the connection.
    backend = api.backend(RESPONSE + RESPONSE)
    async with api.ConnectionPool(network_backend=backend) as pool:
        response = await pool.handle_async_request(httpx_request("GET"))
        stream = response.stream
        chunks = []
        if api.is_async:
            async for chunk in stream:
                chunks.append(chunk)
        else:
            chunks.extend(stream)
        assert chunks == [b"Hello, world!"]
        assert not pool.connections[0].is_idle()
        if api.is_async:
            await stream.aclose()
        else:
            stream.close()
        assert pool.connections[0].is_idle()

        response = await pool.handle_async_request(httpx_request("GET"))
        assert await read_from_outside(api, response) == b"Hello, world!"
        assert len(backend.streams) == 1 and len(backend.streams[0].written) == 2


@pytest.mark.parametrize(
    ("response_head", "request_headers", "kept_alive"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nConnection: close\r\n\r\n", {}, False),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nConnection: keep-alive\r\n\r\n", {}, True),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 13\r\n\r\n", {}, False),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n", {"Connection": "close"}, False),
    ],
)
async def test_keep_alive_decided_as_through_h11(api, response_head, request_headers, kept_alive):
    answer = [response_head + b"Hello, world!"]
    # The same exchange through h11: a request body h11 sends (an iterator).
    h11_stream = api.mock_stream(answer)
    async with api.HTTP11Connection(origin("http://example.com:80"), h11_stream) as conn:
        request = httpx_request("POST", content=api.body([b"abc"]), headers=request_headers)
        response = await conn.handle_async_request(request)
        assert await read_from_outside(api, response) == b"Hello, world!"
        expected = (response.status, response.headers, conn.is_idle(), conn.is_closed())
        assert len(h11_stream.written) > 1

    fast_stream = api.mock_stream(answer)
    async with api.HTTP11Connection(origin("http://example.com:80"), fast_stream) as conn:
        request = httpx_request("POST", content=b"abc", headers=request_headers)
        response = await conn.handle_async_request(request)
        assert await read_from_outside(api, response) == b"Hello, world!"
        assert (response.status, response.headers, conn.is_idle(), conn.is_closed()) == expected
        assert len(fast_stream.written) == 1
    assert expected[2:] == (kept_alive, not kept_alive)


async def test_generator_body_goes_through_h11_in_order(api, h11_sends):
    pulled: List[bytes] = []

    def chunks() -> Any:
        for chunk in (b"ab", b"", b"cd"):
            pulled.append(chunk)
            yield chunk

    async def achunks() -> Any:
        for chunk in chunks():
            yield chunk

    request = httpx_request("POST", content=achunks() if api.is_async else chunks())
    assert (b"Transfer-Encoding", b"chunked") in request.headers
    stream = api.mock_stream(RESPONSE)
    async with api.HTTP11Connection(origin("http://example.com:80"), stream) as conn:
        response = await conn.handle_async_request(request)
        assert await read_from_outside(api, response) == b"Hello, world!"
        assert pulled == [b"ab", b"", b"cd"]  # each chunk pulled once
        assert [type(event) for event in h11_sends] == [h11.Request] + [h11.Data] * 3 + [
            h11.EndOfMessage
        ]
        assert stream.data == h11_bytes(request, [b"ab", b"", b"cd"])
        assert stream.written[0].endswith(b"\r\n\r\n")  # the head alone first
        assert len(stream.written) > 2
        assert conn.is_idle()


async def test_subclass_of_httpx_bytestream_is_iterated(api):
    class Shouting(httpx.ByteStream):
        def __iter__(self) -> Any:
            yield self._stream.upper()

        async def __aiter__(self) -> Any:
            yield self._stream.upper()

    request = httpx_request("POST", content=b"abc")
    request.stream = Shouting(b"abc")
    stream = api.mock_stream(RESPONSE)
    async with api.HTTP11Connection(origin("http://example.com:80"), stream) as conn:
        response = await conn.handle_async_request(request)
        assert await read_from_outside(api, response) == b"Hello, world!"
    assert stream.data.endswith(b"\r\n\r\nABC")


async def test_header_h11_refuses_keeps_its_error(api):
    request = httpx_request("POST", content=b"abc")
    request.headers.append((b"X-Bad", b"a\x00b"))
    stream = api.mock_stream(RESPONSE)
    conn = api.HTTP11Connection(origin("http://example.com:80"), stream)
    with pytest.raises(httpcore.LocalProtocolError, match="Illegal header value"):
        await conn.handle_async_request(request)
    assert stream.written == []
    await conn.aclose()


# -- httpx itself over this library, against a real server -----------------------------------


async def test_httpx_client_uploads_and_reuses_its_connection(api, server):
    big = bytes(range(256)) * 4096  # 1 MiB: written after its head
    url = server.url
    if not api.is_async:
        with httpx.Client() as client:
            assert client.get(f"{url}/").content == b"Hello, world!"
            assert client.post(f"{url}/echo", content=b"small").content == b"small"
            assert client.post(f"{url}/echo", content=big).content == big
            assert client.post(f"{url}/echo", content=b"").content == b""
            with client.stream("GET", f"{url}/") as response:
                assert b"".join(response.iter_raw()) == b"Hello, world!"
            connections = client._transport._pool.connections  # type: ignore[attr-defined]
    else:
        async with httpx.AsyncClient() as aclient:
            assert (await aclient.get(f"{url}/")).content == b"Hello, world!"
            assert (await aclient.post(f"{url}/echo", content=b"small")).content == b"small"
            assert (await aclient.post(f"{url}/echo", content=big)).content == big
            assert (await aclient.post(f"{url}/echo", content=b"")).content == b""
            async with aclient.stream("GET", f"{url}/") as response:
                assert b"".join([c async for c in response.aiter_raw()]) == b"Hello, world!"
            connections = aclient._transport._pool.connections  # type: ignore[attr-defined]
    # All five over one kept-alive connection (closed since, with its client).
    assert len(connections) == 1
    assert "Request Count: 5" in connections[0].info()
