"""The exchange of one stream: the request side (HEADERS, then the body with a bounded send
buffer) and the response side (head, then body).

Part of `HTTP3Core` (a base class of it).

Rules:
- A stream is opened (its HEADERS handed to aioquic) under the state lock, only while the
  connection takes new requests; the stream id is taken from aioquic then.
- The request body goes to aioquic chunk by chunk; while more than `SEND_BUFFER` bytes of the
  stream are unacknowledged, the request reads (or waits for the reader) until flow control
  and acknowledgements let them go. A stream the server reset or answered in full takes no
  more body.
- Interim (1xx) responses are skipped; trailers end the body; a reset stream, and a
  malformed response (`_h3conn.ClientH3Connection`), are a `RemoteProtocolError` for its
  request only.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

from aioquic.h3.events import DataReceived, HeadersReceived

from httpcore.base._drive import ITER, NEXT, Gen, close_iterator
from httpcore.base._exceptions import (
    LocalProtocolError,
    ReadTimeout,
    RemoteProtocolError,
    WriteTimeout,
)
from httpcore.base._models import Request
from httpcore.base._multiplex import ConnectionHealth, renewed
from httpcore.base._multiplex_core import response_head
from httpcore.base._trace import is_traced, traced

from ._h3conn import MalformedReceived
from ._quic import unsent_bytes
from ._reader import QuicReader, deadline_after, logger
from ._stream import Reset, Stream

_STOP = object()  # "stop sending the request body"


def _malformed(stream: Stream, event: MalformedReceived) -> RemoteProtocolError:
    return RemoteProtocolError(
        f"Malformed HTTP/3 response on stream {stream.stream_id}: {event.reason}"
    )


class StreamExchange:
    """The request and response sides of `HTTP3Core` (the rules at the top)."""

    #: Unacknowledged request body bytes per stream before the sender waits.
    SEND_BUFFER = 1 << 20

    _lock: Any
    _backend: Any
    _health: ConnectionHealth
    _quic: QuicReader
    _streams: Dict[int, Stream]
    _refusal_locked: Callable[[], Optional[BaseException]]
    _traced_response_closed: Callable[[Optional[Request], Stream, bool], Gen[None]]

    def _open_stream(
        self,
        request: Request,
        headers: List[Tuple[bytes, bytes]],
        content: Optional[bytes],
        read_timeout: Optional[float],
        write_timeout: Optional[float],
    ) -> Stream:
        """Queue the HEADERS of a new stream (no I/O)."""
        empty = content is not None and not content
        quic = self._quic
        with self._lock:
            refusal = self._refusal_locked()
            if refusal is not None:
                raise refusal
            assert quic.quic is not None and quic.h3 is not None
            stream_id = quic.quic.get_next_available_stream_id()
            try:
                quic.h3.send_headers(stream_id, headers, end_stream=empty)
            except Exception as exc:
                raise LocalProtocolError(exc) from exc
            stream = Stream(stream_id, read_timeout, write_timeout, empty, content is not None)
            self._streams[stream_id] = stream
        return stream

    def _send_request(
        self, request: Request, stream: Stream, content: Optional[bytes]
    ) -> Gen[None]:
        flush = self._quic.flush
        if is_traced(logger, request):
            info = {"request": request, "stream_id": stream.stream_id}
            yield from traced(
                logger, "send_request_headers", request, info, flush(stream.write_timeout)
            )
            yield from traced(
                logger,
                "send_request_body",
                request,
                info,
                self._send_body(request, stream, content),
            )
        elif content:
            yield from self._send_body(request, stream, content)  # head and body together
        elif stream.local_ended:  # no body: the HEADERS may share datagrams with others'
            yield from self._quic.send_soon(self._backend, stream.write_timeout)
        else:
            yield from flush(stream.write_timeout)
            yield from self._send_body(request, stream, content)

    def _send_body(self, request: Request, stream: Stream, content: Optional[bytes]) -> Gen[None]:
        if stream.local_ended:
            return
        if content is not None:
            yield from self._send_data(stream, content, end=True)
            return
        iterator = yield (ITER, request.stream)
        stream.replayable = False
        try:
            while True:
                chunk = yield (NEXT, iterator)
                if chunk is None:
                    break
                if chunk and (yield from self._send_data(stream, chunk, end=False)):
                    # The server reset the stream or already answered in full: let the body
                    # clean up now.
                    yield from close_iterator(iterator)
                    return
        except GeneratorExit:
            raise
        except BaseException:  # a failure, a timeout, a cancellation: the same
            yield from close_iterator(iterator)
            raise
        yield from self._send_data(stream, b"", end=True)

    def _send_data(self, stream: Stream, data: bytes, end: bool) -> Gen[bool]:
        """Hand `data` to aioquic, send, and wait while too much is unacknowledged.
        Returns True if the body should not be sent further."""
        quic = self._quic
        with self._lock:
            if stream.reset is not None or stream.remote_ended or stream.closed:
                return True
            error = self._health.send_error
            if error is not None:
                raise renewed(error)
            assert quic.h3 is not None
            try:
                quic.h3.send_data(stream.stream_id, data, end_stream=end)
            except Exception as exc:
                raise LocalProtocolError(exc) from exc
            if end:
                stream.local_ended = True
        yield from quic.flush(stream.write_timeout)
        if not end:
            try:
                stop = yield from quic.wait_for(
                    stream, self._check_send_buffer, deadline_after(stream.write_timeout)
                )
            except ReadTimeout as exc:
                # A wait for the server to take more of the body, in the write timeout.
                raise WriteTimeout(exc) from exc
            return stop is _STOP
        return False

    def _check_send_buffer(self, stream: Stream) -> Optional[object]:
        """A `wait_for` check: True once the stream may take more body, `_STOP` if it should
        not."""
        if stream.reset is not None or stream.remote_ended or stream.closed:
            return _STOP
        quic = self._quic.quic
        assert quic is not None
        if unsent_bytes(quic, stream.stream_id) < self.SEND_BUFFER:
            return True
        if stream.failure is not None:
            stream.raise_failure()
        return None

    # -- the response side ------------------------------------------------------------------

    def _receive_response_headers(
        self, request: Request, stream: Stream
    ) -> Gen[Tuple[int, List[Tuple[bytes, bytes]]]]:
        wait_for = self._quic.wait_for
        next_event = Stream.next_event
        while True:
            until = deadline_after(stream.read_timeout)  # each response head (1xx) anew
            event = yield from wait_for(stream, next_event, until)
            kind = type(event)
            if kind is HeadersReceived:
                status, headers = response_head(event.headers)
                if status >= 200:
                    return status, headers
                continue  # an interim (1xx) response
            if kind is Reset:
                raise RemoteProtocolError(f"Stream {stream.stream_id} reset by the server: {event}")
            if kind is MalformedReceived:
                raise _malformed(stream, event)
            if kind is DataReceived:
                raise RemoteProtocolError("DATA before the response headers")

    def _receive_body(self, request: Request, stream: Stream) -> Any:
        try:
            yield from traced(
                logger,
                "receive_response_body",
                request,
                {"request": request, "stream_id": stream.stream_id},
                self._body_chunks(stream),
            )
        except GeneratorExit:
            raise  # abandoned by its response stream, whose close runs the close generator
        except BaseException:
            yield from self._traced_response_closed(request, stream, False)
            raise

    def _body_chunks(self, stream: Stream) -> Any:
        wait_for = self._quic.wait_for
        next_event = Stream.next_event
        if stream.remote_ended and not stream.events:
            return
        while True:
            event = yield from wait_for(stream, next_event, deadline_after(stream.read_timeout))
            kind = type(event)
            if kind is DataReceived:
                data = event.data
                if data:
                    stream.consumed += len(data)
                    if stream.paced:
                        with self._lock:
                            self._quic.open_window_locked(stream)
                    yield data
                if event.stream_ended:
                    return
            elif kind is HeadersReceived:  # trailers
                if event.stream_ended:
                    return
            elif kind is Reset:
                raise RemoteProtocolError(f"Stream {stream.stream_id} reset by the server: {event}")
            elif kind is MalformedReceived:
                raise _malformed(stream, event)
