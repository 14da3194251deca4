"""HTTP/2 behaviours that mutation testing (scripts/mutation) found untested in the smaller
modules of `httpcore.http2` (`_stream`, `_receive`, `_headers`, `_writer`, `_patches`,
`_reader`, `_send`); see scripts/mutation/SURVIVORS.md.

Byte-exact cases run over the recording mock backends (`helpers.api.backend`) with server
bytes made by `test_http2.FakeServer`; every behaviour runs under sync, asyncio and trio.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, AsyncIterator, Callable, Dict, Iterator, List, Optional, Tuple

import anyio
import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import helpers
import hpack
import hyperframe.frame
import pytest
from hpack import NeverIndexedHeaderTuple
from test_http2 import FakeServer, decode_client, of_type

import httpcore

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

anyio_backend, flavour, api = helpers.anyio_backend, helpers.flavour, helpers.api

URL = "https://example.com/"


ORIGIN = httpcore.Origin(b"https", b"example.com", 443)
#: In the chunks of a `quiet_stream`: this read times out (the server went quiet for a while).
QUIET = b"<read timeout>"
#: In the chunks of a `quiet_stream`: this read fails (the connection was reset).
RESET = b"<read error>"


def scripted_read_error(buffer: List[bytes]) -> Optional[Exception]:
    """The exception a `QUIET` or `RESET` chunk at the head of `buffer` stands for."""
    if buffer and buffer[0] is QUIET:
        buffer.pop(0)
        return httpcore.ReadTimeout("timed out")
    if buffer and buffer[0] is RESET:
        buffer.pop(0)
        return httpcore.ReadError("Connection reset by peer")
    return None


class SyncQuietStream(helpers.SyncRecordingStream):
    #: Set by a test: every write from then on raises it.
    write_exception: Optional[Exception] = None
    #: Set by a test: the writes after that many raise WriteError (the server stopped reading).
    writes_before_failing: Optional[int] = None

    def write(self, buffer: bytes, timeout: Optional[float] = None) -> None:
        check_write(self)
        super().write(buffer, timeout)

    def read(self, max_bytes: int, timeout: Optional[float] = None) -> bytes:
        error = scripted_read_error(self._buffer)
        if error is not None:
            raise error
        return super().read(max_bytes, timeout)


class AsyncQuietStream(helpers.AsyncRecordingStream):
    write_exception: Optional[Exception] = None
    writes_before_failing: Optional[int] = None

    async def write(self, buffer: bytes, timeout: Optional[float] = None) -> None:
        check_write(self)
        await super().write(buffer, timeout)

    async def read(self, max_bytes: int, timeout: Optional[float] = None) -> bytes:
        error = scripted_read_error(self._buffer)
        if error is not None:
            raise error
        return await super().read(max_bytes, timeout)


def check_write(stream: Any) -> None:
    """Raise what a quiet stream's next write should raise, if anything."""
    if stream.write_exception is not None:
        raise stream.write_exception
    if stream.writes_before_failing is not None:
        if len(stream.written) >= stream.writes_before_failing:
            raise httpcore.WriteError("Connection reset by peer")


def quiet_stream(api: Any, chunks: List[bytes]) -> Any:
    """A recording mock stream (h2 by ALPN) whose read of a `QUIET` chunk times out, of a
    `RESET` chunk fails, and whose writes raise its `write_exception` once a test sets one."""
    cls = AsyncQuietStream if api.is_async else SyncQuietStream
    return cls(list(chunks), http2=True)


def h2_connection(api: Any, stream: Any) -> Any:
    """An HTTP/2 connection of the flavour over `stream` (the sync one seen through the
    async method names)."""
    connection = api.cls("HTTP2Connection")(ORIGIN, stream)
    return connection if api.is_async else helpers.SyncClient(connection)


def fail_writes(stream: Any) -> None:
    """From now on every write to the recording stream fails (the server stopped reading)."""
    stream._write_error = True


def client_events(stream: Any) -> List[Any]:
    """The h2 events a server sees from what the client wrote on `stream`."""
    return decode_client(stream.written)


# -- _stream.py ------------------------------------------------------------------------------


async def test_goaway_below_a_stream_whose_response_started_fails_it_without_retry(
    api: Any,
) -> None:
    """GOAWAY(last_stream_id=0) after the response headers of stream 1 arrived: that response
    is cut short (RemoteProtocolError), not retried elsewhere (it has begun), RFC 9113 §6.8."""
    server = FakeServer()
    server.expect(1)
    server.h2.send_headers(1, [(b":status", b"200")])
    server.h2.send_data(1, b"part")
    server.flush()
    server.goaway(last_stream_id=0)
    backend = api.backend(server.chunks, http2=True)
    async with api.ConnectionPool(network_backend=backend, http2=True) as pool:
        with pytest.raises(httpcore.RemoteProtocolError, match="ConnectionTerminated"):
            await pool.request("GET", URL)
    assert len(backend.connects) == 1  # not retried on a new connection


class SyncScriptedStream(httpcore.NetworkStream):
    """A stream whose reads return what the test feeds, when it feeds it (or time out);
    `reads_started` tells the test that a request is waiting in a read; writes raise
    `write_exception` once a test sets one."""

    write_exception: Optional[Exception] = None

    def __init__(self) -> None:
        self._chunks: queue.Queue[bytes] = queue.Queue()
        self.reads_started = 0
        self.written: List[bytes] = []

    def feed(self, data: bytes) -> None:
        self._chunks.put(data)

    def read(self, max_bytes: int, timeout: Optional[float] = None) -> bytes:
        self.reads_started += 1
        try:
            return self._chunks.get(timeout=SAFETY if timeout is None else timeout)
        except queue.Empty:
            raise httpcore.ReadTimeout("timed out") from None

    def write(self, buffer: bytes, timeout: Optional[float] = None) -> None:
        if self.write_exception is not None:
            raise self.write_exception
        self.written.append(buffer)

    def close(self) -> None:
        pass


