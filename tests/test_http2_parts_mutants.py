"""HTTP/2 behaviours that mutation testing (scripts/mutation) found untested in the smaller
modules of `httpcore.http2` (`_stream`, `_receive`, `_headers`, `_writer`, `_patches`,
`_reader`, `_send`); see scripts/mutation/SURVIVORS.md.

Byte-exact cases run over the recording mock backends (`helpers.api.backend`) with server
bytes made by `test_http2.FakeServer`; every behaviour runs under sync, asyncio and trio.
"""

from __future__ import annotations

from typing import Any, List

import h2.events
import helpers
import pytest
from test_http2 import FakeServer, decode_client, of_type

import httpcore

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

anyio_backend, flavour, api = helpers.anyio_backend, helpers.flavour, helpers.api

URL = "https://example.com/"


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
