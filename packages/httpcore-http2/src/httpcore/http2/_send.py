"""The request side of a stream: opening it (HEADERS), then sending the body within the
flow-control windows.

Part of `HTTP2Core` (a base class of it), which calls `_open_stream` once the request holds a
stream slot.

Rules:
- A stream is opened (HEADERS queued) under the state lock, only while the connection takes
  new requests; the stream id is taken from h2 then, so HEADERS go out in stream-id order.
  No stream id left makes the connection EXHAUSTED; a limit the server lowered after the
  slot was granted sends the request back to the slot queue.
- Body data is queued in frames no bigger than the peer allows and the windows permit,
  then flushed by the writer; with a window used up, the request waits (reading, or for the
  reader) until the server opens it.
- The server may stop the body: a reset stream, a response already complete. The rest of
  the body is then not sent, and the response tells how the request ended. A write the
  network refused likewise ends the upload quietly: what the server sent is read next.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional

import h2.exceptions

from httpcore.base._drive import ITER, NEXT, Gen, close_iterator
from httpcore.base._exceptions import (
    ConnectionNotAvailable,
    LocalProtocolError,
    RemoteProtocolError,
    WriteError,
)
from httpcore.base._models import Request
from httpcore.base._multiplex import ConnectionHealth, renewed
from httpcore.base._trace import is_traced, traced

from ._headers import request_headers
from ._patches import H2Connection
from ._reader import FrameReader, logger
from ._stream import ENDED, RESET, StateLock, Stream
from ._writer import FrameWriter

#: The window each new stream (and, once, the connection) is opened by for the server.
WINDOW_INCREMENT = 2**24
_STOP = object()  # "stop sending the request body": the server finished or reset the stream


class RequestSending:
    """The sending side of `HTTP2Core` (the rules at the top)."""

    _h2_state: H2Connection
    _health: ConnectionHealth
    _lock: StateLock
    _reader: FrameReader
    _streams: Dict[int, Stream]
    _writer: FrameWriter
    _refusal_locked: Callable[[], Optional[BaseException]]

    def _open_stream(
        self,
        request: Request,
        authority: bytes,
        content: Optional[bytes],
        read_timeout: Optional[float],
        write_timeout: Optional[float],
    ) -> Optional[Stream]:
        """Queue the HEADERS of a new stream (no I/O). None: no room after all, queue again."""
        empty = content is not None and not content
        headers = request_headers(request, authority)
        with self._lock:
            health = self._health
            refusal = self._refusal_locked()
            if refusal is not None:
                # This request has sent nothing here: after a GOAWAY or a write the network
                # refused, the pool sends it elsewhere (`ConnectionNotAvailable`); a
                # connection that failed while it took requests gives that failure.
                raise refusal
            h2_state = self._h2_state
            try:
                stream_id = h2_state.get_next_available_stream_id()
            except h2.exceptions.NoAvailableStreamIDError:
                health.exhaust()
                raise ConnectionNotAvailable()
            try:
                h2_state.open_request(stream_id, headers, empty, WINDOW_INCREMENT)
            except h2.exceptions.TooManyStreamsError:
                # The server lowered its limit after our slot was granted: queue again.
                return None
            except h2.exceptions.ProtocolError as exc:
                raise LocalProtocolError(exc) from exc
            stream = Stream(stream_id, read_timeout, write_timeout, empty, content is not None)
            self._streams[stream_id] = stream
        return stream

    def _send_request(
        self, request: Request, stream: Stream, content: Optional[bytes]
    ) -> Gen[None]:
        """Send the HEADERS queued by `_open_stream`, then the body."""
        write_timeout = stream.write_timeout
        flush = self._writer.flush
        try:
            if is_traced(logger, request):
                info = {"request": request, "stream_id": stream.stream_id}
                yield from traced(
                    logger, "send_request_headers", request, info, flush(write_timeout)
                )
                yield from traced(
                    logger,
                    "send_request_body",
                    request,
                    info,
                    self._send_request_body(request, stream, content),
                )
            elif content:
                # Head and body go out together when the body is in memory (and fits the
                # window).
                yield from self._send_request_body(request, stream, content)
            else:
                yield from flush(write_timeout)
                yield from self._send_request_body(request, stream, content)
        except WriteError:
            if self._health.write_error is None:
                raise
            # The server stopped reading (it may have closed after a GOAWAY, or answered
            # early): what it sent is read next, and tells how this request ends.

    def _send_request_body(
        self, request: Request, stream: Stream, content: Optional[bytes]
    ) -> Gen[None]:
        if stream.local_ended:
            return
        if content is not None:
            yield from self._send_data(request, stream, content, end=True)
            return
        iterator = yield (ITER, request.stream)
        stream.replayable = False
        stopped = False
        try:
            while True:
                chunk = yield (NEXT, iterator)
                if chunk is None:
                    break
                if chunk:
                    stopped = yield from self._send_data(request, stream, chunk, end=False)
                    if stopped:
                        # The server needs no more of it: let the body clean up now.
                        yield from close_iterator(iterator)
                        break
        except GeneratorExit:
            raise
        except BaseException:
            yield from close_iterator(iterator)
            raise
        if not stopped:
            stopped = yield from self._wait_while_window_negative(request, stream)
        if not stopped:
            with self._lock:
                error = self._health.send_error
                if error is not None:
                    raise renewed(error)
                if stream.remote is not RESET:
                    try:
                        self._h2_state.end_stream(stream.stream_id)
                        stream.local_ended = True
                    except h2.exceptions.ProtocolError as exc:
                        raise self._protocol_error(exc) from exc
            yield from self._writer.flush(stream.write_timeout)

    def _send_data(self, request: Request, stream: Stream, data: bytes, end: bool) -> Gen[bool]:
        """Queue non-empty `data` as DATA frames within the flow-control windows and flush.

        Returns True if the body should not be sent further (the server reset or finished
        the stream). With `end`, the last frame carries END_STREAM.
        """
        view = memoryview(data)
        total = len(view)
        offset = 0
        h2_state = self._h2_state
        health = self._health
        stream_id = stream.stream_id
        while True:
            with self._lock:
                error = health.send_error
                if error is not None:
                    raise renewed(error)
                if stream.remote is RESET:
                    return True
                try:
                    window = h2_state.local_flow_control_window(stream_id)
                    stop = offset + min(window, total - offset)
                    if stop > offset:
                        max_frame = h2_state.max_outbound_frame_size
                        while offset < stop:
                            n = min(max_frame, stop - offset)
                            last = end and offset + n == total
                            h2_state.send_request_data(stream_id, view[offset : offset + n], last)
                            offset += n
                        if end and offset == total:
                            stream.local_ended = True
                except h2.exceptions.StreamClosedError:
                    return True
                except h2.exceptions.ProtocolError as exc:
                    raise self._protocol_error(exc) from exc
            yield from self._writer.flush(stream.write_timeout)
            if offset >= total:
                return False
            # The window is used up: wait for the server to open it.
            outcome = yield from self._reader.wait_for(stream, self._check_window, request)
            if outcome is _STOP:
                return True

    def _wait_while_window_negative(self, request: Request, stream: Stream) -> Gen[bool]:
        """RFC 9113 §6.9.2: a server that lowers SETTINGS_INITIAL_WINDOW_SIZE can leave a
        stream's window negative, and then not even the empty DATA frame that ends a body may
        go until WINDOW_UPDATEs make it positive (h2 servers answer FLOW_CONTROL_ERROR).
        True: the body should not be ended (the server reset or finished the stream)."""
        while True:
            with self._lock:
                try:
                    window = self._h2_state.local_flow_control_window(stream.stream_id)
                except h2.exceptions.ProtocolError:
                    return False  # closed: ending the stream reports it
            if window >= 0:
                return False
            outcome = yield from self._reader.wait_for(stream, self._check_window, request)
            if outcome is _STOP:
                return True

    def _check_window(self, stream: Stream) -> Optional[object]:
        """A `wait_for` check: True once the stream may send, `_STOP` if it should not."""
        write_error = self._health.write_error
        if write_error is not None:
            raise renewed(write_error)
        remote = stream.remote
        if remote is RESET or remote is ENDED or stream.closed:
            stream.wants_window = False
            return _STOP
        try:
            window = self._h2_state.local_flow_control_window(stream.stream_id)
        except h2.exceptions.ProtocolError:
            stream.wants_window = False
            return _STOP
        if window > 0:
            stream.wants_window = False
            return True
        if stream.failure is not None:
            stream.raise_failure()
        stream.wants_window = True
        return None

    def _protocol_error(self, exc: Exception) -> Exception:
        goaway = self._health.goaway
        if goaway is not None:
            return RemoteProtocolError(goaway)
        return LocalProtocolError(exc)
