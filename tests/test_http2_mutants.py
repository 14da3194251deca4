"""HTTP/2 behaviours that mutation testing (scripts/mutation) found untested."""

from __future__ import annotations

import contextlib
import ssl
from typing import Any, List, Optional, Tuple

import anyio
import h2.config
import h2.connection
import h2.events
import h2.settings
import helpers
import hyperframe.frame
import pytest
from h2.errors import ErrorCodes
from test_http2 import ORIGIN, URL, FakeServer, decode_client, of_type
from test_shared_connect import StallingResumableStream

import httpcore
from httpcore.http2 import AsyncHTTP2Connection, HTTP2Connection, HTTPConnectionState

anyio_backend, flavour, api = helpers.anyio_backend, helpers.flavour, helpers.api


def test_connection_state_values_match_httpcore_1_0() -> None:
    # Exported by httpcore-http2; httpcore 1.0.9 numbers its HTTP/2 states the same way.
    assert [(state.name, int(state)) for state in HTTPConnectionState] == [
        ("ACTIVE", 1),
        ("IDLE", 2),
        ("CLOSED", 3),
    ]


@pytest.mark.anyio
async def test_an_idle_http2_connection_is_kept_until_its_keepalive_expiry(
    api: Any, tls_server: Any, client_ssl_context: ssl.SSLContext
) -> None:
    async with api.ConnectionPool(
        ssl_context=client_ssl_context, http2=True, keepalive_expiry=60.0
    ) as pool:
        first = await pool.request("GET", tls_server.url + "/")
        assert first.extensions["http_version"] == b"HTTP/2"
        [connection] = pool.connections
        assert connection.is_idle() and not connection.has_expired()
        await pool.request("GET", tls_server.url + "/")
        assert pool.connections == [connection]


# -- http2/_core.py: the lifecycle of a stream, at the byte level (scripts/mutation) ---------
#
# Over the mock streams, in every flavour: `FakeServer` (tests/test_http2.py) scripts what the
# server sends, one chunk per read; what the client wrote is decoded by a server-side h2
# (`decode_client`) to check the frames it sent.


def _h2_connection(api: Any, stream: Any, **kwargs: Any) -> Any:
    """An `HTTP2Connection` (sync, seen through the async names) or `AsyncHTTP2Connection`."""
    if api.is_async:
        return AsyncHTTP2Connection(ORIGIN, stream, **kwargs)
    return helpers.SyncClient(HTTP2Connection(ORIGIN, stream, **kwargs))


class _Observed:
    """What the tests below observe on a recording mock stream besides the bytes written:
    the size of each read, the closes; a write failure or a read timeout on demand."""

    _buffer: List[bytes]

    def _observe(self, timeout_when_drained: bool) -> None:
        self.read_sizes: List[int] = []
        self.closes = 0
        self.fail_writes = False  # the server went away: writes fail from now on
        self._timeout_when_drained = timeout_when_drained

    def feed(self, chunks: List[bytes]) -> None:
        """More chunks for the following reads."""
        self._buffer.extend(chunks)

    def _before_read(self, max_bytes: int) -> None:
        self.read_sizes.append(max_bytes)
        if self._timeout_when_drained and not self._buffer:
            raise httpcore.ReadTimeout("timed out")

    def _before_write(self) -> None:
        if self.fail_writes:
            raise httpcore.WriteError("Broken pipe")


class _SyncStream(_Observed, helpers.SyncRecordingStream):
    def __init__(self, chunks: List[bytes], timeout_when_drained: bool = False) -> None:
        super().__init__(list(chunks))
        self._observe(timeout_when_drained)

    def read(self, max_bytes: int, timeout: Optional[float] = None) -> bytes:
        self._before_read(max_bytes)
        return super().read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: Optional[float] = None) -> None:
        self._before_write()
        super().write(buffer, timeout)

    def close(self) -> None:
        self.closes += 1
        super().close()


class _AsyncStream(_Observed, helpers.AsyncRecordingStream):
    def __init__(self, chunks: List[bytes], timeout_when_drained: bool = False) -> None:
        super().__init__(list(chunks))
        self._observe(timeout_when_drained)

    async def read(self, max_bytes: int, timeout: Optional[float] = None) -> bytes:
        self._before_read(max_bytes)
        return await super().read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: Optional[float] = None) -> None:
        self._before_write()
        await super().write(buffer, timeout)

    async def aclose(self) -> None:
        self.closes += 1
        await super().aclose()