class AsyncScriptedStream(httpcore.AsyncNetworkStream):
    """The async twin of `SyncScriptedStream`."""

    write_exception: Optional[Exception] = None

    def __init__(self) -> None:
        self._send, self._receive = anyio.create_memory_object_stream[bytes](100)
        self.reads_started = 0
        self.written: List[bytes] = []

    def feed(self, data: bytes) -> None:
        self._send.send_nowait(data)

    async def read(self, max_bytes: int, timeout: Optional[float] = None) -> bytes:
        self.reads_started += 1
        try:
            with anyio.fail_after(SAFETY if timeout is None else timeout):
                return await self._receive.receive()
        except TimeoutError:
            raise httpcore.ReadTimeout("timed out") from None

    async def write(self, buffer: bytes, timeout: Optional[float] = None) -> None:
        if self.write_exception is not None:
            raise self.write_exception
        self.written.append(buffer)

    async def aclose(self) -> None:
        self._send.close()
        self._receive.close()


SAFETY = 30.0  # no read in these tests waits longer


async def until(api: Any, condition: Callable[[], bool]) -> None:
    """Poll `condition` (up to 10 s), sleeping (sync threads) or suspending (async)."""
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "condition never met"
        await pause(api, 0.005)


async def pause(api: Any, seconds: float) -> None:
    if api.is_async:
        await anyio.sleep(seconds)
    else:
        time.sleep(seconds)


async def test_window_updates_leave_a_request_waiting_for_its_response_alone(
    api: Any,
) -> None:
    """A reads (the reader role) and waits for its response; B waits for the reader with a
    0.5 s read timeout while the server sends WINDOW_UPDATEs (for the connection and for B's
    stream) every 0.1 s. Those wake only requests waiting to send body data, so B's wait is
    not restarted by them: it times out after 0.5 s, not once the updates stop."""
    stream = AsyncScriptedStream() if api.is_async else SyncScriptedStream()
    server = FakeServer(settings={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100})
    updates = [
        hyperframe.frame.WindowUpdateFrame(stream_id, window_increment=1).serialize()
        for stream_id in (0, 3)
    ]
    results: Dict[str, Any] = {}
    async with h2_connection(api, stream) as conn:

        async def a() -> None:
            results["a"] = (await conn.request("GET", URL)).content

        async def b() -> None:
            # A read the server's SETTINGS (room for B) and is reading again.
            await until(api, lambda: stream.reads_started >= 2)
            start = time.monotonic()
            with pytest.raises(httpcore.ReadTimeout):
                await conn.request("GET", URL, extensions={"timeout": {"read": 0.5}})
            results["b"] = time.monotonic() - start

        async def feed() -> None:
            stream.feed(server.chunks.pop(0))
            await until(api, lambda: len(requests_sent(stream)) == 2)  # stream 3 is open
            deadline = time.monotonic() + 4
            sent = 0
            while "b" not in results and time.monotonic() < deadline:
                await pause(api, 0.1)
                stream.feed(updates[sent % 2])
                sent += 1
            for chunk in server.respond(1).chunks:
                stream.feed(chunk)

        await api.concurrently(a, b, feed)
    assert results["a"] == b"Hello, world!"
    assert 0.5 <= results["b"] < 2.0


def requests_sent(stream: Any) -> List[Any]:
    return of_type(client_events(stream), h2.events.RequestReceived)


def sent_data(stream: Any, stream_id: int) -> Tuple[int, bool]:
    """Bytes of DATA the client wrote on `stream_id` so far, and whether it ended the stream."""
    events = client_events(stream)
    data = of_type(events, h2.events.DataReceived)
    size = sum(len(e.data) for e in data if e.stream_id == stream_id)
    ended = any(e.stream_id == stream_id for e in of_type(events, h2.events.StreamEnded))
    return size, ended


WIDE = 2**20
UPLOAD = 100_000  # past the 65,535 bytes of a default window


@pytest.mark.parametrize(
    "opened_by", ["connection WINDOW_UPDATE", "stream WINDOW_UPDATE", "SETTINGS"]
)
async def test_an_upload_waiting_for_window_while_another_request_reads_is_woken(
    api: Any, opened_by: str
) -> None:
    """A reads (the reader role) and waits for its response; B's upload used up the window
    that `opened_by` limits and waits for the reader. The server opens that window (and answers
    A only once B's body is complete): B is woken, sends the rest, and both complete."""
    codes = h2.settings.SettingCodes
    wide_streams = opened_by == "connection WINDOW_UPDATE"
    server = FakeServer(
        settings={codes.MAX_CONCURRENT_STREAMS: 100, codes.INITIAL_WINDOW_SIZE: WIDE}
        if wide_streams
        else {codes.MAX_CONCURRENT_STREAMS: 100}
    )
    if not wide_streams:  # only the stream window limits B
        server.raw(hyperframe.frame.WindowUpdateFrame(0, window_increment=WIDE).serialize())
    if opened_by == "connection WINDOW_UPDATE":
        opener = hyperframe.frame.WindowUpdateFrame(0, window_increment=WIDE).serialize()
    elif opened_by == "stream WINDOW_UPDATE":
        opener = hyperframe.frame.WindowUpdateFrame(3, window_increment=WIDE).serialize()
    else:
        opener = hyperframe.frame.SettingsFrame(0, settings={codes.INITIAL_WINDOW_SIZE: WIDE})
        opener = opener.serialize()
    stream = AsyncScriptedStream() if api.is_async else SyncScriptedStream()
    results: Dict[str, Any] = {}
    async with h2_connection(api, stream) as conn:

        async def a() -> None:
            results["a"] = (await conn.request("GET", URL)).content

        async def b() -> None:
            await until(api, lambda: stream.reads_started >= 2)  # A is the reader
            response = await conn.request(
                "POST", URL, content=b"x" * UPLOAD, extensions={"timeout": {"read": 5.0}}
            )
            results["b"] = response.content

        async def feed() -> None:
            for chunk in server.chunks:
                stream.feed(chunk)
            server.chunks.clear()
            await until(api, lambda: sent_data(stream, 3)[0] == 65_535)
            stream.feed(opener)
            await until(api, lambda: sent_data(stream, 3) == (UPLOAD, True) or "b" in results)
            for chunk in server.respond(1, b"a").respond(3, b"b").chunks:
                stream.feed(chunk)

        await api.concurrently(a, b, feed)
    assert results == {"a": b"a", "b": b"b"}
    assert sent_data(stream, 3) == (UPLOAD, True)


