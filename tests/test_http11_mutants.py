"""`HTTP11Connection` behaviours that mutation testing (scripts/mutation) found untested:
read sizes of large bodies, how a request body is written, what a CONNECT answer hands back,
a failing trace callback at the response's close, a response head after blank lines, bytes
past a response, and where h11 takes over a chunked body."""

from __future__ import annotations

import socket
from typing import Any, Callable, List

import helpers
import pytest
from servers import RawServer

import httpcore

pytestmark = pytest.mark.anyio

anyio_backend, flavour, api = helpers.anyio_backend, helpers.flavour, helpers.api

ORIGIN = httpcore.Origin(b"http", b"example.com", 80)
URL = "http://example.com/"
MIB = 1024 * 1024


class _Sized:
    """Reads return as many bytes as asked for (a socket with plenty waiting); the sizes asked
    for are recorded."""

    def _setup(self, data: bytes) -> None:
        self.data = data
        self.sizes: List[int] = []

    def _read(self, max_bytes: int) -> bytes:
        self.sizes.append(max_bytes)
        chunk, self.data = self.data[:max_bytes], self.data[max_bytes:]
        return chunk


class SizedStream(_Sized, httpcore.MockStream):
    def __init__(self, data: bytes) -> None:
        super().__init__([])
        self._setup(data)

    def read(self, max_bytes: int, timeout: Any = None) -> bytes:
        return self._read(max_bytes)


class AsyncSizedStream(_Sized, httpcore.AsyncMockStream):
    def __init__(self, data: bytes) -> None:
        super().__init__([])
        self._setup(data)

    async def read(self, max_bytes: int, timeout: Any = None) -> bytes:
        return self._read(max_bytes)


BODY = bytes(range(256)) * (4 * MIB // 256)
DIRECT = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY
CHUNKED = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n" % len(BODY)
    + BODY
    + b"\r\n0\r\n\r\n"
)


@pytest.mark.parametrize("answer", [DIRECT, CHUNKED], ids=["content-length", "chunked"])
async def test_body_reads_double_while_full_up_to_256_kib(api: Any, answer: bytes) -> None:
    stream = (AsyncSizedStream if api.is_async else SizedStream)(answer)
    async with api.HTTP11Connection(ORIGIN, stream) as connection:
        response = await connection.request("GET", URL)
        assert response.content == BODY
    sizes = stream.sizes
    assert sizes[0] == 65536
    # Each read is the previous one or its double (every read came back full), but the last,
    # which asks for what is left of the body...
    steady = sizes[:-1]
    assert all(b in (a, 2 * a) for a, b in zip(steady, steady[1:])), sizes
    assert sizes[-1] <= sizes[-2]
    # ...up to 256 KiB and never beyond.
    assert max(sizes) == 256 * 1024, sizes


@pytest.mark.parametrize(("size", "writes"), [(65536, 1), (65537, 2)], ids=["joined", "apart"])
async def test_an_in_memory_body_is_joined_to_its_head_up_to_64_kib(
    api: Any, size: int, writes: int
) -> None:
    stream = api.mock_stream([b"HTTP/1.1 204 No Content\r\n\r\n"])
    body = b"x" * size
    async with api.HTTP11Connection(ORIGIN, stream) as connection:
        assert (await connection.request("POST", URL, content=body)).status == 204
    assert len(stream.written) == writes
    assert stream.written[-1].endswith(body)
    assert stream.data.startswith(b"POST / HTTP/1.1\r\nHost: example.com\r\n")


@pytest.mark.parametrize(("status", "tunnel"), [(200, True), (299, True), (300, False)])
async def test_only_a_2xx_answer_to_connect_hands_over_a_tunnel_stream(
    api: Any, status: int, tunnel: bool
) -> None:
    answer = b"HTTP/1.1 %d X\r\nContent-Length: 0\r\n\r\n" % status
    stream = api.mock_stream([answer])
    async with api.HTTP11Connection(ORIGIN, stream) as connection:
        target = httpcore.URL(scheme=b"http", host=b"example.com", target=b"example.com:443")
        response = await connection.request(
            "CONNECT", target, headers=[(b"Host", b"example.com:443")]
        )
        assert response.status == status
        handed = response.extensions["network_stream"]
        # A tunnel is a wrapper (bytes read past the head come first); otherwise the
        # connection's own stream.
        assert (handed is not stream) is tunnel


class TraceFailed(Exception):
    pass