def _stream(api: Any, chunks: List[bytes], timeout_when_drained: bool = False) -> Any:
    cls = _AsyncStream if api.is_async else _SyncStream
    return cls(chunks, timeout_when_drained)


def _resets(stream: Any) -> List[Tuple[int, int]]:
    """The RST_STREAM frames the client wrote: (stream id, error code)."""
    events = of_type(decode_client(stream.written), h2.events.StreamReset)
    return [(event.stream_id, event.error_code) for event in events]


def _connection_window_updates(stream: Any) -> List[int]:
    """The increments of the connection-level WINDOW_UPDATE frames the client wrote."""
    events = of_type(decode_client(stream.written), h2.events.WindowUpdated)
    return [event.delta for event in events if event.stream_id == 0]


def _headers_only(server: FakeServer, stream_id: int) -> None:
    """The server answers `stream_id` with response headers, the body comes later."""
    server.expect(stream_id)
    server.h2.send_headers(stream_id, [(b":status", b"200")])
    server.flush()


@pytest.mark.anyio
async def test_can_handle_request_is_true_for_its_own_origin_only(api: Any) -> None:
    async with _h2_connection(api, _stream(api, [])) as conn:
        assert conn.can_handle_request(ORIGIN)
        assert not conn.can_handle_request(httpcore.Origin(b"https", b"example.org", 443))
        assert not conn.can_handle_request(httpcore.Origin(b"http", b"example.com", 443))


@pytest.mark.anyio
async def test_reads_ask_the_network_stream_for_read_num_bytes(api: Any) -> None:
    stream = _stream(api, FakeServer().respond(1).chunks)
    async with _h2_connection(api, stream) as conn:
        assert (await conn.request("GET", URL)).content == b"Hello, world!"
    # API.md §4.4: READ_NUM_BYTES = 65536, as httpcore 1.0.9 reads.
    assert stream.read_sizes and set(stream.read_sizes) == {65536}


@pytest.mark.anyio
async def test_only_the_first_request_sends_the_connection_preface(api: Any) -> None:
    stream = _stream(api, FakeServer().respond(1).respond(3, b"again").chunks)
    names: List[str] = []
    trace = {"trace": api.trace(lambda name, info: names.append(name))}
    async with _h2_connection(api, stream) as conn:
        assert (await conn.request("GET", URL, extensions=trace)).status == 200
        assert names[:2] == [
            "http2.send_connection_init.started",
            "http2.send_connection_init.complete",
        ]
        names.clear()
        assert (await conn.request("GET", URL, extensions=trace)).content == b"again"
    assert names[:2] == [
        "http2.send_request_headers.started",
        "http2.send_request_headers.complete",
    ]
    assert not [name for name in names if "connection_init" in name]


@pytest.mark.anyio
async def test_a_response_closed_before_its_end_resets_its_stream_at_once(api: Any) -> None:
    server = FakeServer()
    _headers_only(server, 1)
    server.h2.send_data(1, b"part of it")
    server.flush()
    server.respond(3, b"next")
    stream = _stream(api, server.chunks)
    async with _h2_connection(api, stream) as conn:
        async with conn.stream("GET", URL) as response:
            assert response.status == 200
        # Written when the response closed (the server can stop sending), not later.
        assert _resets(stream) == [(1, ErrorCodes.CANCEL)]
        assert conn.is_idle() and conn.is_available()
        assert (await conn.request("GET", URL)).content == b"next"
    assert _resets(stream) == [(1, ErrorCodes.CANCEL)]


@pytest.mark.anyio
async def test_complete_responses_reset_no_stream(api: Any) -> None:
    stream = _stream(api, FakeServer().respond(1).respond(3, b"again").chunks)
    async with _h2_connection(api, stream) as conn:
        assert (await conn.request("GET", URL)).content == b"Hello, world!"
        async with conn.stream("GET", URL) as response:
            assert await response.aread() == b"again"
    assert _resets(stream) == []