# -- _receive.py -----------------------------------------------------------------------------


def big_response(server: FakeServer, stream_id: int, size: int) -> None:
    """Stream `stream_id` answered with `size` bytes of body, in one chunk after the head
    (the fake client opens the server's send windows wide enough first)."""
    server.expect(stream_id)
    client = server._client
    client.increment_flow_control_window(size)
    client.increment_flow_control_window(size, stream_id=stream_id)
    server.h2.receive_data(client.data_to_send())
    server.h2.send_headers(stream_id, [(b":status", b"200")])
    server.flush()
    max_frame = server.h2.max_outbound_frame_size
    for offset in range(0, size, max_frame):
        chunk = b"x" * min(max_frame, size - offset)
        server.h2.send_data(stream_id, chunk, end_stream=offset + len(chunk) == size)
    server.flush()


# Past half of the stream's receive window (65,535 + 2**24): h2 then asks for a
# WINDOW_UPDATE when the body is acknowledged.
BIG = 9 * 2**20


async def test_a_window_update_that_cannot_be_written_does_not_lose_the_body(api: Any) -> None:
    """The server stops reading once it has sent the response: acknowledging the body
    (WINDOW_UPDATE) fails, yet the body it sent is delivered whole."""
    server = FakeServer()
    big_response(server, 1, BIG)
    backend = api.backend(server.chunks, http2=True)
    async with api.ConnectionPool(network_backend=backend, http2=True) as pool:
        async with pool.stream("GET", URL) as response:
            [stream] = backend.streams
            fail_writes(stream)
            assert len(await response.aread()) == BIG
        # The connection cannot send any more: it is closed once its request is done.
        assert pool.connections == []


async def test_reading_the_body_gives_the_window_back(api: Any) -> None:
    """A body read past half of the receive window is acknowledged: WINDOW_UPDATE by the
    size read (so the server is never left waiting)."""
    server = FakeServer()
    big_response(server, 1, BIG)
    backend = api.backend(server.chunks, http2=True)
    async with api.ConnectionPool(network_backend=backend, http2=True) as pool:
        assert len((await pool.request("GET", URL)).content) == BIG
    [stream] = backend.streams
    events = client_events(stream)
    updates = [(e.stream_id, e.delta) for e in of_type(events, h2.events.WindowUpdated)]
    # First the windows opened with the preface and HEADERS, then the body given back (to
    # the connection: the stream has ended by then).
    assert updates[:2] == [(0, 2**24), (1, 2**24)]
    given_back = [delta for stream_id, delta in updates[2:] if stream_id == 0]
    assert given_back and sum(given_back) >= (2**24 + 65535) // 2


async def test_a_failed_body_read_writes_nothing_until_the_next_request(api: Any) -> None:
    """A read timeout in the body releases the stream without writing (an error path: the
    network may be what failed); its RST_STREAM goes out ahead of the next request."""
    server = FakeServer()
    server.expect(1)
    server.h2.send_headers(1, [(b":status", b"200")])
    server.h2.send_data(1, b"part")
    server.flush()
    chunks = [*server.chunks, QUIET]
    server.chunks = []
    server.respond(3, b"next")
    stream = quiet_stream(api, chunks + server.chunks)
    async with h2_connection(api, stream) as conn:
        async with conn.stream("GET", URL) as response:
            with pytest.raises(httpcore.ReadTimeout):
                await response.aread()
            assert of_type(client_events(stream), h2.events.StreamReset) == []
        assert of_type(client_events(stream), h2.events.StreamReset) == []
        assert (await conn.request("GET", URL)).content == b"next"
    events = client_events(stream)
    [reset] = of_type(events, h2.events.StreamReset)
    assert (reset.stream_id, reset.error_code) == (1, h2.errors.ErrorCodes.CANCEL)
    [_, second] = of_type(events, h2.events.RequestReceived)
    assert events.index(reset) < events.index(second)


async def test_a_reset_in_the_middle_of_the_body_fails_that_response_only(api: Any) -> None:
    server = FakeServer()
    server.expect(1)
    server.h2.send_headers(1, [(b":status", b"200")])
    server.h2.send_data(1, b"part")
    server.flush()
    server.reset(1).respond(3, b"next")
    backend = api.backend(server.chunks, http2=True)
    async with api.ConnectionPool(network_backend=backend, http2=True) as pool:
        async with pool.stream("GET", URL) as response:
            chunks = response.aiter_stream()
            assert await chunks.__anext__() == b"part"
            with pytest.raises(httpcore.RemoteProtocolError, match="StreamReset stream_id:1"):
                await chunks.__anext__()
        assert (await pool.request("GET", URL)).content == b"next"
    assert len(backend.connects) == 1


