"""HTTP11Connection / AsyncHTTP11Connection over mock streams (API.md §4.3, §3.3, §12.5)."""

from __future__ import annotations

import helpers
import pytest
from helpers import origin

import httpcore

pytestmark = pytest.mark.anyio

# The harness fixtures (sync, asyncio and trio flavours).
anyio_backend, flavour, api = helpers.anyio_backend, helpers.flavour, helpers.api

HELLO = [
    b"HTTP/1.1 200 OK\r\n",
    b"Content-Type: plain/text\r\n",
    b"Content-Length: 13\r\n",
    b"\r\n",
    b"Hello, world!",
]
ORIGIN = "'https://example.com:443'"


async def test_request_response_and_keepalive(api):
    stream = api.mock_stream(HELLO + HELLO)
    conn = api.HTTP11Connection(origin(), stream)
    name = api.name("HTTP11Connection")
    assert repr(conn) == f"<{name} [{ORIGIN}, NEW, Request Count: 0]>"
    assert not conn.is_available()  # NEW is not available
    assert not conn.is_idle() and not conn.is_closed() and not conn.has_expired()

    async with conn as c:
        response = await c.request("GET", "https://example.com/")
        assert response.status == 200
        assert response.headers == [(b"Content-Type", b"plain/text"), (b"Content-Length", b"13")]
        assert response.content == b"Hello, world!"
        assert response.extensions["http_version"] == b"HTTP/1.1"
        assert response.extensions["reason_phrase"] == b"OK"
        assert response.extensions["network_stream"] is stream
        assert stream.data == b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"

        assert conn.is_available() and conn.is_idle()
        assert not conn.is_closed() and not conn.has_expired()
        assert conn.info() == f"{ORIGIN}, HTTP/1.1, IDLE, Request Count: 1"
        assert repr(conn) == f"<{name} [{ORIGIN}, IDLE, Request Count: 1]>"

        response = await c.request("GET", "https://example.com/")
        assert response.content == b"Hello, world!"
        assert repr(conn) == f"<{name} [{ORIGIN}, IDLE, Request Count: 2]>"
    assert conn.is_closed() and stream.closed
    assert repr(conn) == f"<{name} [{ORIGIN}, CLOSED, Request Count: 2]>"


async def test_request_with_content_length_body_is_byte_exact(api):
    stream = api.mock_stream(HELLO)
    conn = api.HTTP11Connection(origin("http://example.com:8080"), stream)
    await conn.request("POST", "http://example.com:8080/p?q", content=b"abc")
    assert stream.data == (
        b"POST /p?q HTTP/1.1\r\nHost: example.com:8080\r\nContent-Length: 3\r\n\r\nabc"
    )


async def test_chunked_request_body_from_iterator(api):
    stream = api.mock_stream(HELLO)
    conn = api.HTTP11Connection(origin(), stream)
    response = await conn.request(
        "POST", "https://example.com/upload", content=api.body([b"abc", b"", b"defgh"])
    )
    assert response.status == 200
    assert stream.data == (
        b"POST /upload HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n5\r\ndefgh\r\n0\r\n\r\n"
    )
    assert conn.is_idle()


async def test_streamed_chunked_response(api):
    stream = api.mock_stream(
        [
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"5\r\nHello\r\n",
            b"8\r\n, world!\r\n",
            b"0\r\n\r\n",
        ]
    )
    conn = api.HTTP11Connection(origin(), stream)
    async with conn.stream("GET", "https://example.com/") as response:
        chunks = [chunk async for chunk in response.aiter_stream()]
    assert b"".join(chunks) == b"Hello, world!"
    assert conn.is_idle()