@pytest.mark.anyio
async def test_after_a_graceful_goaway_only_accepted_streams_are_reset(api: Any) -> None:
    server = FakeServer()
    _headers_only(server, 1)
    _headers_only(server, 3)
    server.goaway(last_stream_id=3)  # stream 5 (sent before this is read) is refused
    server.h2.send_data(1, b"first", end_stream=True)
    server.flush()
    stream = _stream(api, server.chunks)
    async with _h2_connection(api, stream) as conn:
        async with conn.stream("GET", URL) as first:
            async with conn.stream("GET", URL) as third:
                assert third.extensions["stream_id"] == 3
                with pytest.raises(httpcore.ConnectionNotAvailable):
                    await conn.request("GET", URL)  # stream 5
            # Stream 3 (accepted: last_stream_id is 3) closed early: reset. Stream 5 was
            # never processed by the server: nothing to reset.
            assert _resets(stream) == [(3, ErrorCodes.CANCEL)]
            assert await first.aread() == b"first"
        assert conn.is_closed()  # draining, and no stream left
    events = decode_client(stream.written)
    assert [e.stream_id for e in of_type(events, h2.events.RequestReceived)] == [1, 3, 5]
    assert _resets(stream) == [(3, ErrorCodes.CANCEL)]


# h2 sends a connection-level WINDOW_UPDATE once half of the window (2**24 + 65535, see
# API.md §4.4) has been processed.
_HALF_CONNECTION_WINDOW = (2**24 + 65535) // 2


@pytest.mark.anyio
async def test_data_a_closed_response_left_unread_is_credited_back(api: Any) -> None:
    server = FakeServer()
    _headers_only(server, 1)
    server.expect(3)
    server.h2.send_data(1, b"0123456789", end_stream=True)
    server.h2.send_headers(3, [(b":status", b"200")])
    # Stream 3's body, in one chunk with the above: read and filed with stream 3, not consumed.
    body = b"x" * _HALF_CONNECTION_WINDOW
    frames = [
        hyperframe.frame.DataFrame(3, body[offset : offset + 16384]).serialize()
        for offset in range(0, len(body), 16384)
    ]
    server.chunks.append(server.h2.data_to_send() + b"".join(frames))
    stream = _stream(api, server.chunks)
    async with _h2_connection(api, stream) as conn:
        async with conn.stream("GET", URL) as first:
            async with conn.stream("GET", URL) as third:
                assert third.status == 200
            # Stream 3's unread body counts as processed: exactly that much of the
            # connection window is given back (stream 1's 10 bytes are not read yet).
            assert _connection_window_updates(stream) == [2**24, len(body)]
            assert await first.aread() == b"0123456789"
    assert _connection_window_updates(stream) == [2**24, len(body)]
    assert _resets(stream) == [(3, ErrorCodes.CANCEL)]


@pytest.mark.anyio
async def test_a_failed_write_when_a_response_closes_is_not_raised(api: Any) -> None:
    server = FakeServer()
    _headers_only(server, 1)
    server.h2.send_data(1, b"part of it")
    server.flush()
    stream = _stream(api, server.chunks)
    async with _h2_connection(api, stream) as conn:
        async with conn.stream("GET", URL) as response:
            assert response.status == 200
            stream.fail_writes = True  # the RST_STREAM of the early close will not go out
        # The response closed quietly; the connection remembers the failed write.
        assert _resets(stream) == []
        assert not conn.is_available() and conn.has_expired()
        with pytest.raises(httpcore.ConnectionNotAvailable):
            await conn.request("GET", URL)


@pytest.mark.anyio
async def test_after_the_server_disconnected_the_connection_is_idle_and_says_why(
    api: Any,
) -> None:
    server = FakeServer()
    _headers_only(server, 1)
    server.raw(b"")
    stream = _stream(api, server.chunks)
    async with _h2_connection(api, stream) as conn:
        with pytest.raises(httpcore.RemoteProtocolError, match=r"^Server disconnected$"):
            await conn.request("GET", URL)
        # No GOAWAY: IDLE once no stream is left (API.md §4.4), for the pool to retire.
        assert conn.info() == "'https://example.com:443', HTTP/2, IDLE, Request Count: 1"
        assert not conn.is_available() and conn.has_expired() and stream.closes == 0
        # The failure is raised again for a later request, which is not counted.
        with pytest.raises(httpcore.RemoteProtocolError, match=r"^Server disconnected$"):
            await conn.request("GET", URL)
        assert conn.info() == "'https://example.com:443', HTTP/2, IDLE, Request Count: 1"
    assert stream.closes == 1


@pytest.mark.anyio
async def test_closing_twice_closes_the_network_stream_once(api: Any) -> None:
    stream = _stream(api, FakeServer().respond(1).chunks)
    conn = _h2_connection(api, stream)
    assert (await conn.request("GET", URL)).status == 200
    assert stream.closes == 0
    await conn.aclose()
    assert conn.is_closed() and stream.closes == 1
    await conn.aclose()
    assert stream.closes == 1