# -- _headers.py -----------------------------------------------------------------------------


async def sent_headers(api: Any, headers: List[Tuple[bytes, bytes]]) -> List[Any]:
    """The header list the server receives for a GET with `headers` (besides Host)."""
    backend = api.backend(FakeServer().respond(1).chunks, http2=True)
    async with api.ConnectionPool(network_backend=backend, http2=True) as pool:
        response = await pool.request("GET", URL, headers=headers)
        assert response.status == 200
    [stream] = backend.streams
    # Decoded as sent: h2's inbound checks would join and re-wrap cookies.
    config = h2.config.H2Configuration(
        client_side=False,
        header_encoding=None,
        validate_inbound_headers=False,
        normalize_inbound_headers=False,
    )
    server = h2.connection.H2Connection(config)
    server.initiate_connection()
    [request] = of_type(server.receive_data(stream.data), h2.events.RequestReceived)
    return list(request.headers)


async def test_te_is_sent_only_as_te_trailers(api: Any) -> None:
    """RFC 9113 §8.2.2: TE may be sent, with no other value than "trailers"."""
    assert (b"te", b"trailers") in await sent_headers(api, [(b"TE", b"trailers")])
    assert (b"te", b"Trailers") in await sent_headers(api, [(b"TE", b"Trailers")])
    sent = await sent_headers(api, [(b"TE", b"gzip"), (b"X-After", b"1")])
    assert [name for name, _ in sent if name in (b"te", b"x-after")] == [b"x-after"]


@pytest.mark.parametrize("name", [b":path", b":x", b""])
async def test_a_pseudo_or_empty_request_header_name_is_refused(api: Any, name: bytes) -> None:
    backend = api.backend(FakeServer().respond(1).chunks, http2=True)
    async with api.ConnectionPool(network_backend=backend, http2=True) as pool:
        with pytest.raises(httpcore.LocalProtocolError, match="Invalid HTTP/2 request header"):
            await pool.request("GET", URL, headers=[(name, b"value")])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b" lead", b"lead"),
        (b"trail\t", b"trail"),
        (b"\t both  ", b"both"),
        (b"in side", b"in side"),
    ],
)
async def test_request_header_values_lose_surrounding_whitespace(
    api: Any, value: bytes, expected: bytes
) -> None:
    sent = await sent_headers(api, [(b"X-Value", value)])
    assert (b"x-value", expected) in sent


def never_indexed(headers: List[Any]) -> List[Tuple[bytes, bytes]]:
    return [tuple(header) for header in headers if isinstance(header, NeverIndexedHeaderTuple)]


async def test_credentials_and_short_cookies_are_never_indexed(api: Any) -> None:
    """RFC 7541 §7.1.3: never in the HPACK dynamic table (a "never indexed" literal)."""
    credentials = b"Basic dXNlcjpwYXNz"
    sent = await sent_headers(
        api,
        [
            (b"Authorization", credentials),
            (b"Proxy-Authorization", credentials),
            (b"Cookie", b"c" * 19),
            (b"X-Other", b"c" * 19),
        ],
    )
    assert never_indexed(sent) == [
        (b"authorization", credentials),
        (b"proxy-authorization", credentials),
        (b"cookie", b"c" * 19),
    ]
    # A cookie of 20 bytes or more is not easily guessed: indexed like any other header.
    sent = await sent_headers(api, [(b"Cookie", b"c" * 20)])
    assert (b"cookie", b"c" * 20) in sent and never_indexed(sent) == []


def raw_response(headers: List[Tuple[bytes, bytes]]) -> List[bytes]:
    """Server chunks answering stream 1 with a header block h2 would refuse to send (encoded
    by hand: the only header block on the connection, so the HPACK tables agree)."""
    server = FakeServer()
    server.expect(1)
    block = hpack.Encoder().encode(headers)
    frame = hyperframe.frame.HeadersFrame(1, block, flags=["END_HEADERS", "END_STREAM"])
    return server.raw(frame.serialize()).chunks


async def response_to(api: Any, chunks: List[bytes]) -> Any:
    backend = api.backend(chunks, http2=True)
    async with api.ConnectionPool(network_backend=backend, http2=True) as pool:
        return await pool.request("GET", URL)


async def test_a_response_without_status_is_a_200(api: Any) -> None:
    """API.md: the status comes from `:status`, 200 if there is none (as httpcore 1.0)."""
    response = await response_to(api, raw_response([(b"x-only", b"1")]))
    assert (response.status, response.headers) == (200, [(b"x-only", b"1")])


async def test_response_pseudo_headers_are_left_out(api: Any) -> None:
    headers = [(b":status", b"204"), (b":other", b"x"), (b"x-kept", b"1")]
    response = await response_to(api, raw_response(headers))
    assert (response.status, response.headers) == (204, [(b"x-kept", b"1")])


async def test_a_status_that_is_not_a_number_is_a_remote_protocol_error(api: Any) -> None:
    with pytest.raises(httpcore.RemoteProtocolError, match="Invalid :status b'OK'"):
        await response_to(api, raw_response([(b":status", b"OK")]))


# -- _writer.py ------------------------------------------------------------------------------


