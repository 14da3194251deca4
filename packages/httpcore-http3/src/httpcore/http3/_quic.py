"""aioquic as this package uses it: the QUIC configuration made from an `ssl.SSLContext`,
request headers for HTTP/3, the peer's GOAWAY, and the few internals of aioquic read here.

Rules:
- Certificates: what the caller's `ssl_context` trusts is what QUIC's TLS trusts (its CA
  certificates are handed to aioquic as PEM); `CERT_NONE` turns verification off. Without a
  context, certifi's bundle is used, as for TCP. ALPN is `h3`.
- Download backpressure: aioquic doubles a stream's receive window whenever half of it has
  arrived, read or not. Once a response's reader lags behind (`pace_stream`), its window
  follows what the caller has read instead (`open_receive_window`): the server may then
  send at most `STREAM_WINDOW` bytes beyond that.
- aioquic (1.7) does not report GOAWAY to a client; `GoawayWatcher` reads the frames of the
  server's control stream alongside it (RFC 9114 §6.2.1, §7.2.6) to find out.
- What the client checks in a response, alike on every aioquic it allows, is `_h3conn`'s.
- Every read of an aioquic attribute that is not public API is a function here, with a
  fallback, so that a change in aioquic shows up in one place.
"""

from __future__ import annotations

import ssl
from typing import Any, Dict, List, Optional, Set, Tuple

from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection

from httpcore.base._exceptions import LocalProtocolError
from httpcore.base._models import Request
from httpcore.base._multiplex_core import (
    DROPPED_HEADERS,
    check_request_field,
    check_request_start,
)

Headers = List[Tuple[bytes, bytes]]


#: How much of a response the server may send beyond what the caller has read.
STREAM_WINDOW = 1 << 22

_GOAWAY = 0x07
_CONTROL_STREAM = 0x00
_MAX_CONTROL_FRAME = 1 << 16  # bigger control frames are skipped unread


def pace_stream(quic: QuicConnection, stream_id: int) -> None:
    """From now on, the stream's receive window follows what the caller reads: aioquic no
    longer raises it as data arrives, `open_receive_window` does. (Only streams whose reader
    lags behind are paced: the others cost nothing more.)"""
    paced: Optional[Set[int]] = getattr(quic, "_httpcore_paced", None)
    if paced is None:
        paced = set()
        original = quic._write_stream_limits

        def write_stream_limits(builder: Any, space: Any, stream: Any) -> None:
            if stream.stream_id not in paced:
                original(builder=builder, space=space, stream=stream)
                return
            # aioquic raises the window once the data that *arrived* passes half of it;
            # hide that from it.
            receiver = stream.receiver
            arrived = receiver.highest_offset
            receiver.highest_offset = 0
            try:
                original(builder=builder, space=space, stream=stream)
            finally:
                receiver.highest_offset = arrived

        try:
            quic._write_stream_limits = write_stream_limits  # type: ignore[method-assign]
        except AttributeError:  # pragma: no cover - another aioquic layout: its own windows
            return
        quic._httpcore_paced = paced  # type: ignore[attr-defined]
    paced.add(stream_id)


def unpace_stream(quic: QuicConnection, stream_id: int) -> None:
    """The stream is done: nothing more to pace."""
    paced: Optional[Set[int]] = getattr(quic, "_httpcore_paced", None)
    if paced is not None:
        paced.discard(stream_id)


def open_receive_window(quic: QuicConnection, stream_id: int, consumed: int, window: int) -> bool:
    """Let the server send up to `consumed + window` bytes of the stream. True when that
    raised the window by half of it or more (a MAX_STREAM_DATA is then worth sending)."""
    stream = getattr(quic, "_streams", {}).get(stream_id)
    if stream is None:
        return False
    try:
        if consumed + window - stream.max_stream_data_local < window // 2:
            return False
        stream.max_stream_data_local = consumed + window
    except AttributeError:  # pragma: no cover - another aioquic layout: its own windows
        return False
    return True


