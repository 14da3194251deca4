"""HTTP/2 behaviours that mutation testing (scripts/mutation) found untested in `_writer`,
`_reader` and `_send`: write and read failures reaching later requests, the reader role and its
hand-over, and uploads stopped by a reset, GOAWAY or a complete answer; see
scripts/mutation/SURVIVORS.md. Byte-exact cases run over the recording mock backends
(`helpers.api.backend`) with server bytes made by `test_http2.FakeServer`, under sync, asyncio
and trio."""

from __future__ import annotations

import threading
from typing import Any, AsyncIterator, Dict, Iterator, List

import anyio
import h2.connection
import h2.events
import h2.settings
import helpers
import hyperframe.frame
import pytest
from h2.errors import ErrorCodes
from h2parts_helpers import (
    BIG,
    RESET,
    UPLOAD,
    URL,
    WIDE,
    AsyncScriptedStream,
    SyncScriptedStream,
    big_response,
    client_events,
    h2_connection,
    quiet_stream,
    requests_sent,
    sent_data,
    until,
)
from test_http2 import FakeServer, of_type

import httpcore

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


anyio_backend, flavour, api = helpers.anyio_backend, helpers.flavour, helpers.api


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
    # The server is told why (RFC 9113 §5.4.1): h2's GOAWAY went out before the close.
    goaways = of_type(client_events(stream), h2.events.ConnectionTerminated)
    assert [(g.error_code, g.last_stream_id) for g in goaways] == [(ErrorCodes.PROTOCOL_ERROR, 0)]


async def test_a_goaway_the_server_no_longer_takes_leaves_the_protocol_error(api: Any) -> None:
    """Writing the GOAWAY of a connection error fails (the server is gone): the caller gets
    the protocol error, not the write's."""
    server = FakeServer()
    server.expect(1)
    server.raw(hyperframe.frame.DataFrame(1, b"early").serialize())
    stream = quiet_stream(api, server.chunks)
    # The preface, the request's HEADERS, the SETTINGS acknowledgement; not the GOAWAY.
    stream.writes_before_failing = 3
    async with h2_connection(api, stream) as conn:
        with pytest.raises(httpcore.RemoteProtocolError, match="before headers"):
            await conn.request("GET", URL)
        assert conn.is_closed()
    assert len(stream.written) == 3


@pytest.mark.parametrize(("write_timeout", "goaway_timeout"), [(None, 1.0), (5.0, 1.0), (0.3, 0.3)])
async def test_the_goaway_of_a_connection_error_is_written_within_a_second(
    api: Any, write_timeout: Any, goaway_timeout: float
) -> None:
    """The caller waits for the error while the GOAWAY goes out: the request's write timeout
    bounds that write, and never more than a second."""
    server = FakeServer()
    server.expect(1)
    server.raw(hyperframe.frame.DataFrame(1, b"early").serialize())
    stream = quiet_stream(api, server.chunks)
    async with h2_connection(api, stream) as conn:
        with pytest.raises(httpcore.RemoteProtocolError):
            await conn.request("GET", URL, extensions={"timeout": {"write": write_timeout}})
    writes = [timeout for kind, timeout in stream.timeouts if kind == "write"]
    assert writes[-1] == goaway_timeout
    assert writes[:-1] == [write_timeout] * (len(writes) - 1)


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