async def test_a_write_timeout_is_what_later_requests_on_the_connection_get(api: Any) -> None:
    """API.md: a read or write exception is remembered and raised again for every later
    request on that connection: the WriteTimeout itself, not another error."""
    stream = quiet_stream(api, FakeServer().respond(1).chunks)
    async with h2_connection(api, stream) as conn:
        assert (await conn.request("GET", URL)).status == 200
        stream.write_exception = httpcore.WriteTimeout("timed out")
        for _ in range(2):
            with pytest.raises(httpcore.WriteTimeout, match=r"^timed out$"):
                await conn.request("GET", URL)
        assert not conn.is_available()


# -- _patches.py -----------------------------------------------------------------------------


def test_the_header_memo_keeps_up_to_memo_size_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """`RepeatDecoder` remembers up to `MEMO_SIZE` distinct blocks (literals that leave the
    table alone): a cycle of that many is decoded once each; one more block starts it over
    (so it never grows past that size)."""
    from httpcore.http2._patches import RepeatDecoder

    size = RepeatDecoder.MEMO_SIZE
    encoder = hpack.Encoder()
    blocks = [
        encoder.encode([(b":status", b"200"), NeverIndexedHeaderTuple(b"x-n", b"%d" % n)])
        for n in range(size + 1)
    ]
    decodes: List[bytes] = []
    real_decode = hpack.Decoder.decode

    def counted_decode(self: Any, data: bytes, raw: bool = False) -> Any:
        decodes.append(data)
        return real_decode(self, data, raw)

    monkeypatch.setattr(hpack.Decoder, "decode", counted_decode)
    decoder = RepeatDecoder()
    for block in blocks[:size] * 2:
        decoder.decode(block, raw=True)
    assert len(decodes) == size
    decoder.decode(blocks[size], raw=True)
    assert len(decoder._memo) <= size
    assert decoder.decode(blocks[0], raw=True) == [(b":status", b"200"), (b"x-n", b"0")]
    assert len(decodes) == size + 2  # forgotten when the memo was full


def test_a_block_that_resizes_the_table_is_decoded_every_time() -> None:
    """A header block carrying a table size update changes the decoder's state even when it
    adds nothing: it is never answered from the memo, so the update always takes effect and
    the table stays what the server's encoder thinks it is (nginx shrinks it to 0)."""
    from httpcore.http2._patches import RepeatDecoder

    encoder = hpack.Encoder()
    status = [(b":status", b"200")]
    encoder.header_table_size = 0
    shrink = encoder.encode(status)  # size update to 0, then a static index
    encoder.header_table_size = 4096
    grow = encoder.encode(status)  # size update back to 4096: the same state as before
    blocks = [shrink, grow, shrink]
    encoder.header_table_size = 0
    encoder.encode(status)  # the encoder's side of the third block
    blocks.append(encoder.encode([(b"x-indexed", b"1")]))  # "with indexing": fits nothing
    plain, memo = hpack.Decoder(), RepeatDecoder()
    for block in blocks:
        assert memo.decode(block, raw=True) == plain.decode(block, raw=True)
        assert memo.header_table.maxsize == plain.header_table.maxsize
        assert list(memo.header_table.dynamic_entries) == list(plain.header_table.dynamic_entries)


# -- _reader.py ------------------------------------------------------------------------------


async def test_a_read_error_fails_the_connection_for_every_later_request(api: Any) -> None:
    """API.md: a read exception is remembered and raised again for every later request on
    the connection, which is no longer available (a read timeout, by contrast, concerns only
    its request: `test_a_failed_body_read_writes_nothing_until_the_next_request`)."""
    server = FakeServer()
    server.expect(1)
    server.h2.send_headers(1, [(b":status", b"200")])
    server.flush()
    stream = quiet_stream(api, [*server.chunks, RESET])
    async with h2_connection(api, stream) as conn:
        async with conn.stream("GET", URL) as response:
            with pytest.raises(httpcore.ReadError, match="Connection reset by peer"):
                await response.aread()
        assert not conn.is_available()
        with pytest.raises(httpcore.ReadError, match="Connection reset by peer"):
            await conn.request("GET", URL)


async def test_frames_for_a_stream_refused_by_goaway_do_not_disturb_the_others(api: Any) -> None:
    """A GOAWAY refuses stream 3 (B gets ConnectionNotAvailable: retry elsewhere) and lets
    stream 1 (A) complete. The server answers stream 3 all the same, in the read that also
    brings A's response: A still gets it, and the connection window taken by B's unwanted
    body is given back (WINDOW_UPDATE)."""
    server = FakeServer(settings={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100})
    stream = AsyncScriptedStream() if api.is_async else SyncScriptedStream()
    results: Dict[str, Any] = {}
    async with h2_connection(api, stream) as conn:

        async def a() -> None:
            response = await conn.request("GET", URL, extensions={"timeout": {"read": 5.0}})
            results["a"] = response.content

        async def b() -> None:
            await until(api, lambda: stream.reads_started >= 2)  # A is the reader
            with pytest.raises(httpcore.ConnectionNotAvailable):
                await conn.request("GET", URL)
            results["b"] = "refused"

        async def feed() -> None:
            stream.feed(server.chunks.pop(0))  # SETTINGS: room for B
            await until(api, lambda: len(requests_sent(stream)) == 2)
            stream.feed(server.goaway(last_stream_id=1).chunks.pop())
            await until(api, lambda: "b" in results)
            server.expect(1)
            big_response(server, 3, BIG)
            server.h2.send_headers(1, [(b":status", b"200")])
            server.h2.send_data(1, b"a", end_stream=True)
            server.flush()
            stream.feed(b"".join(server.chunks))

        await api.concurrently(a, b, feed)
    assert results == {"a": b"a", "b": "refused"}
    events = client_events(stream)
    updates = [(e.stream_id, e.delta) for e in of_type(events, h2.events.WindowUpdated)]
    given_back = [delta for stream_id, delta in updates[2:] if stream_id == 0]
    assert given_back and sum(given_back) >= (2**24 + 65535) // 2


