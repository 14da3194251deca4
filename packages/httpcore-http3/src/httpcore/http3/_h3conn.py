"""aioquic's HTTP/3 connection as this client needs it, the same from aioquic 1.0 to 1.7.

Rules:
- A malformed response (aioquic's `MessageError`: a connection-specific field, a bad
  `content-length`, ...) fails its own request, not the connection: RFC 9114 §4.1.2 makes it
  a stream error, where aioquic closes the whole connection. The frames that follow on such
  a stream are dropped unparsed (aioquic would find DATA after headers it refused
  unexpected, a connection error again).
- What aioquic checks in a response grew from 1.0 to 1.7, and the newest release a Python
  gets differs (3.9: 1.2, 3.10: 1.3, 3.11 and later: 1.7). Each check the older releases
  lack is made here, so that a response is refused, or taken, alike on all of them:
  - connection-specific fields, a field name that is not a token (RFC 9114 §4.2, §10.3), and
    the field section's size (§4.2.2: SETTINGS_MAX_FIELD_SECTION_SIZE, announced here);
  - `:status` 101 (§4.5); interim (1xx) responses before the final one, which may not end
    the stream (§4.1);
  - HTTP/2's frame types on a request stream (§7.2.8: a connection error,
    H3_FRAME_UNEXPECTED), before 1.4;
  - a reset of the server's control or QPACK streams (§6.2.1: H3_CLOSED_CRITICAL_STREAM),
    before 1.5;
  - the end of a response stream (before 1.6): a frame cut short by it is H3_FRAME_ERROR
    (§7.1); after an unknown frame it still ends the response; Content-Length is checked.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Set, Tuple

from aioquic.h3.connection import (
    ErrorCode,
    FrameUnexpected,
    H3Connection,
    H3Stream,
    HeadersState,
    MessageError,
    ProtocolError,
    Setting,
)
from aioquic.h3.events import DataReceived, H3Event, HeadersReceived
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import QuicEvent, StreamReset

Headers = List[Tuple[bytes, bytes]]


class MalformedReceived(H3Event):
    """The response on `stream_id` is malformed (`reason`); the rest of it is dropped.
    Filed with the stream as its last event, like a reset."""

    __slots__ = ("reason", "stream_id")

    def __init__(self, stream_id: int, reason: str) -> None:
        self.stream_id = stream_id
        self.reason = reason

    def __repr__(self) -> str:
        return f"<MalformedReceived stream_id={self.stream_id} {self.reason!r}>"


class FrameError(ProtocolError):
    """A frame that does not parse, or that the end of its stream cuts short (RFC 9114 §7.1;
    aioquic has its own class from 1.7 only)."""

    error_code = ErrorCode.H3_FRAME_ERROR


#: Fields that HTTP/3 forbids in a response (RFC 9114 §4.2; `te` is allowed in requests only).
CONNECTION_SPECIFIC = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"te", b"transfer-encoding", b"upgrade")
)

#: A field name as HTTP/3 carries it: a token (RFC 9110 §5.1), lower case (RFC 9114 §4.2).
_FIELD_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+").fullmatch

#: The largest response field section taken, as RFC 9114 §4.2.2 sizes it (each field's name
#: and value, plus 32 bytes), announced in SETTINGS_MAX_FIELD_SECTION_SIZE: HTTP/2's limit
#: (its SETTINGS_MAX_HEADER_LIST_SIZE). A bigger one fails its request only.
MAX_FIELD_SECTION = 65536

#: HTTP/2's PRIORITY, PING, WINDOW_UPDATE and CONTINUATION (RFC 9114 §11.2.1).
_HTTP2_FRAMES = frozenset((0x2, 0x6, 0x8, 0x9))
_HEADERS = 0x1

#: What the aioquic installed checks itself (feature tests, not version numbers).
_ENDS_STREAMS = hasattr(H3Connection, "_handle_request_or_push_end")  # 1.6
_CHECKS_RESETS = hasattr(H3Connection, "_receive_stream_reset")  # 1.5
#: Where aioquic before 1.6 keeps "the stream has ended" (renamed in 1.3).
_ENDED = "receiving_ended" if hasattr(H3Stream(0), "receiving_ended") else "ended"


class ClientH3Connection(H3Connection):
    """aioquic's HTTP/3 connection, with a malformed response a stream error, checked alike
    on every aioquic release the package allows (rules above)."""

    def __init__(self, quic: QuicConnection) -> None:
        super().__init__(quic)
        self.malformed: Set[int] = set()  # stream ids: stream ids are never reused
        self._interim: Set[int] = set()  # streams that had an interim response

    def handle_event(self, event: QuicEvent) -> List[H3Event]:
        if type(event) is StreamReset and not self._is_done:
            if event.stream_id in (
                self._peer_control_stream_id,
                self._peer_decoder_stream_id,
                self._peer_encoder_stream_id,
            ):
                self._is_done = True
                self._quic.close(
                    error_code=ErrorCode.H3_CLOSED_CRITICAL_STREAM,
                    reason_phrase="The server reset a critical stream",
                )
                return []
        events: List[H3Event] = super().handle_event(event)
        return events

    def _handle_request_or_push_frame(
        self, frame_type: int, frame_data: Optional[bytes], stream: Any, stream_ended: bool
    ) -> List[H3Event]:
        stream_id = stream.stream_id
        if stream_id in self.malformed:
            return []
        if stream_ended and stream.frame_size is not None:
            # Before 1.6 aioquic hands on the part of a DATA frame it has, as the stream's end.
            raise FrameError("A frame is cut short by the end of the stream")
        if frame_type in _HTTP2_FRAMES:
            raise FrameUnexpected(f"HTTP/2's frame type {frame_type:#x} on a request stream")
        heading = frame_type == _HEADERS and stream.headers_recv_state is HeadersState.INITIAL
        try:
            events: List[H3Event] = super()._handle_request_or_push_frame(
                frame_type, frame_data, stream, stream_ended
            )
            if heading:
                for event in events:
                    if type(event) is HeadersReceived:
                        self._check_head(event, stream)
        except MessageError as exc:
            return self._malformed(stream, exc)
        return events

    def _decode_headers(self, stream_id: int, frame_data: Optional[bytes]) -> Headers:
        # Checked as soon as decoded, before aioquic's own checks, whose words differ by
        # release.
        headers: Headers = super()._decode_headers(stream_id, frame_data)
        size = 0
        for name, value in headers:
            if name in CONNECTION_SPECIFIC:
                raise MessageError(f"Header {name!r} is connection-specific")
            if not _FIELD_NAME(name) and name[:1] != b":":
                # RFC 9114 §10.3: aioquic checks only RFC 9113 §8.2.1's subset.
                raise MessageError(f"Header {name!r} is not a valid field name")
            size += len(name) + len(value) + 32
        if size > MAX_FIELD_SECTION:
            raise MessageError(
                f"The field section is {size} bytes, over the"
                f" {MAX_FIELD_SECTION} of SETTINGS_MAX_FIELD_SECTION_SIZE"
            )
        return headers

    def _check_head(self, event: HeadersReceived, stream: Any) -> None:
        status = b""
        for name, value in event.headers:
            if name == b":status":
                status = value
                break
        if status == b"101":
            raise MessageError("Pseudo-header b':status' is 101, which HTTP/3 does not have")
        if len(status) == 3 and status[:1] == b"1":
            # Before 1.7 aioquic took an interim response for the final one, and what
            # followed it for trailers.
            if event.stream_ended:
                raise MessageError("An interim response ended the stream")
            stream.headers_recv_state = HeadersState.INITIAL
            stream.expected_content_length = None
            self._interim.add(stream.stream_id)

    def _get_local_settings(self) -> Dict[int, int]:
        settings: Dict[int, int] = super()._get_local_settings()
        settings[Setting.MAX_FIELD_SECTION_SIZE] = MAX_FIELD_SECTION
        return settings

    def _handle_request_or_push_end(self, stream: Any) -> List[H3Event]:
        # The end of a stream after its last HEADERS or DATA frame (a FIN of its own, or
        # after an unknown frame): aioquic 1.6 and later check Content-Length and interim
        # responses here, outside the method above.
        if stream.stream_id in self.malformed:
            return []
        try:
            events: List[H3Event] = super()._handle_request_or_push_end(stream)
        except MessageError as exc:
            return self._malformed(stream, exc)
        return events

    def _receive_request_or_push_data(
        self, stream: Any, data: bytes, stream_ended: bool
    ) -> List[H3Event]:
        if not stream_ended:
            events: List[H3Event] = super()._receive_request_or_push_data(
                stream, data, stream_ended
            )
            return events
        # aioquic before 1.6: a FIN alone is reported without any check, and one after an
        # unknown frame or inside a frame not at all.
        if not data and not stream.buffer and not stream.blocked:
            setattr(stream, _ENDED, True)
            return self._stream_ended(stream)
        events = super()._receive_request_or_push_data(stream, data, stream_ended)
        if stream.blocked or stream.stream_id in self.malformed:
            return events  # the end is reported once the headers decode, or never
        for event in events:
            if isinstance(event, (DataReceived, HeadersReceived)) and event.stream_ended:
                return events
        return events + self._stream_ended(stream)

    def _stream_ended(self, stream: Any) -> List[H3Event]:
        if stream.stream_id in self.malformed:
            return []
        if stream.frame_size is not None or stream.buffer:
            raise FrameError("A frame is cut short by the end of the stream")
        try:
            if (
                stream.stream_id in self._interim
                and stream.headers_recv_state is HeadersState.INITIAL
            ):
                raise MessageError("An interim response ended the stream")
            self._check_content_length(stream)
        except MessageError as exc:
            return self._malformed(stream, exc)
        return [
            DataReceived(
                data=b"", push_id=stream.push_id, stream_id=stream.stream_id, stream_ended=True
            )
        ]

    def _malformed(self, stream: Any, exc: MessageError) -> List[H3Event]:
        if stream.push_id is not None:  # pragma: no cover - push is never enabled
            raise exc
        self.malformed.add(stream.stream_id)
        return [MalformedReceived(stream.stream_id, str(exc.reason_phrase))]


# Where aioquic makes a check itself, its own method runs unwrapped: these two are on the path
# of every QUIC event and every piece of a response.
if _CHECKS_RESETS:
    del ClientH3Connection.handle_event
if _ENDS_STREAMS:
    del ClientH3Connection._receive_request_or_push_data