def quic_configuration(
    ssl_context: Optional[ssl.SSLContext], server_name: str, idle_timeout: float
) -> QuicConfiguration:
    """The client configuration of a connection to `server_name` (rules at the top)."""
    config = QuicConfiguration(
        is_client=True,
        alpn_protocols=["h3"],
        server_name=server_name,
        idle_timeout=idle_timeout,
        # Receive windows, as large as HTTP/2's: a download is not held up by them.
        max_data=1 << 24,
        max_stream_data=STREAM_WINDOW,
    )
    if ssl_context is None:
        import certifi

        config.cafile = certifi.where()
        return config
    if ssl_context.verify_mode == ssl.CERT_NONE:
        config.verify_mode = ssl.CERT_NONE
        return config
    ders = ssl_context.get_ca_certs(binary_form=True)
    if ders:
        pem = "".join(ssl.DER_cert_to_PEM_cert(der) for der in ders)
        config.cadata = pem.encode("ascii")
    else:
        # A context trusting a directory (capath) or the system defaults: use those paths.
        paths = ssl.get_default_verify_paths()
        config.cafile = paths.cafile
        config.capath = paths.capath
    return config


def request_headers(request: Request, authority: bytes) -> Headers:
    """The header list of a request's HEADERS frame (pseudo-headers first, names lower-case)."""
    url = request.url
    if not url.target:
        raise LocalProtocolError("An HTTP/3 request needs a non-empty :path.")
    headers: Headers = [
        (b":method", request.method),
        (b":scheme", url.scheme),
        (b":authority", authority),
        (b":path", url.target),
    ]
    check_request_start(request, authority, "HTTP/3")
    for name, value in request.headers:
        name = name.lower()
        if name in DROPPED_HEADERS or (name == b"te" and value.lower() != b"trailers"):
            continue
        check_request_field(name, value, "HTTP/3")
        headers.append((name, value.strip(b" \t")))
    return headers


def pull_varint(data: bytes | bytearray, offset: int) -> Optional[Tuple[int, int]]:
    """A QUIC variable-length integer (RFC 9000 §16) at `offset`: (value, next offset), or
    None if `data` ends before it does."""
    if offset >= len(data):
        return None
    first = data[offset]
    length = 1 << (first >> 6)
    if offset + length > len(data):
        return None
    value = first & 0x3F
    for index in range(offset + 1, offset + length):
        value = (value << 8) | data[index]
    return value, offset + length


