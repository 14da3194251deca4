"""HTTP/2 behaviours that mutation testing (scripts/mutation) found untested in the smaller
modules of `httpcore.http2` (`_stream`, `_receive`, `_headers`, `_writer`, `_patches`,
`_reader`, `_send`); see scripts/mutation/SURVIVORS.md.

Byte-exact cases run over the recording mock backends (`helpers.api.backend`) with server
bytes made by `test_http2.FakeServer`; every behaviour runs under sync, asyncio and trio.
"""

from __future__ import annotations

from typing import Any, List, Optional

import h2.errors
import h2.events
import helpers
import pytest
from test_http2 import FakeServer, decode_client, of_type

import httpcore

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

anyio_backend, flavour, api = helpers.anyio_backend, helpers.flavour, helpers.api

URL = "https://example.com/"


ORIGIN = httpcore.Origin(b"https", b"example.com", 443)
#: In the chunks of a `quiet_stream`: this read times out (the server went quiet for a while).
QUIET = b"<read timeout>"


class SyncQuietStream(helpers.SyncRecordingStream):
    def read(self, max_bytes: int, timeout: Optional[float] = None) -> bytes:
        if self._buffer and self._buffer[0] is QUIET:
            self._buffer.pop(0)
            raise httpcore.ReadTimeout("timed out")
        return super().read(max_bytes, timeout)


class AsyncQuietStream(helpers.AsyncRecordingStream):
    async def read(self, max_bytes: int, timeout: Optional[float] = None) -> bytes:
        if self._buffer and self._buffer[0] is QUIET:
            self._buffer.pop(0)
            raise httpcore.ReadTimeout("timed out")
        return await super().read(max_bytes, timeout)


def quiet_stream(api: Any, chunks: List[bytes]) -> Any:
    """A recording mock stream (h2 by ALPN) whose read of a `QUIET` chunk times out."""
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