async def test_connection_close_header_closes(api):
    stream = api.mock_stream(
        [b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi"]
    )
    conn = api.HTTP11Connection(origin(), stream)
    response = await conn.request("GET", "https://example.com/")
    assert response.content == b"hi"
    assert conn.is_closed() and stream.closed
    assert not conn.is_available()


async def test_connection_close_request_header_closes(api):
    conn = api.HTTP11Connection(origin(), api.mock_stream(HELLO))
    response = await conn.request("GET", "https://example.com/", headers={"Connection": "close"})
    assert response.content == b"Hello, world!"
    assert conn.is_closed()


async def test_http10_close_delimited_response(api):
    stream = api.mock_stream([b"HTTP/1.0 200 OK\r\nContent-Type: plain/text\r\n\r\n", b"Hello"])
    conn = api.HTTP11Connection(origin(), stream)
    response = await conn.request("GET", "https://example.com/")
    assert response.content == b"Hello"
    assert response.extensions["http_version"] == b"HTTP/1.0"
    assert conn.is_closed() and stream.closed


@pytest.mark.parametrize("interim", [b"", b"HTTP/1.1 100 Continue\r\n\r\n"])
async def test_http11_body_without_length_ends_the_connection(api, interim):
    """An HTTP/1.1 response with neither Content-Length nor chunked framing ends at EOF. h11
    counts both sides DONE then, as for a reusable exchange; the server has closed, so the
    connection is closed, not put back IDLE for a request that would meet the EOF."""
    stream = api.mock_stream([interim + b"HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\nHel", b"lo"])
    conn = api.HTTP11Connection(origin(), stream)
    response = await conn.request("GET", "https://example.com/")
    assert response.content == b"Hello"
    assert response.extensions["http_version"] == b"HTTP/1.1"
    assert conn.is_closed() and stream.closed
    with pytest.raises(httpcore.ConnectionNotAvailable):
        await conn.request("GET", "https://example.com/")


async def test_partial_read_then_close(api):
    stream = api.mock_stream(
        [b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n", b"Hello, ", b"world!"]
    )
    conn = api.HTTP11Connection(origin(), stream)
    async with conn.stream("GET", "https://example.com/") as response:
        async for chunk in response.aiter_stream():
            assert chunk == b"Hello, "
            break
    assert conn.is_closed() and stream.closed
    assert repr(conn) == f"<{api.name('HTTP11Connection')} [{ORIGIN}, CLOSED, Request Count: 1]>"


async def test_interim_responses_are_skipped(api):
    stream = api.mock_stream(
        [
            b"HTTP/1.1 100 Continue\r\n\r\n",
            b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n",
            *HELLO,
        ]
    )
    conn = api.HTTP11Connection(origin(), stream)
    response = await conn.request("GET", "https://example.com/")
    assert response.status == 200
    assert response.content == b"Hello, world!"
    assert conn.is_idle()


async def test_upgrade_101_network_stream(api):
    stream = api.mock_stream(
        [
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: custom\r\n\r\n"
            b"foobar",
            b"baz",
        ]
    )
    conn = api.HTTP11Connection(origin(), stream)
    headers = {"Connection": "upgrade", "Upgrade": "custom"}
    async with conn.stream("GET", "https://example.com/", headers=headers) as response:
        assert response.status == 101
        network_stream = response.extensions["network_stream"]
        assert type(network_stream).__name__ == api.name("HTTP11UpgradeStream")
        assert await api.aw(network_stream.read(3)) == b"foo"
        assert await api.aw(network_stream.read(3)) == b"bar"
        assert await api.aw(network_stream.read(3)) == b"baz"
        assert await api.aw(network_stream.read(3)) == b""
        await api.aw(network_stream.write(b"ping"))
        assert stream.written[-1] == b"ping"
        assert network_stream.get_extra_info("ssl_object") is not None
        assert await api.aw(network_stream.start_tls(None, "example.com")) is stream
    assert conn.is_closed() and stream.closed


async def test_upgrade_stream_without_buffered_bytes(api):
    stream = api.mock_stream(
        [
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: custom\r\n\r\n",
            b"raw",
        ]
    )
    conn = api.HTTP11Connection(origin(), stream)
    headers = {"Connection": "upgrade", "Upgrade": "custom"}
    async with conn.stream("GET", "https://example.com/", headers=headers) as response:
        assert await api.aw(response.extensions["network_stream"].read(100)) == b"raw"


async def test_connect_2xx_gives_upgrade_stream(api):
    stream = api.mock_stream([b"HTTP/1.1 200 Connection established\r\n\r\nhello"])
    conn = api.HTTP11Connection(origin(), stream)
    url = httpcore.URL(scheme="https", host="example.com", port=443, target="example.com:443")
    async with conn.stream("CONNECT", url) as response:
        assert response.status == 200
        network_stream = response.extensions["network_stream"]
        assert type(network_stream).__name__ == api.name("HTTP11UpgradeStream")
        assert await api.aw(network_stream.read(1024)) == b"hello"
    assert stream.data.startswith(b"CONNECT example.com:443 HTTP/1.1\r\n")
    assert conn.is_closed()


async def test_connect_non_2xx_is_a_plain_response(api):
    stream = api.mock_stream([b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"])
    conn = api.HTTP11Connection(origin(), stream)
    url = httpcore.URL(scheme="https", host="example.com", port=443, target="example.com:443")
    async with conn.stream("CONNECT", url) as response:
        assert response.extensions["network_stream"] is stream


@pytest.mark.parametrize("iterator", [False, True], ids=["bytes", "iterator"])
async def test_early_response_while_sending_body(api, iterator):
    stream = api.mock_stream(
        [b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n"], write_error=True
    )
    conn = api.HTTP11Connection(origin(), stream)
    content = api.body([b"x" * 1000]) if iterator else b"x" * 1000
    response = await conn.request("POST", "https://example.com/", content=content)
    assert response.status == 413
    assert response.extensions["reason_phrase"] == b"Payload Too Large"
    # The request was never completed: the connection cannot be reused.
    assert conn.is_closed()


async def test_write_error_and_no_response(api):
    conn = api.HTTP11Connection(origin(), api.mock_stream([], write_error=True))
    with pytest.raises(httpcore.RemoteProtocolError) as exc_info:
        await conn.request("POST", "https://example.com/", content=b"x")
    assert str(exc_info.value) == "Server disconnected without sending a response."
    assert conn.is_closed()


async def test_eof_before_response(api):
    stream = api.mock_stream([])
    conn = api.HTTP11Connection(origin(), stream)
    with pytest.raises(httpcore.RemoteProtocolError) as exc_info:
        await conn.request("GET", "https://example.com/")
    assert str(exc_info.value) == "Server disconnected without sending a response."
    assert conn.is_closed() and stream.closed


@pytest.mark.parametrize(
    "data",
    [
        [b"HTTP/1.1 WHAT\r\n\r\n"],
        [b"Wait, this isn't valid HTTP!", b""],
        [b"HTTP/1.1 200 OK\r\nthis is not a header\r\n\r\n"],
        [b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n"],
    ],
    ids=["status-line", "garbage", "header-line", "content-length"],
)
async def test_malformed_response_head(api, data):
    conn = api.HTTP11Connection(origin(), api.mock_stream(data))
    with pytest.raises(httpcore.RemoteProtocolError):
        await conn.request("GET", "https://example.com/")
    assert conn.is_closed()


async def test_truncated_body(api):
    conn = api.HTTP11Connection(
        origin(), api.mock_stream([b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n", b"Hello, wor"])
    )
    with pytest.raises(httpcore.RemoteProtocolError) as exc_info:
        await conn.request("GET", "https://example.com/")
    assert str(exc_info.value) == (
        "peer closed connection without sending complete message body "
        "(received 10 bytes, expected 13)"
    )
    assert conn.is_closed()


async def test_oversized_response_headers(api):
    big = b"X-Big: " + b"a" * 60_000 + b"\r\n"
    conn = api.HTTP11Connection(
        origin(), api.mock_stream([b"HTTP/1.1 200 OK\r\n", big, big, b"\r\n"])
    )
    with pytest.raises(httpcore.RemoteProtocolError):
        await conn.request("GET", "https://example.com/")
    assert conn.is_closed()


async def test_large_headers_under_the_limit(api):
    big = b"X-Big: " + b"a" * 40_000 + b"\r\n"
    conn = api.HTTP11Connection(
        origin(), api.mock_stream([b"HTTP/1.1 200 OK\r\n", big, big, b"Content-Length: 0\r\n\r\n"])
    )
    response = await conn.request("GET", "https://example.com/")
    assert response.headers[0] == (b"X-Big", b"a" * 40_000)
    assert httpcore.HTTP11Connection.MAX_INCOMPLETE_EVENT_SIZE == 102400
    assert httpcore.HTTP11Connection.READ_NUM_BYTES == 65536


async def test_illegal_header_value(api):
    conn = api.HTTP11Connection(origin(), api.mock_stream(HELLO))
    with pytest.raises(httpcore.LocalProtocolError) as exc_info:
        await conn.request("GET", "https://example.com/", headers={"Host": "\0"})
    assert str(exc_info.value) == "Illegal header value b'\\x00'"
    assert conn.is_closed()


async def test_missing_host_header(api):
    conn = api.HTTP11Connection(origin(), api.mock_stream(HELLO))
    request = httpcore.Request("GET", "https://example.com/")
    with pytest.raises(httpcore.LocalProtocolError) as exc_info:
        await conn.handle_async_request(request)
    assert str(exc_info.value) == "Missing mandatory Host: header"


@pytest.mark.parametrize("iterator", [False, True], ids=["bytes", "iterator"])
async def test_too_much_data_for_content_length(api, iterator):
    conn = api.HTTP11Connection(origin(), api.mock_stream(HELLO))
    content = api.body([b"abc"]) if iterator else b"abc"
    headers = [(b"Host", b"example.com"), (b"Content-Length", b"2")]
    request = httpcore.Request("POST", "https://example.com/", headers=headers, content=content)
    with pytest.raises(httpcore.LocalProtocolError) as exc_info:
        await conn.handle_async_request(request)
    assert str(exc_info.value) == "Too much data for declared Content-Length"
    assert conn.is_closed()


async def test_too_little_data_for_content_length(api):
    conn = api.HTTP11Connection(origin(), api.mock_stream(HELLO))
    headers = [(b"Host", b"example.com"), (b"Content-Length", b"5")]
    content = api.body([b"abc"])
    request = httpcore.Request("POST", "https://example.com/", headers=headers, content=content)
    with pytest.raises(httpcore.LocalProtocolError):
        await conn.handle_async_request(request)
    assert conn.is_closed()


async def test_origin_mismatch(api):
    conn = api.HTTP11Connection(origin(), api.mock_stream(HELLO))
    with pytest.raises(RuntimeError) as exc_info:
        await conn.request("GET", "https://other.com/")
    assert str(exc_info.value) == (
        "Attempted to send request to https://other.com:443 on connection to "
        "https://example.com:443"
    )
    assert repr(conn) == f"<{api.name('HTTP11Connection')} [{ORIGIN}, NEW, Request Count: 0]>"
    assert conn.can_handle_request(origin()) and not conn.can_handle_request(
        origin("https://other.com:443")
    )


async def test_busy_connection_is_not_available(api):
    conn = api.HTTP11Connection(origin(), api.mock_stream(HELLO))
    async with conn.stream("GET", "https://example.com/") as response:
        assert repr(conn) == (
            f"<{api.name('HTTP11Connection')} [{ORIGIN}, ACTIVE, Request Count: 1]>"
        )
        assert not conn.is_available() and not conn.is_idle()
        with pytest.raises(httpcore.ConnectionNotAvailable):
            await conn.request("GET", "https://example.com/")
        assert await response.aread() == b"Hello, world!"
    assert conn.is_idle()
    # The refused request did not count.
    assert conn.info() == f"{ORIGIN}, HTTP/1.1, IDLE, Request Count: 1"


async def test_closed_connection_is_not_available(api):
    conn = api.HTTP11Connection(origin(), api.mock_stream(HELLO))
    await conn.aclose()
    with pytest.raises(httpcore.ConnectionNotAvailable):
        await conn.request("GET", "https://example.com/")


async def test_keepalive_expiry(api):
    conn = api.HTTP11Connection(origin(), api.mock_stream(HELLO), keepalive_expiry=5.0)
    await conn.request("GET", "https://example.com/")
    assert conn.is_idle() and not conn.has_expired()
    conn = api.HTTP11Connection(origin(), api.mock_stream(HELLO), keepalive_expiry=-1.0)
    await conn.request("GET", "https://example.com/")
    assert conn.has_expired()


async def test_idle_connection_readable_has_expired(api):
    conn = api.HTTP11Connection(origin(), api.mock_stream(HELLO, readable_when_drained=True))
    await conn.request("GET", "https://example.com/")
    assert conn.is_idle()
    assert conn.has_expired() is True


async def test_request_target_extension(api):
    stream = api.mock_stream(HELLO)
    conn = api.HTTP11Connection(origin(), stream)
    await conn.request("GET", "https://example.com/", extensions={"target": b"/unescaped|path"})
    assert stream.data.startswith(b"GET /unescaped|path HTTP/1.1\r\n")


async def test_options_star_request(api):
    stream = api.mock_stream(HELLO)
    conn = api.HTTP11Connection(origin(), stream)
    url = httpcore.URL(scheme="https", host="example.com", target="*")
    await conn.request("OPTIONS", url)
    assert stream.data == b"OPTIONS * HTTP/1.1\r\nHost: example.com\r\n\r\n"


async def test_error_while_reading_body_closes(api):
    class Boom(Exception):
        pass

    stream = api.mock_stream(HELLO)
    conn = api.HTTP11Connection(origin(), stream)
    with pytest.raises(Boom):
        async with conn.stream("GET", "https://example.com/") as response:
            async for _chunk in response.aiter_stream():
                raise Boom()
    assert conn.is_closed()


async def test_read_and_write_timeouts_are_passed_to_the_stream(api):
    stream = api.mock_stream(HELLO)
    conn = api.HTTP11Connection(origin(), stream)
    extensions = {"timeout": {"read": 1.5, "write": 2.5, "connect": 9.0, "pool": 9.0}}
    await conn.request("POST", "https://example.com/", content=b"x", extensions=extensions)
    kinds = {kind: timeout for kind, timeout in stream.timeouts}
    assert kinds == {"read": 1.5, "write": 2.5}
    assert len(stream.timeouts) >= 2