class ControlStreamError(Exception):
    """The server broke a rule of its control stream: a connection error of type `code`
    (RFC 9114 §8.1), said as `message`."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


_H3_FRAME_ERROR = 0x106
_H3_ID_ERROR = 0x108


class GoawayWatcher:
    """Finds the server's control stream among its unidirectional streams and the GOAWAY
    frames on it (RFC 9114 §6.2.1, §7.2.6). `feed()` returns the stream id of a GOAWAY, else
    None."""

    __slots__ = ("_buffers", "_control", "_ignored", "_last", "_skip")

    def __init__(self) -> None:
        self._buffers: Dict[int, bytearray] = {}
        self._control: Optional[int] = None
        self._ignored: Set[int] = set()
        self._skip = 0  # bytes of a big frame of no interest still to come
        self._last: Optional[int] = None  # the stream id of the last GOAWAY

    def feed(self, stream_id: int, data: bytes) -> Optional[int]:
        # Server-initiated unidirectional streams have ids = 3 (mod 4).
        if stream_id & 3 != 3 or stream_id in self._ignored:
            return None
        buffer = self._buffers.setdefault(stream_id, bytearray())
        buffer += data
        if self._control != stream_id:
            pulled = pull_varint(buffer, 0)
            if pulled is None:
                return None
            stream_type, offset = pulled
            if stream_type != _CONTROL_STREAM or self._control is not None:
                self._ignored.add(stream_id)
                del self._buffers[stream_id]
                return None
            self._control = stream_id
            del buffer[:offset]
        if self._skip:
            skipped = min(self._skip, len(buffer))
            del buffer[:skipped]
            self._skip -= skipped
        return self._frames(buffer)

    def _frames(self, buffer: bytearray) -> Optional[int]:
        goaway = None
        while buffer:
            pulled = pull_varint(buffer, 0)
            if pulled is None:
                break
            frame_type, offset = pulled
            pulled = pull_varint(buffer, offset)
            if pulled is None:
                break
            length, start = pulled
            if length > _MAX_CONTROL_FRAME and frame_type != _GOAWAY:
                # Not a frame of ours, and too big to keep: skip it as it comes.
                self._skip = max(0, start + length - len(buffer))
                del buffer[: start + length]
                continue
            if len(buffer) < start + length:
                break
            if frame_type == _GOAWAY:
                pulled = pull_varint(buffer[start : start + length], 0)
                if pulled is None:
                    raise ControlStreamError(_H3_FRAME_ERROR, "Malformed GOAWAY frame")
                goaway = self._check(pulled[0])
            del buffer[: start + length]
        return goaway

    def _check(self, stream_id: int) -> int:
        # RFC 9114 §5.2: a client-initiated bidirectional stream, never more than before.
        if stream_id & 3:
            raise ControlStreamError(
                _H3_ID_ERROR,
                f"The server's GOAWAY names stream {stream_id}, which is not a request stream",
            )
        if self._last is not None and stream_id > self._last:
            raise ControlStreamError(
                _H3_ID_ERROR,
                f"The server's GOAWAY raised the last stream id from {self._last} to {stream_id}",
            )
        self._last = stream_id
        return stream_id


#: The names of the error codes an HTTP/3 connection closes with (RFC 9114 §8.1, RFC 9204
#: §6) and of QUIC's own (RFC 9000 §20.1).
ERROR_NAMES = {
    **dict(
        enumerate(
            "NO_ERROR INTERNAL_ERROR CONNECTION_REFUSED FLOW_CONTROL_ERROR STREAM_LIMIT_ERROR "
            "STREAM_STATE_ERROR FINAL_SIZE_ERROR FRAME_ENCODING_ERROR TRANSPORT_PARAMETER_ERROR "
            "CONNECTION_ID_LIMIT_ERROR PROTOCOL_VIOLATION INVALID_TOKEN APPLICATION_ERROR "
            "CRYPTO_BUFFER_EXCEEDED KEY_UPDATE_ERROR AEAD_LIMIT_REACHED NO_VIABLE_PATH".split()
        )
    ),
    **dict(
        enumerate(
            "H3_NO_ERROR H3_GENERAL_PROTOCOL_ERROR H3_INTERNAL_ERROR H3_STREAM_CREATION_ERROR "
            "H3_CLOSED_CRITICAL_STREAM H3_FRAME_UNEXPECTED H3_FRAME_ERROR H3_EXCESSIVE_LOAD "
            "H3_ID_ERROR H3_SETTINGS_ERROR H3_MISSING_SETTINGS H3_REQUEST_REJECTED "
            "H3_REQUEST_CANCELLED H3_REQUEST_INCOMPLETE H3_MESSAGE_ERROR H3_CONNECT_ERROR "
            "H3_VERSION_FALLBACK".split(),
            0x100,
        )
    ),
    0x200: "QPACK_DECOMPRESSION_FAILED",
    0x201: "QPACK_ENCODER_STREAM_ERROR",
    0x202: "QPACK_DECODER_STREAM_ERROR",
}


# -- aioquic internals ----------------------------------------------------------------------


def closed_here(quic: QuicConnection) -> bool:
    """Whether this side closed the connection (aioquic does when the server breaks QUIC or
    HTTP/3), rather than the server or an idle timeout."""
    state = getattr(getattr(quic, "_state", None), "name", "")
    return bool(getattr(quic, "_close_pending", False)) or state == "CLOSING"


def peer_stream_limit(quic: QuicConnection) -> int:
    """How many bidirectional streams the server lets us open (its transport parameter)."""
    limit = getattr(quic, "_remote_max_streams_bidi", None)
    return limit if isinstance(limit, int) and limit > 0 else 100


def close_event(quic: QuicConnection) -> Any:
    """The ConnectionTerminated the connection will report, once it is closing (else None).

    aioquic reports it as an event only after the closing period (3 PTO); the connection is of
    no use from the moment it is known.
    """
    return getattr(quic, "_close_event", None)


def idle_deadline(quic: QuicConnection) -> Optional[float]:
    """When aioquic will close the connection for idleness (None if unknown)."""
    close_at = getattr(quic, "_close_at", None)
    return close_at if isinstance(close_at, float) else None


def unsent_bytes(quic: QuicConnection, stream_id: int) -> int:
    """How much of a stream's data is buffered by aioquic, not yet acknowledged."""
    stream = getattr(quic, "_streams", {}).get(stream_id)
    if stream is None:
        return 0
    sender = stream.sender
    try:
        return int(sender._buffer_stop - sender._buffer_start)
    except AttributeError:  # pragma: no cover - another aioquic layout
        return 0