async def test_a_frame_h2_refuses_fails_the_connection_with_remote_protocol_error(
    api: Any,
) -> None:
    """DATA before the response's HEADERS: h2 refuses it (and closes its connection state).
    A RemoteProtocolError, not h2's own exception; the connection is closed."""
    server = FakeServer()
    server.expect(1)
    server.raw(hyperframe.frame.DataFrame(1, b"early").serialize())
    stream = quiet_stream(api, server.chunks)
    async with h2_connection(api, stream) as conn:
        with pytest.raises(httpcore.RemoteProtocolError, match="before headers"):
            await conn.request("GET", URL)
        assert conn.is_closed()
        with pytest.raises(httpcore.ConnectionNotAvailable):
            await conn.request("GET", URL)


@pytest.mark.parametrize("body", ["in memory", "streamed"])
async def test_an_upload_stops_once_the_server_has_answered_in_full(api: Any, body: str) -> None:
    """The server answers (413, END_STREAM) while the body waits for window: the rest of
    the body is not sent (RST_STREAM instead) and the response is delivered (RFC 9113
    §8.1)."""
    server = FakeServer()
    server.expect(1, end_stream=False)
    server.h2.send_headers(1, [(b":status", b"413")])
    server.h2.send_data(1, b"too big", end_stream=True)
    server.flush()
    stream = quiet_stream(api, server.chunks)
    content = b"x" * UPLOAD if body == "in memory" else api.body([b"x" * 40_000] * 3)
    async with h2_connection(api, stream) as conn:
        response = await conn.request("POST", URL, content=content)
        assert (response.status, response.content) == (413, b"too big")
    assert sent_data(stream, 1) == (65_535, False)
    # The rest of the body will not come: the stream is reset, not left half open.
    assert resets_sent(stream) == [1]


async def test_a_response_for_a_request_waiting_for_the_reader_wakes_it(api: Any) -> None:
    """A reads (the reader role) and waits; B waits for the reader. B's response arrives
    (A's not yet): B gets it at once, while A keeps waiting."""
    server = FakeServer(settings={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100})
    stream = AsyncScriptedStream() if api.is_async else SyncScriptedStream()
    results: Dict[str, Any] = {}
    async with h2_connection(api, stream) as conn:

        async def a() -> None:
            results["a"] = (await conn.request("GET", URL)).content

        async def b() -> None:
            await until(api, lambda: stream.reads_started >= 2)  # A is the reader
            response = await conn.request("GET", URL, extensions={"timeout": {"read": 5.0}})
            results["b"] = response.content

        async def feed() -> None:
            stream.feed(server.chunks.pop(0))  # SETTINGS: room for B
            await until(api, lambda: len(requests_sent(stream)) == 2)
            server.expect(1)
            server.respond(3, b"b")
            stream.feed(b"".join(server.chunks))
            server.chunks.clear()
            await until(api, lambda: "b" in results)
            assert "a" not in results
            server.h2.send_headers(1, [(b":status", b"200")])
            server.h2.send_data(1, b"a", end_stream=True)
            server.flush()
            stream.feed(b"".join(server.chunks))

        await api.concurrently(a, b, feed)
    assert results == {"a": b"a", "b": b"b"}


def resets_sent(stream: Any) -> List[int]:
    return [e.stream_id for e in of_type(client_events(stream), h2.events.StreamReset)]


@pytest.mark.parametrize("write_fails", [False, True])
async def test_the_reader_writes_what_is_queued_before_it_reads(
    api: Any, write_fails: bool
) -> None:
    """A's body read times out (its RST_STREAM is queued, not written: an error path) and B,
    waiting for the reader, takes the role: B writes the RST_STREAM before it waits for the
    server, never after. A write that fails then is remembered, not B's error: B still gets
    the response the server sends."""
    server = FakeServer(settings={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100})
    server.expect(1)
    server.h2.send_headers(1, [(b":status", b"200")])
    server.flush()
    stream = AsyncScriptedStream() if api.is_async else SyncScriptedStream()
    results: Dict[str, Any] = {}
    async with h2_connection(api, stream) as conn:

        async def a() -> None:
            timeouts = {"timeout": {"read": 1.0}}
            async with conn.stream("GET", URL, extensions=timeouts) as response:
                with pytest.raises(httpcore.ReadTimeout):
                    await response.aread()  # A is the reader while it waits
            results["a"] = "timed out"

        async def b() -> None:
            await until(api, lambda: stream.reads_started >= 2)  # A reads its body
            results["b"] = (await conn.request("GET", URL)).content

        async def feed() -> None:
            stream.feed(b"".join(server.chunks))  # SETTINGS, A's head
            server.chunks.clear()
            await until(api, lambda: len(requests_sent(stream)) == 2)  # B waits
            if write_fails:
                stream.write_exception = httpcore.WriteError("Connection reset by peer")
            # Read 1: A's head; 2: A's body (times out); 3: B's, once A gave up.
            await until(api, lambda: stream.reads_started >= 3)
            # Written before B's read, or (failing) tried and dropped: never sent after it.
            results["resets before B read"] = resets_sent(stream)
            server.respond(3, b"b")
            stream.feed(b"".join(server.chunks))

        await api.concurrently(a, b, feed)
    assert results["a"] == "timed out"
    assert results["b"] == b"b"
    assert results["resets before B read"] == ([] if write_fails else [1])
    assert resets_sent(stream) == results["resets before B read"]


