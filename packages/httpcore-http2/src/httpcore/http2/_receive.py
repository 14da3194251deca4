"""The response side of a stream: its head, then its body, as the reader files them.

Part of `HTTP2Core` (a base class of it).

Rules:
- A stream's events are taken in the order h2 produced them (`Stream.next_event`), through
  the reader role (`FrameReader.wait_for`): whoever needs an event reads, or waits for the
  reader.
- Received body data is acknowledged (its flow-control window given back) as it is handed
  to the caller, so that the server's window only closes while the caller is slow.
- A stream reset by the server is a `RemoteProtocolError` for its request only; an error on
  the way out of the body releases the stream (`_traced_response_closed`, not graceful).
"""

from __future__ import annotations

from typing import Callable, List, Optional, Tuple

import h2.events

from httpcore.base._drive import BodyGen, Gen
from httpcore.base._exceptions import RemoteProtocolError
from httpcore.base._models import Request
from httpcore.base._trace import traced

from ._headers import HeadMemo, remembered_head
from ._reader import FrameReader, logger
from ._stream import StateLock, Stream
from ._writer import FrameWriter

_ResponseReceived = h2.events.ResponseReceived
_DataReceived = h2.events.DataReceived
_StreamEnded = h2.events.StreamEnded
_StreamReset = h2.events.StreamReset


class ResponseReceiving:
    """The receiving side of `HTTP2Core` (the rules at the top)."""

    _lock: StateLock
    _reader: FrameReader
    _writer: FrameWriter
    _traced_response_closed: Callable[[Optional[Request], Stream, bool], Gen[None]]
    _heads: HeadMemo

    def _receive_response_headers(
        self, request: Request, stream: Stream
    ) -> Gen[Tuple[int, List[Tuple[bytes, bytes]]]]:
        while True:
            event = yield from self._reader.wait_for(stream, Stream.next_event, request)
            kind = type(event)
            if kind is _ResponseReceived:
                break
            if kind is _StreamReset:
                raise RemoteProtocolError(event)
            if kind is _StreamEnded:  # pragma: no cover - h2 rejects this
                raise RemoteProtocolError("Stream ended without a response.")
        return remembered_head(event.headers, self._heads)

    def _receive_body(self, request: Request, stream: Stream) -> BodyGen:
        try:
            yield from traced(
                logger,
                "receive_response_body",
                request,
                {"request": request, "stream_id": stream.stream_id},
                self._body_chunks(request, stream),
            )
        except GeneratorExit:
            # Abandoned by its response stream, whose close runs the close generator.
            raise
        except BaseException:
            yield from self._traced_response_closed(request, stream, False)  # not graceful
            raise

    def _body_chunks(self, request: Request, stream: Stream) -> BodyGen:
        lock = self._lock
        reader = self._reader
        stream_id = stream.stream_id
        next_event = Stream.next_event
        while True:
            event = yield from reader.wait_for(stream, next_event, request)
            kind = type(event)
            if kind is _DataReceived:
                size = event.flow_controlled_length
                if size:
                    with lock:
                        reader.acknowledge_locked(size, stream_id)
                    try:
                        yield from self._writer.flush(stream.write_timeout, raise_error=False)
                    except Exception:
                        pass  # remembered; the data already received is still good
                data = event.data
                if data:
                    yield data if type(data) is bytes else bytes(data)
            elif kind is _StreamEnded:
                return
            elif kind is _StreamReset:
                raise RemoteProtocolError(event)