@pytest.mark.anyio
async def test_at_most_100_streams_at_once_and_a_slot_wait_that_times_out(api: Any) -> None:
    """Our SETTINGS_MAX_CONCURRENT_STREAMS (100) bounds the streams even when the server
    allows more; a request that gives up waiting for a slot leaves the others alone."""
    codes = h2.settings.SettingCodes
    server = FakeServer(settings={codes.MAX_CONCURRENT_STREAMS: 1000})
    server.respond(1, b"warm-up")
    held = range(3, 203, 2)
    for stream_id in held:
        _headers_only(server, stream_id)
    for stream_id in held:
        server.h2.send_data(stream_id, b"%d" % stream_id, end_stream=True)
    server.flush()
    server.respond(203, b"last")
    stream = _stream(api, server.chunks)
    no_wait = {"timeout": {"pool": 0.01}}
    async with _h2_connection(api, stream) as conn:
        assert (await conn.request("GET", URL)).content == b"warm-up"
        async with contextlib.AsyncExitStack() as stack:
            responses = [await stack.enter_async_context(conn.stream("GET", URL)) for _ in held]
            assert [r.extensions["stream_id"] for r in responses] == list(held)
            for _ in range(2):
                with pytest.raises(httpcore.PoolTimeout):
                    await conn.request("GET", URL, extensions=no_wait)
            assert [await r.aread() for r in responses] == [b"%d" % i for i in held]
        response = await conn.request("GET", URL, extensions=no_wait)
        assert response.content == b"last" and response.extensions["stream_id"] == 203
        assert conn.info() == "'https://example.com:443', HTTP/2, IDLE, Request Count: 104"


@pytest.mark.anyio
async def test_a_request_that_failed_writes_nothing_on_its_way_out(api: Any) -> None:
    server = FakeServer()
    stream = _stream(api, server.chunks, timeout_when_drained=True)
    async with _h2_connection(api, stream) as conn:
        with pytest.raises(httpcore.ReadTimeout):
            await conn.request("GET", URL, extensions={"timeout": {"read": 1.0}})
        # Its stream's RST_STREAM waits for the connection's next write.
        assert _resets(stream) == []
        # Silent for a whole read timeout, the connection takes no new request (it may be
        # dead); with nothing left in flight it is of no further use.
        assert not conn.is_available() and conn.has_expired()
        with pytest.raises(httpcore.ConnectionNotAvailable):
            await conn.request("GET", URL)
        assert _resets(stream) == []
    # Nor does closing it: the RST_STREAM was only ever due ahead of another write.
    assert _resets(stream) == []


# -- the same, where only tasks can show it (asyncio, trio) ----------------------------------
#
# A cancelled task, or requests queued behind each other at a known point
# (`anyio.wait_all_tasks_blocked()`): threads give no such point without sleeping.

_async_only = pytest.mark.parametrize("flavour", ["asyncio", "trio"])


@_async_only
@pytest.mark.anyio
async def test_a_cancelled_preface_closes_the_connection_no_other_request_uses() -> None:
    # The preface write stalls; resumable writes: the cancelled request finishes it.
    stream = StallingResumableStream(FakeServer().respond(1).chunks, stall_on=1)
    async with AsyncHTTP2Connection(ORIGIN, stream) as conn:
        scope = anyio.CancelScope()

        async def request() -> None:
            with scope:
                await conn.request("GET", URL)

        async with anyio.create_task_group() as tg:
            tg.start_soon(request)
            await anyio.wait_all_tasks_blocked()
            assert stream.stalled and stream.writes == 1
            scope.cancel()
        assert scope.cancelled_caught
        assert conn.is_closed()  # API.md §4.4: "If the preface fails, the connection is closed."


