"""HTTP/2 connections at the byte level, over the mock backends.

Server bytes are produced by an `h2` connection in server mode (`FakeServer`); what the client
wrote is fed back into one (`decode_client`) to check the frames it sent.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Tuple

import anyio
import h2.config
import h2.connection
import h2.events
import h2.settings
import hyperframe.frame
import pytest

import httpcore
from httpcore.http2 import AsyncHTTP2Connection, HTTP2Connection

ORIGIN = httpcore.Origin(b"https", b"example.com", 443)
URL = "https://example.com/"
Headers = List[Tuple[bytes, bytes]]


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


class FakeServer:
    """Server-side h2 producing the chunks a mock stream returns, one per read."""

    def __init__(self, settings: Optional[Dict[int, int]] = None) -> None:
        self._client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self._client.initiate_connection()
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        self.h2 = h2.connection.H2Connection(config)
        if settings:
            self.h2.local_settings = h2.settings.Settings(client=False, initial_values=settings)
        self.h2.initiate_connection()
        self.h2.receive_data(self._client.data_to_send())
        self.chunks: List[bytes] = []
        self.flush()

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self.chunks.append(data)

    def expect(self, stream_id: int, end_stream: bool = True) -> None:
        """Make the server know the client stream (as if its HEADERS arrived)."""
        self._client.send_headers(
            stream_id,
            [(":method", "GET"), (":path", "/"), (":scheme", "https"), (":authority", "e")],
            end_stream=end_stream,
        )
        self.h2.receive_data(self._client.data_to_send())
        self.h2.data_to_send()  # nothing the real client needs

    def respond(
        self,
        stream_id: int,
        body: bytes = b"Hello, world!",
        status: int = 200,
        end: bool = True,
    ) -> FakeServer:
        self.expect(stream_id)
        headers = [(b":status", str(status).encode()), (b"content-type", b"plain/text")]
        self.h2.send_headers(stream_id, headers)
        self.flush()
        if body or end:
            self.h2.send_data(stream_id, body, end_stream=end)
            self.flush()
        return self

    def reset(self, stream_id: int, error_code: int = 8) -> FakeServer:
        self.h2.reset_stream(stream_id, error_code=error_code)
        self.flush()
        return self

    def goaway(self, last_stream_id: int, error_code: int = 0) -> FakeServer:
        # Written by hand: h2 would refuse to send anything after its own GOAWAY.
        self.flush()
        frame = hyperframe.frame.GoAwayFrame(
            stream_id=0, last_stream_id=last_stream_id, error_code=error_code
        )
        self.chunks.append(frame.serialize())
        return self

    def settings(self, values: Dict[int, int]) -> FakeServer:
        self.h2.update_settings(values)
        self.flush()
        return self

    def raw(self, data: bytes) -> FakeServer:
        self.chunks.append(data)
        return self


class RecordingStream(httpcore.MockStream):
    def __init__(self, buffer: List[bytes]) -> None:
        super().__init__(buffer)
        self.written: List[bytes] = []

    def write(self, buffer: bytes, timeout: Optional[float] = None) -> None:
        self.written.append(buffer)


class AsyncRecordingStream(httpcore.AsyncMockStream):
    def __init__(self, buffer: List[bytes]) -> None:
        super().__init__(buffer)
        self.written: List[bytes] = []

    async def write(self, buffer: bytes, timeout: Optional[float] = None) -> None:
        self.written.append(buffer)


def decode_client(written: List[bytes]) -> List[Any]:
    """The h2 events a server sees from what the client wrote."""
    config = h2.config.H2Configuration(client_side=False, header_encoding=None)
    server = h2.connection.H2Connection(config)
    # Room for whatever the client sends: it was given its windows by another server.
    server.local_settings = h2.settings.Settings(
        client=False, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1}
    )
    server.initiate_connection()
    server.increment_flow_control_window(2**31 - 1 - 65535)
    return server.receive_data(b"".join(written))  # type: ignore[no-any-return]


def of_type(events: List[Any], kind: type) -> List[Any]:
    return [event for event in events if isinstance(event, kind)]


# -- basics ------------------------------------------------------------------------------------


def test_http2_connection() -> None:
    server = FakeServer().respond(1)
    conn = HTTP2Connection(origin=ORIGIN, stream=httpcore.MockStream(server.chunks))
    assert repr(conn) == "<HTTP2Connection ['https://example.com:443', IDLE, Request Count: 0]>"
    with conn:
        response = conn.request("GET", URL)
        assert response.status == 200
        assert response.content == b"Hello, world!"
        assert response.headers == [(b"content-type", b"plain/text")]
        assert response.extensions["http_version"] == b"HTTP/2"
        assert response.extensions["stream_id"] == 1
        assert response.extensions["network_stream"] is conn._network_stream
        assert "reason_phrase" not in response.extensions
        assert conn.is_idle()
        assert conn.is_available()
        assert not conn.is_closed()
        assert not conn.has_expired()
        assert conn.info() == "'https://example.com:443', HTTP/2, IDLE, Request Count: 1"
        assert repr(conn) == "<HTTP2Connection ['https://example.com:443', IDLE, Request Count: 1]>"
    assert conn.is_closed()
    with pytest.raises(httpcore.ConnectionNotAvailable):
        conn.request("GET", URL)


@pytest.mark.anyio
async def test_async_http2_connection() -> None:
    server = FakeServer().respond(1).respond(3, b"again")
    stream = httpcore.AsyncMockStream(server.chunks)
    async with AsyncHTTP2Connection(origin=ORIGIN, stream=stream, keepalive_expiry=5.0) as conn:
        response = await conn.request("GET", URL)
        assert response.content == b"Hello, world!"
        response = await conn.request("GET", URL)
        assert response.content == b"again"
        assert response.extensions["stream_id"] == 3
        assert conn.is_idle() and conn.is_available() and not conn.has_expired()
        assert (
            repr(conn)
            == "<AsyncHTTP2Connection ['https://example.com:443', IDLE, Request Count: 2]>"
        )
    assert conn.is_closed()


def test_keepalive_expiry() -> None:
    server = FakeServer().respond(1)
    with HTTP2Connection(ORIGIN, httpcore.MockStream(server.chunks), keepalive_expiry=0.0) as conn:
        conn.request("GET", URL)
        assert conn._expire_at is not None
        assert conn._has_timed_out(conn._expire_at + 1)


def test_request_to_incorrect_origin() -> None:
    with HTTP2Connection(ORIGIN, httpcore.MockStream([])) as conn:
        with pytest.raises(RuntimeError, match="Attempted to send request to"):
            conn.request("GET", "https://other.com/")


def test_missing_host_header() -> None:
    server = FakeServer().respond(1)
    with HTTP2Connection(ORIGIN, httpcore.MockStream(server.chunks)) as conn:
        request = httpcore.Request("GET", URL)  # built directly: no Host header
        with pytest.raises(httpcore.LocalProtocolError):
            conn.handle_request(request)
        assert conn.is_idle() and conn.is_available()
        assert conn.request("GET", URL).status == 200


def test_preface_request_frames_and_body() -> None:
    server = FakeServer().respond(1)
    stream = RecordingStream(server.chunks)
    with HTTP2Connection(ORIGIN, stream) as conn:
        response = conn.request(
            "POST",
            "https://example.com/upload?x=1",
            headers=[
                (b"Host", b"example.com:8443"),
                (b"X-Custom", b"Value"),
                (b"Connection", b"keep-alive"),
            ],
            content=b"abc",
        )
        assert response.status == 200
    events = decode_client(stream.written)
    settings = of_type(events, h2.events.RemoteSettingsChanged)[0].changed_settings
    codes = h2.settings.SettingCodes
    assert {code: setting.new_value for code, setting in settings.items()} == {
        codes.HEADER_TABLE_SIZE: 4096,
        codes.ENABLE_PUSH: 0,
        codes.INITIAL_WINDOW_SIZE: 65535,
        codes.MAX_FRAME_SIZE: 16384,
        codes.MAX_CONCURRENT_STREAMS: 100,
        codes.MAX_HEADER_LIST_SIZE: 65536,
    }
    updates = [(e.stream_id, e.delta) for e in of_type(events, h2.events.WindowUpdated)]
    assert updates[:2] == [(0, 2**24), (1, 2**24)]
    request = of_type(events, h2.events.RequestReceived)[0]
    assert request.headers == [
        (b":method", b"POST"),
        (b":authority", b"example.com:8443"),
        (b":scheme", b"https"),
        (b":path", b"/upload?x=1"),
        (b"x-custom", b"Value"),
        (b"content-length", b"3"),
    ]
    assert b"".join(e.data for e in of_type(events, h2.events.DataReceived)) == b"abc"
    assert of_type(events, h2.events.StreamEnded)[0].stream_id == 1


@pytest.mark.parametrize(
    ("content", "expected_body", "end_on_headers"),
    [
        (b"", b"", True),
        (b"direct body", b"direct body", False),
        ([b"it", b"er"], b"iter", False),
        ([], b"", False),
    ],
)
def test_body_without_content_length(
    content: Any, expected_body: bytes, end_on_headers: bool
) -> None:
    """A directly built Request with a body but no Content-Length still sends it."""
    server = FakeServer().respond(1)
    stream = RecordingStream(server.chunks)
    with HTTP2Connection(ORIGIN, stream) as conn:
        request = httpcore.Request(
            "POST", URL, headers=[(b"Host", b"example.com")], content=content
        )
        response = conn.handle_request(request)
        response.read()
        response.close()
    events = decode_client(stream.written)
    received = of_type(events, h2.events.RequestReceived)[0]
    assert (received.stream_ended is not None) is end_on_headers
    assert b"".join(e.data for e in of_type(events, h2.events.DataReceived)) == expected_body
    assert len(of_type(events, h2.events.StreamEnded)) == 1


def test_flow_controlled_upload() -> None:
    server = FakeServer()
    # The client may send 65,535 bytes, then waits for the window to open.
    server.expect(1, end_stream=False)
    for _ in range(4):
        server.h2.increment_flow_control_window(10_000)
        server.h2.increment_flow_control_window(10_000, stream_id=1)
        server.flush()
    server.h2.send_headers(1, [(b":status", b"200")])
    server.h2.send_data(1, b"100,000 bytes received", end_stream=True)
    server.flush()
    stream = RecordingStream(server.chunks)
    with HTTP2Connection(ORIGIN, stream) as conn:
        response = conn.request("POST", URL, content=b"x" * 100_000)
        assert response.content == b"100,000 bytes received"
    events = decode_client(stream.written)
    data = of_type(events, h2.events.DataReceived)
    assert sum(len(e.data) for e in data) == 100_000
    assert max(len(e.data) for e in data) <= 16384


# -- server errors -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_rst_stream_fails_that_request_only() -> None:
    server = FakeServer()
    server.expect(1)
    server.h2.send_headers(1, [(b":status", b"200")])
    server.flush()
    server.reset(1).respond(3)
    async with AsyncHTTP2Connection(ORIGIN, httpcore.AsyncMockStream(server.chunks)) as conn:
        with pytest.raises(httpcore.RemoteProtocolError) as info:
            await conn.request("GET", URL)
        # (Before Python 3.11 h2's repr shows the enum name instead of 8.)
        assert str(info.value) in (
            "<StreamReset stream_id:1, error_code:8, remote_reset:True>",
            "<StreamReset stream_id:1, error_code:ErrorCodes.CANCEL, remote_reset:True>",
        )
        assert conn.is_available() and conn.is_idle()
        response = await conn.request("GET", URL)
        assert response.status == 200
        assert response.content == b"Hello, world!"


def test_rst_stream_before_response_headers() -> None:
    server = FakeServer()
    server.expect(1)
    server.reset(1, error_code=7)
    with HTTP2Connection(ORIGIN, httpcore.MockStream(server.chunks)) as conn:
        refused = r"error_code:(7|ErrorCodes.REFUSED_STREAM)"
        with pytest.raises(httpcore.RemoteProtocolError, match=refused):
            conn.request("GET", URL)
        assert conn.is_available()


@pytest.mark.anyio
async def test_goaway_mid_response() -> None:
    server = FakeServer()
    server.expect(1)
    server.h2.send_headers(1, [(b":status", b"200")])
    server.flush()
    server.goaway(last_stream_id=0).respond(3)
    async with AsyncHTTP2Connection(ORIGIN, httpcore.AsyncMockStream(server.chunks)) as conn:
        with pytest.raises(httpcore.RemoteProtocolError, match="ConnectionTerminated"):
            await conn.request("GET", URL)
        assert not conn.is_available()
        with pytest.raises(httpcore.ConnectionNotAvailable):
            await conn.request("GET", URL)
        assert conn.is_closed()


def test_goaway_after_response_refuses_the_next_stream() -> None:
    server = FakeServer().respond(1).goaway(last_stream_id=1)
    with HTTP2Connection(ORIGIN, httpcore.MockStream(server.chunks)) as conn:
        assert conn.request("GET", URL).status == 200
        # Stream 3 is sent before the GOAWAY is read: it is refused, not failed.
        with pytest.raises(httpcore.ConnectionNotAvailable):
            conn.request("GET", URL)
        assert conn.info() == "'https://example.com:443', HTTP/2, CLOSED, Request Count: 1"
        assert not conn.is_available()


def test_goaway_refusing_a_stream_whose_body_is_gone_says_so() -> None:
    server = FakeServer().respond(1).goaway(last_stream_id=1)
    with HTTP2Connection(ORIGIN, httpcore.MockStream(server.chunks)) as conn:
        assert conn.request("GET", URL).status == 200
        # Stream 3's body is sent before the GOAWAY is read: it cannot be sent again.
        with pytest.raises(httpcore.RemoteProtocolError) as caught:
            conn.request("POST", URL, content=iter([b"up"]))
        assert str(caught.value).endswith(
            ": the server did not process stream 3, and the request was not sent again: "
            "its body can be read only once"
        )
        assert str(caught.value).startswith("<ConnectionTerminated error_code:")
        assert not conn.is_available()


def test_pool_does_not_retry_a_refused_stream_whose_body_is_gone() -> None:
    server = FakeServer().respond(1).goaway(last_stream_id=1)
    backend = httpcore.MockBackend(server.chunks, http2=True)
    with httpcore.ConnectionPool(network_backend=backend) as pool:
        assert pool.request("GET", URL).status == 200
        with pytest.raises(httpcore.RemoteProtocolError, match="did not process stream 3"):
            pool.request("POST", URL, content=iter([b"up"]))
        assert pool.connections == []


def test_graceful_goaway_lets_earlier_streams_finish() -> None:
    server = FakeServer()
    server.expect(1)
    server.h2.send_headers(1, [(b":status", b"200")])
    server.h2.send_data(1, b"first ")
    server.flush()
    server.goaway(last_stream_id=1)
    server.h2.send_data(1, b"second", end_stream=True)
    server.flush()
    with HTTP2Connection(ORIGIN, httpcore.MockStream(server.chunks)) as conn:
        with conn.stream("GET", URL) as response:
            assert response.read() == b"first second"
        assert conn.is_closed()


def test_goaway_with_error_fails_streams() -> None:
    server = FakeServer()
    server.expect(1)
    server.h2.send_headers(1, [(b":status", b"200")])
    server.flush()
    server.goaway(last_stream_id=1, error_code=2)
    with HTTP2Connection(ORIGIN, httpcore.MockStream(server.chunks)) as conn:
        with pytest.raises(httpcore.RemoteProtocolError, match=r"error_code:(2|ErrorCodes)"):
            conn.request("GET", URL)
        assert conn.is_closed()


@pytest.mark.anyio
async def test_server_disconnected() -> None:
    server = FakeServer()
    server.expect(1)
    server.h2.send_headers(1, [(b":status", b"200")])
    server.flush()
    server.raw(b"")
    async with AsyncHTTP2Connection(ORIGIN, httpcore.AsyncMockStream(server.chunks)) as conn:
        with pytest.raises(httpcore.RemoteProtocolError, match=r"^Server disconnected$"):
            await conn.request("GET", URL)
        # Remembered: the connection is of no further use and the pool will drop it.
        assert not conn.is_available()
        assert conn.has_expired()
        with pytest.raises(httpcore.RemoteProtocolError, match=r"^Server disconnected$"):
            await conn.request("GET", URL)


def test_complete_response_survives_a_later_disconnect() -> None:
    server = FakeServer().respond(1).raw(b"")
    # One chunk holding the whole response, then EOF.
    chunks = [b"".join(server.chunks[:-1]), b""]
    with HTTP2Connection(ORIGIN, httpcore.MockStream(chunks)) as conn:
        assert conn.request("GET", URL).content == b"Hello, world!"


def test_invalid_server_data() -> None:
    stream = httpcore.MockStream([b"Wait, this isn't valid HTTP!", b""])
    with HTTP2Connection(ORIGIN, stream) as conn:
        with pytest.raises(httpcore.RemoteProtocolError):
            conn.request("GET", URL)
        assert not conn.is_available()


@pytest.mark.parametrize(
    "late, message",
    [
        (
            hyperframe.frame.DataFrame(9, data=b"late"),
            r"^Received a frame for stream 9, which the client never opened$",
        ),
        (
            hyperframe.frame.HeadersFrame(1, data=b"\x88", flags=["END_HEADERS"]),
            r"^Received a frame for stream 1 after it closed$",
        ),
    ],
    ids=["never-opened", "closed"],
)
def test_frame_for_a_stream_not_open_says_which(late: Any, message: str) -> None:
    """h2 names such a stream by its number alone (`str()` is `"9"`): the error says what
    the number is. Both are connection errors (RFC 9113 §5.1), met during the second
    request: DATA for a stream never opened, HEADERS (`:status: 200`) for stream 1, which
    ended with the first response."""
    server = FakeServer().respond(1)
    server.expect(3)
    server.raw(late.serialize())
    with HTTP2Connection(ORIGIN, httpcore.MockStream(server.chunks)) as conn:
        assert conn.request("GET", URL).content == b"Hello, world!"
        with pytest.raises(httpcore.RemoteProtocolError, match=message):
            conn.request("GET", URL)
        assert not conn.is_available()


def test_ping_is_answered() -> None:
    server = FakeServer()
    server.h2.ping(b"12345678")
    server.flush()
    server.respond(1)
    stream = RecordingStream(server.chunks)
    with HTTP2Connection(ORIGIN, stream) as conn:
        assert conn.request("GET", URL).status == 200
    # (The decoding server did not send that PING, so h2 reports a plain PingAckReceived.)
    events = decode_client(stream.written)
    acks = of_type(events, h2.events.PingAckReceived)
    assert [ack.ping_data for ack in acks] == [b"12345678"]


def test_remote_max_concurrent_streams_update() -> None:
    codes = h2.settings.SettingCodes
    server = FakeServer(settings={codes.MAX_CONCURRENT_STREAMS: 1000})
    server.expect(1)
    server.h2.send_headers(1, [(b":status", b"200")])
    server.h2.send_data(1, b"Hello, world!")
    server.flush()
    server.settings({codes.MAX_CONCURRENT_STREAMS: 50})
    server.h2.send_data(1, b"Hello, world...again!", end_stream=True)
    server.flush()
    with HTTP2Connection(ORIGIN, httpcore.MockStream(server.chunks)) as conn:
        assert conn._max_streams == 1  # until the server's SETTINGS arrive
        with conn.stream("GET", URL) as response:
            chunks = response.iter_stream()
            assert next(chunks) == b"Hello, world!"
            assert conn._h2_state.remote_settings.max_concurrent_streams == 1000
            assert conn._max_streams == 100
            assert next(chunks) == b"Hello, world...again!"
            assert conn._h2_state.remote_settings.max_concurrent_streams == 50
            assert conn._max_streams == 50


def test_exhausted_stream_ids() -> None:
    server = FakeServer().respond(1)
    with HTTP2Connection(ORIGIN, httpcore.MockStream(server.chunks)) as conn:
        conn.request("GET", URL)
        conn._h2_state.highest_outbound_stream_id = 2**31 - 1
        with pytest.raises(httpcore.ConnectionNotAvailable):
            conn.request("GET", URL)
        assert not conn.is_available()
        assert conn.has_expired()


# -- tracing and logging -----------------------------------------------------------------------


def test_trace_events() -> None:
    server = FakeServer().respond(1)
    called: List[Tuple[str, Dict[str, Any]]] = []

    def trace(name: str, info: Dict[str, Any]) -> None:
        called.append((name, info))

    with HTTP2Connection(ORIGIN, httpcore.MockStream(server.chunks)) as conn:
        conn.request("GET", URL, extensions={"trace": trace})
    names = [name for name, _ in called]
    assert names == [
        "http2.send_connection_init.started",
        "http2.send_connection_init.complete",
        "http2.send_request_headers.started",
        "http2.send_request_headers.complete",
        "http2.send_request_body.started",
        "http2.send_request_body.complete",
        "http2.receive_response_headers.started",
        "http2.receive_remote_settings.started",
        "http2.receive_remote_settings.complete",
        "http2.receive_response_headers.complete",
        "http2.receive_response_body.started",
        "http2.receive_response_body.complete",
        "http2.response_closed.started",
        "http2.response_closed.complete",
    ]
    infos = dict(called)
    assert infos["http2.send_request_headers.started"]["stream_id"] == 1
    assert infos["http2.receive_response_headers.complete"]["return_value"] == (
        200,
        [(b"content-type", b"plain/text")],
    )
    settings = infos["http2.receive_remote_settings.complete"]["return_value"]
    assert isinstance(settings, h2.events.RemoteSettingsChanged)
    assert infos["http2.response_closed.started"] == {"stream_id": 1}


def test_trace_on_failure() -> None:
    server = FakeServer().raw(b"")
    names: List[str] = []
    with HTTP2Connection(ORIGIN, httpcore.MockStream(server.chunks)) as conn:
        with pytest.raises(httpcore.RemoteProtocolError):
            conn.request("GET", URL, extensions={"trace": lambda name, info: names.append(name)})
    assert names[-6:] == [
        "http2.receive_response_headers.started",
        "http2.receive_remote_settings.started",
        "http2.receive_remote_settings.complete",
        "http2.receive_response_headers.failed",
        "http2.response_closed.started",
        "http2.response_closed.complete",
    ]


def test_debug_logging(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="httpcore.http2")
    server = FakeServer().respond(1)
    with HTTP2Connection(ORIGIN, httpcore.MockStream(server.chunks)) as conn:
        conn.request("GET", URL)
    messages = [r.getMessage() for r in caplog.records if r.name == "httpcore.http2"]
    assert "send_request_headers.started request=<Request [b'GET']> stream_id=1" in messages
    assert (
        "receive_response_headers.complete return_value="
        "(200, [(b'content-type', b'plain/text')])" in messages
    )
    assert "response_closed.started stream_id=1" in messages


# -- the pool over mocks -----------------------------------------------------------------------


def test_pool_retries_a_refused_stream_on_a_new_connection() -> None:
    server = FakeServer().respond(1).goaway(last_stream_id=1)
    backend = httpcore.MockBackend(server.chunks, http2=True)
    with httpcore.ConnectionPool(network_backend=backend) as pool:
        assert pool.request("GET", URL).status == 200
        assert pool.request("GET", URL).status == 200
        assert [c.info() for c in pool.connections] == [
            "'https://example.com:443', HTTP/2, IDLE, Request Count: 1"
        ]


@pytest.mark.anyio
async def test_async_pool_with_http2_prior_knowledge() -> None:
    server = FakeServer().respond(1).respond(3)
    backend = httpcore.AsyncMockBackend(server.chunks)
    async with httpcore.AsyncConnectionPool(
        network_backend=backend, http1=False, http2=True
    ) as pool:
        for _ in range(2):
            response = await pool.request("GET", "http://example.com/")
            assert response.extensions["http_version"] == b"HTTP/2"
        assert [c.info() for c in pool.connections] == [
            "'http://example.com:80', HTTP/2, IDLE, Request Count: 2"
        ]


# -- cancellation ------------------------------------------------------------------------------


class SlowWriteStream(httpcore.AsyncNetworkStream):
    """Writes hang (after `ok_writes` writes went through)."""

    def __init__(self, ok_writes: int = 0) -> None:
        self._ok_writes = ok_writes

    async def read(self, max_bytes: int, timeout: Optional[float] = None) -> bytes:
        await anyio.sleep(999)
        return b""  # pragma: no cover

    async def write(self, buffer: bytes, timeout: Optional[float] = None) -> None:
        if self._ok_writes > 0:
            self._ok_writes -= 1
            return
        await anyio.sleep(999)

    async def aclose(self) -> None:
        pass


class SlowReadStream(httpcore.AsyncMockStream):
    """Reads hang once the canned chunks are used up."""

    async def read(self, max_bytes: int, timeout: Optional[float] = None) -> bytes:
        if not self._buffer:
            await anyio.sleep(999)
        return await super().read(max_bytes, timeout)


@pytest.mark.anyio
async def test_cancelled_preface_closes_the_connection() -> None:
    async with AsyncHTTP2Connection(ORIGIN, SlowWriteStream()) as conn:
        with anyio.move_on_after(0.01):
            await conn.request("GET", URL)
        assert conn.is_closed()


@pytest.mark.anyio
async def test_cancelled_request_write() -> None:
    async with AsyncHTTP2Connection(ORIGIN, SlowWriteStream(ok_writes=1)) as conn:
        with anyio.move_on_after(0.01):
            await conn.request("GET", URL, content=b"body")
        # Open and idle, but frames may be lost: not offered again, and it fails loudly.
        assert not conn.is_closed()
        assert conn.is_idle()
        assert not conn.is_available()
        assert conn.has_expired()
        with pytest.raises(httpcore.WriteError):
            await conn.request("GET", URL)


@pytest.mark.anyio
async def test_cancelled_response_read_leaves_the_connection_usable() -> None:
    server = FakeServer()
    server.expect(1)
    server.h2.send_headers(1, [(b":status", b"200")])
    server.h2.send_data(1, b"partial")
    server.flush()
    stream = SlowReadStream(list(server.chunks))
    async with AsyncHTTP2Connection(ORIGIN, stream) as conn:
        with anyio.move_on_after(0.01):
            await conn.request("GET", URL)
        assert not conn.is_closed()
        assert conn.is_idle()
        assert conn.is_available()
        # The next request works on the same connection.
        sent = len(server.chunks)
        server.respond(3, b"next")
        stream._buffer.extend(server.chunks[sent:])
        response = await conn.request("GET", URL)
        assert response.content == b"next"


@pytest.mark.parametrize("seed", range(20))
def test_repeat_decoder_agrees_with_hpack(seed: int) -> None:
    """The memoizing HPACK decoder gives what a plain decoder gives, block after block, and
    ends with the same dynamic table, whatever mix of repeated blocks, indexing, never-indexed
    fields and table size changes (0 included, as nginx sends) the encoder produced."""
    import random

    import hpack

    from httpcore.http2._core import _RepeatDecoder

    rnd = random.Random(seed)
    encoder = hpack.Encoder()
    plain, memo = hpack.Decoder(), _RepeatDecoder()
    header_sets = [
        [(b":status", b"200"), (b"server", b"x"), (b"content-length", b"%d" % rnd.randrange(99))]
        for _ in range(3)
    ] + [
        [(b":status", b"404"), (b"date", b"Wed, 25 Nov 2026 15:00:00 GMT")],
        [(b":status", b"200"), hpack.NeverIndexedHeaderTuple(b"set-cookie", b"a=b")],
        [(b":status", b"200"), (b"x-big", b"v" * 3000)],  # evicts most of a 4096-byte table
    ]
    blocks = []
    for _ in range(200):
        if rnd.random() < 0.1:
            encoder.header_table_size = rnd.choice([0, 100, 4096])
        headers = rnd.choice(header_sets)
        blocks.append(encoder.encode(headers, huffman=rnd.random() < 0.7))
        if rnd.random() < 0.5:
            blocks.append(blocks[rnd.randrange(len(blocks))])  # a block seen before, as is
    for block in blocks:
        try:
            expected = plain.decode(block, raw=True)
        except hpack.HPACKDecodingError:
            with pytest.raises(hpack.HPACKDecodingError):
                memo.decode(block, raw=True)
            continue
        assert memo.decode(block, raw=True) == expected
        assert list(memo.header_table.dynamic_entries) == list(plain.header_table.dynamic_entries)
    assert memo._memo  # it did remember blocks


def test_repeat_decoder_remembers_what_nginx_sends(monkeypatch: pytest.MonkeyPatch) -> None:
    """nginx sets the table size to 0 and sends every response header as a Huffman-coded
    literal "with indexing" (which indexes nothing): the same block is decoded once."""
    import hpack

    from httpcore.http2._core import _RepeatDecoder

    encoder = hpack.Encoder()
    encoder.header_table_size = 0
    headers = [(b":status", b"200"), (b"server", b"nginx"), (b"content-length", b"2048")]
    first = encoder.encode(headers)  # starts with the table size update
    again = encoder.encode(headers)
    assert encoder.encode(headers) == again
    decoder = _RepeatDecoder()
    decodes = []
    real_decode = hpack.Decoder.decode

    def counted_decode(self: Any, *args: Any, **kwargs: Any) -> Any:
        decodes.append(1)
        return real_decode(self, *args, **kwargs)

    monkeypatch.setattr(hpack.Decoder, "decode", counted_decode)
    for block in [first, again, again, again]:
        assert decoder.decode(block, raw=True) == headers
    assert len(decodes) == 2