async def test_a_failing_trace_at_response_close_still_closes_the_connection(api: Any) -> None:
    def callback(name: str, info: Any) -> None:
        if name == "http11.response_closed.started":
            raise TraceFailed()

    stream = api.mock_stream([b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"])
    connection = api.HTTP11Connection(ORIGIN, stream)
    with pytest.raises(TraceFailed):
        await connection.request("GET", URL, extensions={"trace": api.trace(callback)})
    # Never left ACTIVE for good: closed, not reusable.
    assert connection.is_closed()
    assert not connection.is_available()
    assert stream.closed


async def test_a_response_head_after_blank_lines_is_answered_without_waiting(
    api: Any, raw_server: Callable[..., RawServer]
) -> None:
    """The head starts with an empty line: the fast parser declines at once (h11 decides),
    rather than waiting for more bytes that never come (the server keeps the connection)."""
    done = []

    def handler(conn: socket.socket, server: RawServer) -> None:
        server.read_request(conn)
        conn.sendall(b"\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        # Keep the connection open until the client is done.
        conn.settimeout(10)
        try:
            conn.recv(1)
        except OSError:
            pass
        done.append(True)

    srv = raw_server(handler)
    async with api.ConnectionPool() as pool:
        with pytest.raises((httpcore.RemoteProtocolError, httpcore.ReadTimeout)) as info:
            await pool.request("GET", srv.url + "/", extensions={"timeout": {"read": 3}})
        assert isinstance(info.value, httpcore.RemoteProtocolError)


async def test_a_response_head_split_across_reads_is_not_parsed_early(api: Any) -> None:
    # The first read ends inside the head (one chunk per read: a TCP segment boundary).
    stream = api.mock_stream([b"HTTP/1.1 200 OK\r\nContent-Length: 12", b"\r\n\r\nHello world!"])
    async with api.HTTP11Connection(ORIGIN, stream) as connection:
        response = await connection.request("GET", URL)
        assert response.headers == [(b"Content-Length", b"12")]
        assert response.content == b"Hello world!"


def _traced(api: Any) -> Any:
    return {"trace": api.trace(lambda name, info: None)}


async def test_a_traced_body_left_unread_closes_cleanly(api: Any) -> None:
    stream = api.mock_stream([b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n", b"ab", b"cd", b"ef"])
    connection = api.HTTP11Connection(ORIGIN, stream)
    async with connection.stream("GET", URL, extensions=_traced(api)) as response:
        async for chunk in response.aiter_stream():
            assert chunk == b"ab"
            break
    # Abandoned mid-body: the connection can't be reused, and closing said nothing.
    assert connection.is_closed()
    assert stream.closed


async def test_a_traced_body_cut_short_closes_the_connection(api: Any) -> None:
    stream = api.mock_stream([b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n", b"ab"])
    connection = api.HTTP11Connection(ORIGIN, stream)
    async with connection.stream("GET", URL, extensions=_traced(api)) as response:
        with pytest.raises(httpcore.RemoteProtocolError):
            await response.aread()
        # Closed at the error already, before the response's own close.
        assert connection.is_closed()
    assert stream.closed


async def test_bytes_past_the_body_make_the_connection_unusable(api: Any) -> None:
    # More than Content-Length arrived with the head: the connection is out of step.
    stream = api.mock_stream([b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA"])
    connection = api.HTTP11Connection(ORIGIN, stream)
    assert (await connection.request("GET", URL)).content == b"ok"
    assert connection.is_closed()
    assert stream.closed


@pytest.mark.parametrize(
    ("method", "answer"),
    [
        ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nEXTRA"),
        ("GET", b"HTTP/1.1 204 No Content\r\n\r\nEXTRA"),
        ("GET", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;x=y\r\nok\r\n0\r\n\r\nX"),
    ],
    ids=["head", "204", "chunked-through-h11"],
)
async def test_bytes_past_a_response_h11_read_make_the_connection_unusable(
    api: Any, method: str, answer: bytes
) -> None:
    # Left in h11's buffer, they would answer a later request whose response h11 reads (the
    # fast path reads the socket instead, and skips them).
    stream = api.mock_stream([answer])
    connection = api.HTTP11Connection(ORIGIN, stream)
    await connection.request(method, URL)
    assert connection.is_closed()
    assert stream.closed


def test_a_chunked_body_is_decoded_without_h11_until_something_only_h11_reads() -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    plain = httpcore.HTTP11Connection(ORIGIN, httpcore.MockStream([head + b"2\r\nok\r\n0\r\n\r\n"]))
    assert plain.request("GET", URL).content == b"ok"
    assert plain._h11_state is None and plain.is_idle()
    # A chunk extension: h11 takes over at that chunk, and the connection stays reusable.
    later = b"2\r\nok\r\n3;x=y\r\n!!!\r\n0\r\n\r\n"
    handed = httpcore.HTTP11Connection(ORIGIN, httpcore.MockStream([head + later]))
    assert handed.request("GET", URL).content == b"ok!!!"
    assert handed._h11_state is not None and handed.is_idle()


def test_data_before_a_malformed_chunk_end_is_passed_on_once() -> None:
    # h11 checks the bytes after the chunk's data behind a stand-in chunk, whose data is not
    # the body's.
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    connection = httpcore.HTTP11Connection(ORIGIN, httpcore.MockStream([head + b"2\r\nok", b"XY"]))
    received: List[bytes] = []
    with pytest.raises(httpcore.RemoteProtocolError, match=r"^malformed chunk footer"):
        with connection.stream("GET", URL) as response:
            for chunk in response.iter_stream():
                received.append(chunk)
    assert received == [b"ok"]
    assert connection.is_closed()
