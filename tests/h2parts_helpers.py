"""Shared by the HTTP/2 mutant tests of the smaller `httpcore.http2` modules (imported by
tests/test_http2_stream_mutants.py, test_http2_headers_mutants.py and test_http2_io_mutants.py):
streams a test scripts read by read (`quiet_stream`, `SyncScriptedStream`/`AsyncScriptedStream`),
the connection over them, what the client sent, and polling that works in every flavour."""

from __future__ import annotations

import queue
import time
from typing import Any, Callable, List, Optional, Tuple

import anyio
import h2.connection
import h2.events
import helpers
from test_http2 import FakeServer, decode_client, of_type

import httpcore

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


def client_events(stream: Any) -> List[Any]:
    """The h2 events a server sees from what the client wrote on `stream`."""
    return decode_client(stream.written)


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