@_async_only
@pytest.mark.anyio
async def test_a_cancelled_preface_keeps_the_connection_for_a_request_on_it() -> None:
    server = FakeServer().respond(1).respond(3, b"again")
    stream = StallingResumableStream(server.chunks, stall_on=1)
    async with AsyncHTTP2Connection(ORIGIN, stream) as conn:
        scope = anyio.CancelScope()
        done: List[bool] = []
        first_done = anyio.Event()

        async def first() -> None:
            with scope:
                await conn.request("GET", URL)
            done.append(scope.cancelled_caught)
            first_done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(first)
            await anyio.wait_all_tasks_blocked()
            assert stream.stalled
            # The second request's HEADERS queue behind the stalled preface.
            async with conn.stream("GET", URL) as response:
                scope.cancel()
                with anyio.fail_after(1):
                    await first_done.wait()
                assert done == [True]  # the first gave up, having finished the preface
                assert await response.aread() == b"Hello, world!"
        assert not conn.is_closed()
        assert (await conn.request("GET", URL)).content == b"again"
    server_side = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=False, header_encoding=None)
    )
    events = server_side.receive_data(stream.sent)
    assert [e.stream_id for e in events if isinstance(e, h2.events.RequestReceived)] == [1, 3]


@_async_only
@pytest.mark.anyio
async def test_a_goaway_turns_away_a_request_queued_for_a_slot_at_once() -> None:
    codes = h2.settings.SettingCodes
    server = FakeServer(settings={codes.MAX_CONCURRENT_STREAMS: 1})
    _headers_only(server, 1)
    server.goaway(last_stream_id=1)
    server.h2.send_data(1, b"first", end_stream=True)
    server.flush()
    async with AsyncHTTP2Connection(ORIGIN, _AsyncStream(server.chunks)) as conn:
        outcome: List[type] = []
        refused = anyio.Event()

        async def second() -> None:
            try:
                await conn.request("GET", URL, extensions={"timeout": {"pool": 5.0}})
            except Exception as exc:
                outcome.append(type(exc))
            refused.set()

        async with conn.stream("GET", URL) as first:
            async with anyio.create_task_group() as tg:
                tg.start_soon(second)
                await anyio.wait_all_tasks_blocked()
                assert outcome == []  # waits for the only slot, which the first holds
                # The first reads the GOAWAY with its body: the second is refused then,
                # not when the first gives its slot back.
                assert await first.aread() == b"first"
                with anyio.fail_after(1):  # (not when the first closes, which never comes)
                    await refused.wait()
                assert outcome == [httpcore.ConnectionNotAvailable]
        assert conn.is_closed()


@_async_only
@pytest.mark.anyio
async def test_requests_queued_for_a_slot_when_stream_ids_run_out_are_all_turned_away() -> None:
    codes = h2.settings.SettingCodes
    server = FakeServer(settings={codes.MAX_CONCURRENT_STREAMS: 1})
    _headers_only(server, 1)
    async with AsyncHTTP2Connection(ORIGIN, _AsyncStream(server.chunks)) as conn:
        outcomes: List[type] = []
        both_done = anyio.Event()

        async def queued() -> None:
            try:
                await conn.request("GET", URL, extensions={"timeout": {"pool": 5.0}})
            except Exception as exc:
                outcomes.append(type(exc))
            if len(outcomes) == 2:
                both_done.set()

        async with anyio.create_task_group() as tg:
            async with conn.stream("GET", URL):
                tg.start_soon(queued)
                tg.start_soon(queued)
                await anyio.wait_all_tasks_blocked()
                assert outcomes == []  # both wait for the only slot
                # (API.md §4.4: tests reach exhausted stream ids through `_h2_state`.)
                conn._h2_state.highest_outbound_stream_id = 2**31 - 1
            # The slot goes to the first in line, which finds no stream id and passes the
            # slot on to the next: each is turned away at once (the pool retries elsewhere),
            # not after its pool timeout.
            with anyio.fail_after(1):
                await both_done.wait()
            assert outcomes == [httpcore.ConnectionNotAvailable] * 2
        assert conn.info() == "'https://example.com:443', HTTP/2, IDLE, Request Count: 1"
        assert not conn.is_available() and conn.has_expired()


class _TimedResumableStream(StallingResumableStream):
    """Records the timeout each `resume_write` is given."""

    def __init__(self, chunks: List[bytes], stall_on: int) -> None:
        super().__init__(chunks, stall_on)
        self.resume_timeouts: List[Any] = []

    async def resume_write(self, buffer: bytes, timeout: object = None) -> None:
        self.resume_timeouts.append(timeout)
        await super().resume_write(buffer, timeout)