async def test_a_settings_ack_that_cannot_be_written_does_not_fail_the_response(api: Any) -> None:
    """The server's SETTINGS arrive after it stopped reading: the acknowledgement the reader
    writes after its read fails, and is remembered (the connection will not be reused), but
    the response the server sent is delivered."""
    server = FakeServer()
    stream = AsyncScriptedStream() if api.is_async else SyncScriptedStream()
    results: Dict[str, Any] = {}
    async with h2_connection(api, stream) as conn:

        async def a() -> None:
            results["a"] = (await conn.request("GET", URL)).content

        async def feed() -> None:
            await until(api, lambda: len(requests_sent(stream)) == 1 and stream.reads_started)
            stream.write_exception = httpcore.WriteError("Connection reset by peer")
            stream.feed(server.chunks.pop(0))  # SETTINGS: to acknowledge
            stream.feed(b"".join(server.respond(1, b"a").chunks))

        await api.concurrently(a, feed)
        assert results == {"a": b"a"}
        assert not conn.is_available()


# -- _send.py --------------------------------------------------------------------------------


async def test_an_answer_sent_before_the_server_stopped_reading_the_upload_is_delivered(
    api: Any,
) -> None:
    """RFC 9113 §8.1: the server answers early (413) and stops reading, so writing the
    body fails: the request gets the answer, not the WriteError; the connection is not
    reused (its writes failed)."""
    server = FakeServer()
    server.expect(1, end_stream=False)
    server.h2.send_headers(1, [(b":status", b"413")])
    server.h2.send_data(1, b"too big", end_stream=True)
    server.flush()
    stream = quiet_stream(api, server.chunks)
    stream.writes_before_failing = 1  # the preface; HEADERS and body fail
    async with h2_connection(api, stream) as conn:
        response = await conn.request("POST", URL, content=b"x" * 1000)
        assert (response.status, response.content) == (413, b"too big")
        assert not conn.is_available()


async def test_a_streamed_body_refused_by_goaway_is_not_retried(api: Any) -> None:
    """A body iterator, once read from, cannot be sent again: a GOAWAY that refuses its
    stream fails the request (RemoteProtocolError) instead of letting the pool retry it on
    a new connection with what is left of the body."""
    server = FakeServer()
    server.expect(1, end_stream=False)
    server.goaway(last_stream_id=0)
    backend = api.backend(server.chunks, http2=True)
    async with api.ConnectionPool(network_backend=backend, http2=True) as pool:
        with pytest.raises(httpcore.RemoteProtocolError, match="ConnectionTerminated"):
            await pool.request("POST", URL, content=api.body([b"part 1", b"part 2"]))
    assert len(backend.connects) == 1


async def test_a_reset_during_a_streamed_upload_closes_the_body_at_once(api: Any) -> None:
    """The server resets the stream while the body waits for window: the body iterator is
    closed then (not drained), and the request fails with the reset."""
    server = FakeServer()
    server.expect(1, end_stream=False)
    server.reset(1)
    taken: List[int] = []
    closed: List[bool] = []

    def chunks() -> Iterator[bytes]:
        try:
            for n in range(10):
                taken.append(n)
                yield b"x" * 40_000
        finally:
            closed.append(len(taken) < 10)

    async def achunks() -> AsyncIterator[bytes]:
        for chunk in chunks():
            yield chunk

    stream = quiet_stream(api, server.chunks)
    async with h2_connection(api, stream) as conn:
        body = achunks() if api.is_async else chunks()
        with pytest.raises(httpcore.RemoteProtocolError, match="StreamReset stream_id:1"):
            await conn.request("POST", URL, content=body)
    assert closed == [True]  # closed early
    assert len(taken) == 2  # the chunk that found the window used up was the last taken


async def test_a_window_of_one_byte_is_used(api: Any) -> None:
    """The server opens the windows by exactly one byte: the last byte of the body goes."""
    server = FakeServer()
    server.expect(1, end_stream=False)
    server.h2.increment_flow_control_window(1)
    server.h2.increment_flow_control_window(1, stream_id=1)
    server.flush()
    server.h2.send_headers(1, [(b":status", b"200")], end_stream=True)
    server.flush()
    stream = quiet_stream(api, server.chunks)
    async with h2_connection(api, stream) as conn:
        response = await conn.request("POST", URL, content=b"x" * 65_536)
        assert response.status == 200
    assert sent_data(stream, 1) == (65_536, True)


class Chunks:
    """A request body that is a plain iterator (no `close()`), counting the chunks taken."""

    def __init__(self, count: int, size: int) -> None:
        self.left = count
        self.size = size
        self.taken = 0

    def __iter__(self) -> Chunks:
        return self

    def __next__(self) -> bytes:
        if not self.left:
            raise StopIteration
        self.left -= 1
        self.taken += 1
        return b"x" * self.size

    def __aiter__(self) -> Chunks:
        return self

    async def __anext__(self) -> bytes:
        try:
            return next(self)
        except StopIteration:
            raise StopAsyncIteration from None


async def test_a_reset_during_an_upload_stops_taking_from_a_plain_iterator(api: Any) -> None:
    """Like `test_a_reset_during_a_streamed_upload_closes_the_body_at_once`, with a body
    that cannot be closed: no chunk is taken from it after the reset."""
    server = FakeServer()
    server.expect(1, end_stream=False)
    server.reset(1)
    stream = quiet_stream(api, server.chunks)
    body = Chunks(10, 40_000)
    async with h2_connection(api, stream) as conn:
        with pytest.raises(httpcore.RemoteProtocolError, match="StreamReset stream_id:1"):
            await conn.request("POST", URL, content=body)
    assert body.taken == 2


