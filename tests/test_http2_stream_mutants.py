"""HTTP/2 behaviours that mutation testing (scripts/mutation) found untested in `_stream` and
`_receive`: a started response cut by GOAWAY, WINDOW_UPDATEs waking only the requests waiting
for window, and response bodies giving their window back; see scripts/mutation/SURVIVORS.md.
Byte-exact cases run over the recording mock backends (`helpers.api.backend`) with server bytes
made by `test_http2.FakeServer`, under sync, asyncio and trio."""

from __future__ import annotations

import time
from typing import Any, Dict

import h2.connection
import h2.errors
import h2.events
import h2.settings
import helpers
import hyperframe.frame
import pytest
from h2parts_helpers import (
    BIG,
    QUIET,
    UPLOAD,
    URL,
    WIDE,
    AsyncScriptedStream,
    SyncScriptedStream,
    big_response,
    client_events,
    h2_connection,
    pause,
    quiet_stream,
    requests_sent,
    sent_data,
    until,
)
from test_http2 import FakeServer, of_type

import httpcore

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


anyio_backend, flavour, api = helpers.anyio_backend, helpers.flavour, helpers.api


def fail_writes(stream: Any) -> None:
    """From now on every write to the recording stream fails (the server stopped reading)."""
    stream._write_error = True


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


async def test_a_failed_body_read_writes_nothing_until_the_connection_closes(api: Any) -> None:
    """A read timeout in the body releases the stream without writing (an error path: the
    network may be what failed). Silent for a whole read timeout, the connection takes no new
    request, and closes without writing that RST_STREAM (it was due ahead of another write)."""
    server = FakeServer()
    server.expect(1)
    server.h2.send_headers(1, [(b":status", b"200")])
    server.h2.send_data(1, b"part")
    server.flush()
    stream = quiet_stream(api, [*server.chunks, QUIET])
    async with h2_connection(api, stream) as conn:
        async with conn.stream("GET", URL) as response:
            with pytest.raises(httpcore.ReadTimeout):
                await response.aread()
            assert of_type(client_events(stream), h2.events.StreamReset) == []
        assert of_type(client_events(stream), h2.events.StreamReset) == []
        assert not conn.is_available()
        with pytest.raises(httpcore.ConnectionNotAvailable):
            await conn.request("GET", URL)
    events = client_events(stream)
    assert of_type(events, h2.events.StreamReset) == []
    assert len(of_type(events, h2.events.RequestReceived)) == 1


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


async def test_a_body_of_many_small_frames_filed_at_once_arrives_whole_and_in_order(
    api: Any,
) -> None:
    """500 one-byte DATA frames in one read: the reader files them all before the body is
    read (past the short list a stream starts with, `StreamBase.events`), and the body comes
    out whole, in order, one chunk per frame."""
    server = FakeServer()
    server.expect(1)
    server.h2.send_headers(1, [(b":status", b"200")])
    for index in range(500):
        server.h2.send_data(1, b"%d" % (index % 10))
    server.h2.end_stream(1)
    server.flush()
    assert len(server.chunks) == 2  # the preface, then all the frames at once
    backend = api.backend(server.chunks, http2=True)
    async with api.ConnectionPool(network_backend=backend, http2=True) as pool:
        async with pool.stream("GET", URL) as response:
            chunks = [chunk async for chunk in response.aiter_stream()]
    assert chunks == [b"%d" % (index % 10) for index in range(500)]