@_async_only
@pytest.mark.parametrize(("write_timeout", "budget"), [(None, 5.0), (2.5, 2.5)])
@pytest.mark.anyio
async def test_a_cancelled_writer_has_its_write_timeout_or_5_s_to_finish(
    write_timeout: Optional[float], budget: float
) -> None:
    # Without a write timeout: HTTP2Connection.CANCELLED_WRITE_GRACE (docs/CORE.md).
    assert AsyncHTTP2Connection.CANCELLED_WRITE_GRACE == HTTP2Connection.CANCELLED_WRITE_GRACE
    stream = _TimedResumableStream(FakeServer().respond(1).chunks, stall_on=1)
    async with AsyncHTTP2Connection(ORIGIN, stream) as conn:
        scope = anyio.CancelScope()

        async def request() -> None:
            with scope:
                await conn.request("GET", URL, extensions={"timeout": {"write": write_timeout}})

        async with anyio.create_task_group() as tg:
            tg.start_soon(request)
            await anyio.wait_all_tasks_blocked()
            assert stream.stalled
            scope.cancel()
    assert stream.resume_timeouts == [budget]


@_async_only
@pytest.mark.anyio
async def test_a_slot_granted_then_taken_back_by_a_lower_limit_is_not_counted_twice() -> None:
    """A queued request is granted a slot (the server raised its limit), but the server
    lowers it again before the request opens its stream: the request queues again, and
    when it gives up, the slot it no longer holds is not given back a second time."""
    codes = h2.settings.SettingCodes
    server = FakeServer(settings={codes.MAX_CONCURRENT_STREAMS: 1})
    _headers_only(server, 1)
    server.settings({codes.MAX_CONCURRENT_STREAMS: 2})
    sent = len(server.chunks)
    server.settings({codes.MAX_CONCURRENT_STREAMS: 1})
    server.h2.send_data(1, b"part")
    server.flush()
    server.chunks[sent:] = [b"".join(server.chunks[sent:])]
    # The first request reads them one after the other (the mock stream's reads return at
    # once): the queued request runs only after both.
    async with AsyncHTTP2Connection(ORIGIN, _AsyncStream(server.chunks)) as conn:
        scope = anyio.CancelScope()
        done = anyio.Event()

        async def queued() -> None:
            with scope:  # no pool timeout: it waits until it gives up (cancelled)
                await conn.request("GET", URL)
            done.set()

        async with conn.stream("GET", URL) as first:
            async with anyio.create_task_group() as tg:
                tg.start_soon(queued)
                await anyio.wait_all_tasks_blocked()
                chunks = first.aiter_stream()
                assert await chunks.__anext__() == b"part"  # and the two SETTINGS
                # The queued request wakes up with its slot, finds no room and queues again.
                await anyio.wait_all_tasks_blocked()
                scope.cancel()
                with anyio.fail_after(5):
                    await done.wait()
                assert scope.cancelled_caught
                # Still one stream at a time: the next request waits (and times out).
                with pytest.raises(httpcore.PoolTimeout):
                    await conn.request("GET", URL, extensions={"timeout": {"pool": 0.05}})
                await chunks.aclose()


@pytest.mark.anyio
async def test_a_response_closed_after_its_connection_writes_nothing(api: Any) -> None:
    server = FakeServer()
    _headers_only(server, 1)
    server.h2.send_data(1, b"part of it")
    server.flush()
    stream = _stream(api, server.chunks)
    conn = _h2_connection(api, stream)
    async with conn.stream("GET", URL) as response:
        assert response.status == 200
        written = list(stream.written)
        await conn.aclose()
        assert conn.is_closed() and stream.closes == 1
    # (It used to flush h2's queue, the GOAWAY of the close among it, on the closed stream.)
    assert stream.written == written


@pytest.mark.anyio
async def test_a_body_read_after_its_connection_closed_writes_nothing(api: Any) -> None:
    """Reading what had arrived of a body after `close()` acknowledges it to h2, which queues
    a WINDOW_UPDATE: it is dropped, not written on the closed network stream."""
    server = FakeServer()
    server.expect(1)
    # Headers and the first DATA in one read: the DATA is filed with the stream at once.
    server.h2.send_headers(1, [(b":status", b"200")])
    server.h2.send_data(1, b"part of it")
    server.flush()
    stream = _stream(api, server.chunks)
    conn = _h2_connection(api, stream)
    async with conn.stream("GET", URL) as response:
        assert response.status == 200
        written = list(stream.written)
        await conn.aclose()
        received = []
        with pytest.raises(httpcore.ReadError):
            async for chunk in response.aiter_stream():
                received.append(chunk)
        assert received == [b"part of it"]
    assert stream.written == written
    assert stream.closes == 1