async def test_a_streamed_body_is_closed_when_its_upload_fails(api: Any) -> None:
    """The server stops reading (the body's write fails) and answers: the body iterator is
    closed right away, not left to the garbage collector."""
    server = FakeServer()
    server.expect(1, end_stream=False)
    server.h2.send_headers(1, [(b":status", b"413")], end_stream=True)
    server.flush()
    closed: List[bool] = []

    def chunks() -> Iterator[bytes]:
        try:
            for _ in range(10):
                yield b"x" * 1000
        finally:
            closed.append(True)

    async def achunks() -> AsyncIterator[bytes]:
        try:
            for _ in range(10):
                yield b"x" * 1000
        finally:
            closed.append(True)

    stream = quiet_stream(api, server.chunks)
    stream.writes_before_failing = 2  # the preface and HEADERS; the body fails
    body = achunks() if api.is_async else chunks()
    async with h2_connection(api, stream) as conn:
        response = await conn.request("POST", URL, content=body)
        assert response.status == 413
    assert closed == [True]


async def test_a_reset_read_by_another_request_stops_a_streamed_upload(api: Any) -> None:
    """B uploads a streamed body with room in the windows (it never reads); A, the reader,
    files the server's RST_STREAM for B between two of B's chunks. B takes one chunk more,
    finds its stream reset, and stops there (the body is closed), failing with the reset."""
    codes = h2.settings.SettingCodes
    server = FakeServer(
        settings={codes.MAX_CONCURRENT_STREAMS: 100, codes.INITIAL_WINDOW_SIZE: WIDE}
    )
    server.raw(hyperframe.frame.WindowUpdateFrame(0, window_increment=WIDE).serialize())
    stream = AsyncScriptedStream() if api.is_async else SyncScriptedStream()
    gate: Any = anyio.Event() if api.is_async else threading.Event()
    taken: List[int] = []

    def chunks() -> Iterator[bytes]:
        for n in range(10):
            if n == 1:
                assert gate.wait(10)
            taken.append(n)
            yield b"x" * 1000

    async def achunks() -> AsyncIterator[bytes]:
        for n in range(10):
            if n == 1:
                await gate.wait()
            taken.append(n)
            yield b"x" * 1000

    results: Dict[str, Any] = {}
    async with h2_connection(api, stream) as conn:

        async def a() -> None:
            results["a"] = (await conn.request("GET", URL)).content

        async def b() -> None:
            await until(api, lambda: stream.reads_started >= 2)  # A is the reader
            body = achunks() if api.is_async else chunks()
            with pytest.raises(httpcore.RemoteProtocolError, match="StreamReset stream_id:3"):
                await conn.request("POST", URL, content=body)
            results["b"] = "reset"

        async def feed() -> None:
            stream.feed(b"".join(server.chunks))
            server.chunks.clear()
            await until(api, lambda: sent_data(stream, 3)[0] == 1000)
            reads = stream.reads_started
            stream.feed(hyperframe.frame.RstStreamFrame(3, error_code=8).serialize())
            await until(api, lambda: stream.reads_started > reads)  # A filed it
            gate.set()
            await until(api, lambda: "b" in results)
            server.expect(1)
            server.h2.send_headers(1, [(b":status", b"200")])
            server.h2.send_data(1, b"a", end_stream=True)
            server.flush()
            stream.feed(b"".join(server.chunks))

        await api.concurrently(a, b, feed)
    assert results == {"a": b"a", "b": "reset"}
    assert taken == [0, 1]
    assert sent_data(stream, 3) == (1000, False)


async def test_a_request_that_gave_up_waiting_for_the_reader_is_not_handed_the_role(
    api: Any,
) -> None:
    """A reads (the reader role); B and C wait. B gives up (its read timeout). When A has its
    response and leaves the role, C, the one still waiting, becomes the reader and gets its
    response (a role handed to B, gone, would leave nobody reading: C would time out)."""
    server = FakeServer(settings={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100})
    stream = AsyncScriptedStream() if api.is_async else SyncScriptedStream()
    results: Dict[str, Any] = {}
    async with h2_connection(api, stream) as conn:

        async def a() -> None:
            response = await conn.request("GET", URL, extensions={"timeout": {"read": 10.0}})
            results["a"] = response.content

        async def b() -> None:
            await until(api, lambda: stream.reads_started >= 2)  # A is the reader
            with pytest.raises(httpcore.ReadTimeout):
                await conn.request("GET", URL, extensions={"timeout": {"read": 0.3}})
            results["b"] = "gave up"

        async def c() -> None:
            await until(api, lambda: len(requests_sent(stream)) == 2)  # B waits first
            response = await conn.request("GET", URL, extensions={"timeout": {"read": 5.0}})
            results["c"] = response.content

        async def feed() -> None:
            stream.feed(server.chunks.pop(0))  # SETTINGS: room for B and C
            await until(api, lambda: len(requests_sent(stream)) == 3)
            await until(api, lambda: "b" in results)
            server.respond(1, b"a")
            stream.feed(b"".join(server.chunks))
            server.chunks.clear()
            await until(api, lambda: "a" in results)
            server.respond(5, b"c")
            stream.feed(b"".join(server.chunks))

        await api.concurrently(a, b, c, feed)
    assert results == {"a": b"a", "b": "gave up", "c": b"c"}
