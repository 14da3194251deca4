"""HTTP/1.1 on h11: one protocol core, a sync class here and an async class in `httpcore.aio`."""

from __future__ import annotations

import enum
import functools
import logging
import re
import time
from typing import Any, List, Optional, Tuple

import h11

from ._backends import AsyncNetworkStream, NetworkStream
from ._drive import CLOSE, ITER, NEXT, READ, WRITE, BodyGen, Gen, SyncIO, close_iterator
from ._exceptions import (
    ConnectionNotAvailable,
    LocalProtocolError,
    ReadError,
    RemoteProtocolError,
    WriteError,
)
from ._interfaces import ConnectionInterface, SyncShell
from ._models import ByteStream, Origin, Request, Response
from ._trace import is_traced, traced

logger = logging.getLogger("httpcore.http11")

ResponseHead = Tuple[bytes, int, bytes, List[Tuple[bytes, bytes]]]

# Body reads start at READ_NUM_BYTES and double up to this while each read comes back full
# (fewer, larger reads for big bodies; small bodies never allocate large buffers).
MAX_BODY_READ = 1024 * 1024


class HTTPConnectionState(enum.IntEnum):
    NEW = 0
    ACTIVE = 1
    IDLE = 2
    CLOSED = 3


NEW = HTTPConnectionState.NEW
ACTIVE = HTTPConnectionState.ACTIVE
IDLE = HTTPConnectionState.IDLE
CLOSED = HTTPConnectionState.CLOSED


def _connection_close(headers: Any) -> bool:
    for name, value in headers:
        if name == b"connection" and b"close" in value.lower():
            return True
    return False


def _direct_body_length(request: Request, response: Any) -> Optional[int]:
    """The Content-Length of a response body we can read directly, else None."""
    status = response.status_code
    if status in (204, 304) or request.method in (b"HEAD", b"CONNECT"):
        return None
    length = None
    for name, value in response.headers:
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            return None
    return length


# The common response head, parsed without h11: a final status, and a body framed by exactly
# one Content-Length. The patterns accept a subset of what h11 accepts; anything else (interim
# responses, chunked, no body, odd bytes, folded lines) goes to h11, with its exact errors.
_STATUS_LINE = re.compile(rb"HTTP/(1\.[01]) ([0-9]{3})(?: ([\t\x20-\x7e\x80-\xff]*))?")
_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
_FIELD_VALUE = re.compile(rb"(?:[\x21-\x7e\x80-\xff]+(?:[ \t]+[\x21-\x7e\x80-\xff]+)*)?")
_DIGITS = re.compile(rb"[0-9]{1,18}")
MAX_SIMPLE_HEAD = 65536

SimpleHead = Tuple[bytes, int, bytes, List[Tuple[bytes, bytes]], int]


_HEADER_BLOCK = re.compile(
    rb"(?:\r\n[-!#$%&'*+.^_`|~0-9a-zA-Z]+:[ \t]*"
    rb"(?:[\x21-\x7e\x80-\xff]+(?:[ \t]+[\x21-\x7e\x80-\xff]+)*)?[ \t]*)*"
)


def parse_simple_head(head: bytes) -> Optional[SimpleHead]:
    """(version, status, reason, headers, content_length) of a simple head, else None."""
    status_end = head.find(b"\r\n")
    if status_end < 0:
        status_end = len(head)
    match = _STATUS_LINE.fullmatch(head, 0, status_end)
    if match is None:
        return None
    status = int(match.group(2))
    if status < 200 or status in (204, 304):
        return None
    # One pass validates every header line against (a subset of) h11's grammar.
    if _HEADER_BLOCK.fullmatch(head, status_end) is None:
        return None
    headers = []
    length = None
    for line in head[status_end + 2 :].split(b"\r\n") if status_end < len(head) else ():
        name, _, value = line.partition(b":")
        value = value.strip(b" \t")
        lowered = name.lower()
        if lowered == b"content-length":
            if length is not None or _DIGITS.fullmatch(value) is None:
                return None
            length = int(value)
        elif lowered == b"transfer-encoding":
            return None
        headers.append((name, value))
    if length is None:
        return None
    return match.group(1), status, match.group(3) or b"", headers, length


_TARGET = re.compile(rb"[\x21-\x7e\x80-\xff]+")


def serialize_simple_request(request: Request, content: bytes) -> Optional[bytes]:
    """The bytes h11 would write for a simple request, or None for h11 to handle it.

    Simple: in-memory body, a Host header, no Transfer-Encoding, a Content-Length (if any)
    that matches the body, and every token and value within (a subset of) h11's grammar —
    so whatever h11 would reject, with its own error message, goes to h11.
    """
    method, target = request.method, request.url.target
    if _TOKEN.fullmatch(method) is None or _TARGET.fullmatch(target) is None:
        return None
    host = b""
    length = -1
    lines = [method, b" ", target, b" HTTP/1.1\r\n", b""]  # [4]: the Host line, first
    for name, value in request.headers:
        if _TOKEN.fullmatch(name) is None or _FIELD_VALUE.fullmatch(value) is None:
            return None
        lowered = name.lower()
        if lowered == b"host":
            if host:
                return None
            host = b"%s: %s\r\n" % (name, value)
            continue
        if lowered == b"content-length":
            if length >= 0 or _DIGITS.fullmatch(value) is None:
                return None
            length = int(value)
        elif lowered == b"transfer-encoding":
            return None
        lines.append(b"%s: %s\r\n" % (name, value))
    if not host or (length if length >= 0 else 0) != len(content):
        return None
    lines[4] = host
    lines.append(b"\r\n")
    lines.append(content)
    return b"".join(lines)


def origin_mismatch(request: Request, origin: Origin) -> RuntimeError:
    return RuntimeError(
        f"Attempted to send request to {request.url.origin} on connection to {origin}"
    )


class HTTP11Core:
    """The HTTP/1.1 protocol: requests out, responses in, keep-alive bookkeeping.

    Subclasses pick the flavour (`_io`) and the class of the upgrade stream.
    """

    READ_NUM_BYTES = 65536
    MAX_INCOMPLETE_EVENT_SIZE = 102400

    _io: Any = SyncIO
    _upgrade_stream_class: Any = None

    def __init__(
        self,
        origin: Origin,
        stream: Any,
        keepalive_expiry: Optional[float] = None,
    ) -> None:
        self._origin = origin
        self._network_stream = stream
        self._keepalive_expiry = keepalive_expiry
        self._expire_at: Optional[float] = None
        self._state = NEW
        self._request_count = 0
        self._body_read_size = self.READ_NUM_BYTES
        # A failed write leaves the socket unusable even when h11 counts the request as sent.
        self._write_failed = False
        # Whether any byte of the current response arrived, and whether the last request was
        # lost unanswered on a reused connection (the pool may send it again, API.md §3.7).
        self._response_started = False
        self._unanswered = False
        self._state_lock = self._io.state_lock()
        self._h11_state = self._new_h11_state()
        # The direct body path (see `_direct_body`): set per response.
        self._direct_length: Optional[int] = None
        self._direct_buffered: Optional[bytes] = None
        self._h11_behind: Optional[Tuple[Request, bytes]] = None
        self._direct_keep_alive = False
        self._direct_complete = False
        self._direct_overrun = False

    def _new_h11_state(self) -> h11.Connection:
        return h11.Connection(
            our_role=h11.CLIENT, max_incomplete_event_size=self.MAX_INCOMPLETE_EVENT_SIZE
        )

    # -- the exchange ----------------------------------------------------------------------

    def _handle(self, request: Request) -> Gen[Response]:
        if request.url.origin != self._origin:
            raise origin_mismatch(request, self._origin)
        with self._state_lock:
            if self._state is not NEW and self._state is not IDLE:
                raise ConnectionNotAvailable()
            self._request_count += 1
            self._state = ACTIVE
            self._expire_at = None
            self._response_started = False

        timeouts = request.extensions.get("timeout", {})
        read_timeout = timeouts.get("read", None)
        write_timeout = timeouts.get("write", None)
        try:
            try:
                if is_traced(logger, request):
                    info = {"request": request}
                    yield from traced(
                        logger,
                        "send_request_headers",
                        request,
                        info,
                        self._send_request_headers(request, write_timeout),
                    )
                    yield from traced(
                        logger,
                        "send_request_body",
                        request,
                        info,
                        self._send_request_body(request, write_timeout),
                    )
                else:
                    yield from self._send_request(request, write_timeout)
            except WriteError:
                # The server may have answered early (e.g. 413) and closed: read its response.
                self._write_failed = True

            http_version, status, reason_phrase, headers = yield from traced(
                logger,
                "receive_response_headers",
                request,
                {"request": request},
                self._receive_response_headers(request, read_timeout),
            )
            network_stream = self._network_stream
            if status == 101 or (request.method == b"CONNECT" and 200 <= status < 300):
                network_stream = self._upgrade_stream_class(
                    network_stream, self._h11_state.trailing_data[0]
                )
            body = self._io.stream_class(
                self._receive_body(request, read_timeout),
                functools.partial(self._traced_response_closed, request),
            )
            return Response(
                status=status,
                headers=headers,
                content=body,
                extensions={
                    "http_version": http_version,
                    "reason_phrase": reason_phrase,
                    "network_stream": network_stream,
                },
            )
        except BaseException as exc:
            if (
                self._request_count > 1
                and not self._response_started
                and isinstance(exc, (ReadError, WriteError, RemoteProtocolError))
            ):
                # The server closed the kept-alive connection as the request went out.
                self._unanswered = True
            yield from self._traced_response_closed(request)
            raise

    def _send_request(self, request: Request, timeout: Optional[float]) -> Gen[None]:
        """Head and (when it is in memory) body in a single write."""
        stream: Any = request.stream
        content: bytes
        if type(stream) is ByteStream:
            content = stream._content
        elif type(stream) is bytes:
            content = stream
        else:
            yield from self._send_request_headers(request, timeout)
            yield from self._send_request_body(request, timeout)
            return
        if request.method not in (b"HEAD", b"CONNECT"):
            data = serialize_simple_request(request, content)
            if data is not None:
                # h11 is told about this request only if the response needs h11.
                self._h11_behind = (request, content)
                yield (WRITE, self._network_stream, data, timeout)
                return
        yield (WRITE, self._network_stream, self._h11_request_bytes(request, content), timeout)

    def _h11_request_bytes(self, request: Request, content: bytes) -> bytes:
        h11_state = self._h11_state
        try:
            data: Any = h11_state.send(
                h11.Request(
                    method=request.method, target=request.url.target, headers=request.headers
                )
            )
            if content:
                data += h11_state.send(h11.Data(data=content))
            data += h11_state.send(h11.EndOfMessage())
        except h11.LocalProtocolError as exc:
            raise LocalProtocolError(exc) from exc
        return data  # type: ignore[no-any-return]

    def _catch_up_h11(self) -> None:
        """Replay into h11 a request sent without it, before h11 reads the response."""
        if self._h11_behind is not None:
            request, content = self._h11_behind
            self._h11_behind = None
            self._h11_request_bytes(request, content)

    def _send_request_headers(self, request: Request, timeout: Optional[float]) -> Gen[None]:
        try:
            event = h11.Request(
                method=request.method, target=request.url.target, headers=request.headers
            )
            data = self._h11_state.send(event)
        except h11.LocalProtocolError as exc:
            raise LocalProtocolError(exc) from exc
        yield (WRITE, self._network_stream, data, timeout)

    def _send_request_body(self, request: Request, timeout: Optional[float]) -> Gen[None]:
        h11_state = self._h11_state
        iterator = yield (ITER, request.stream)
        try:
            while True:
                chunk = yield (NEXT, iterator)
                if chunk is None:
                    break
                try:
                    data = h11_state.send(h11.Data(data=chunk))
                except h11.LocalProtocolError as exc:
                    raise LocalProtocolError(exc) from exc
                if data:
                    yield (WRITE, self._network_stream, data, timeout)
        except GeneratorExit:
            raise
        except BaseException:
            yield from close_iterator(iterator)
            raise
        try:
            data = h11_state.send(h11.EndOfMessage())
        except h11.LocalProtocolError as exc:
            raise LocalProtocolError(exc) from exc
        if data:
            yield (WRITE, self._network_stream, data, timeout)

    def _receive_event(self, timeout: Optional[float], read_size: int = 0) -> Gen[Any]:
        h11_state = self._h11_state
        while True:
            try:
                event = h11_state.next_event()
            except h11.RemoteProtocolError as exc:
                raise RemoteProtocolError(exc) from exc
            if event is not h11.NEED_DATA:
                return event
            size = read_size or self.READ_NUM_BYTES
            data = yield (READ, self._network_stream, size, timeout)
            if read_size and len(data) == size and size < MAX_BODY_READ:
                # The socket keeps filling whole reads: a large body; read bigger pieces.
                self._body_read_size = size * 2
            if not data:
                if h11_state.their_state is h11.SEND_RESPONSE:
                    raise RemoteProtocolError("Server disconnected without sending a response.")
            else:
                self._response_started = True
            h11_state.receive_data(data)

    def _receive_response_headers(
        self, request: Request, timeout: Optional[float]
    ) -> Gen[ResponseHead]:
        if request.method not in (b"HEAD", b"CONNECT"):
            head = yield from self._receive_simple_head(request, timeout)
            if head is not None:
                return head
        while True:
            event = yield from self._receive_event(timeout)
            if type(event) is h11.Response:
                self._direct_length = length = _direct_body_length(request, event)
                if length is not None:
                    # h11's keep-alive rule, which it can't apply to a body it doesn't see.
                    self._direct_keep_alive = (
                        event.http_version == b"1.1"
                        and not _connection_close(event.headers)
                        and not _connection_close((k.lower(), v) for k, v in request.headers)
                    )
                break
            if type(event) is h11.InformationalResponse and event.status_code == 101:
                self._direct_length = None
                break
        return (
            b"HTTP/" + event.http_version,
            event.status_code,
            event.reason,
            event.headers.raw_items(),
        )

    def _receive_simple_head(
        self, request: Request, timeout: Optional[float]
    ) -> Gen[Optional[ResponseHead]]:
        """The common response head, parsed without h11 (see `parse_simple_head`).

        Returns None after handing everything read to h11 when the head is anything else.
        """
        buffer = b""
        while True:
            data = yield (READ, self._network_stream, self.READ_NUM_BYTES, timeout)
            if not data:
                if not buffer:
                    raise RemoteProtocolError("Server disconnected without sending a response.")
                break
            self._response_started = True
            buffer += data
            end = buffer.find(b"\r\n\r\n")
            if end >= 0:
                parsed = parse_simple_head(buffer[:end]) if end <= MAX_SIMPLE_HEAD else None
                if parsed is not None:
                    version, status, reason, headers, length = parsed
                    self._direct_length = length
                    self._direct_buffered = buffer[end + 4 :]
                    self._direct_keep_alive = (
                        version == b"1.1"
                        and not _connection_close((k.lower(), v) for k, v in headers)
                        and not _connection_close((k.lower(), v) for k, v in request.headers)
                    )
                    return (b"HTTP/" + version, status, reason, headers)
                break
            if len(buffer) > MAX_SIMPLE_HEAD:
                break
        self._catch_up_h11()
        self._h11_state.receive_data(buffer)
        return None

    def _receive_body(self, request: Request, timeout: Optional[float]) -> BodyGen:
        try:
            yield from traced(
                logger,
                "receive_response_body",
                request,
                {"request": request},
                self._body_chunks(timeout),
            )
        except GeneratorExit:
            # Abandoned by its stream, which runs the close generator itself.
            raise
        except BaseException:
            yield from self._traced_response_closed(request)
            raise

    def _body_chunks(self, timeout: Optional[float]) -> BodyGen:
        self._body_read_size = self.READ_NUM_BYTES
        if self._direct_length is not None:
            yield from self._direct_body(self._direct_length, timeout)
            return
        while True:
            event = yield from self._receive_event(timeout, self._body_read_size)
            event_type = type(event)
            if event_type is h11.Data:
                data = event.data
                yield data if type(data) is bytes else bytes(data)
            elif event_type is h11.EndOfMessage or event is h11.PAUSED:
                return
            elif event_type is h11.ConnectionClosed:  # pragma: no cover - h11 raises first
                return

    def _direct_body(self, length: int, timeout: Optional[float]) -> BodyGen:
        """A Content-Length body read straight from the socket.

        h11 parsed and validated the head; running the body through its receive buffer would
        copy every byte three times. The connection takes a fresh h11 state machine for its
        next request once this body is complete (see `_response_closed`).
        """
        buffered = self._direct_buffered
        if buffered is None:
            buffered = self._h11_state.trailing_data[0]
        if len(buffered) > length:
            # More than the body arrived: the connection is out of step; never reuse it.
            self._direct_overrun = True
            buffered = buffered[:length]
        remaining = length - len(buffered)
        if buffered:
            yield buffered
        size = self.READ_NUM_BYTES
        stream = self._network_stream
        while remaining:
            data = yield (READ, stream, min(size, remaining), timeout)
            if not data:
                raise RemoteProtocolError(
                    "peer closed connection without sending complete message body "
                    f"(received {length - remaining} bytes, expected {length})"
                )
            remaining -= len(data)
            if len(data) == size and size < MAX_BODY_READ:
                size *= 2
            yield data
        self._direct_complete = True

    # -- closing -----------------------------------------------------------------------------

    def _traced_response_closed(self, request: Optional[Request]) -> Gen[None]:
        try:
            yield from traced(logger, "response_closed", request, {}, self._response_closed())
        except BaseException:
            # E.g. a failing trace callback: never leave the connection ACTIVE for good.
            if self._state is ACTIVE:
                yield from self._close()
            raise

    def _response_closed(self) -> Gen[None]:
        h11_state = self._h11_state
        with self._state_lock:
            reusable = self._state is not CLOSED and not self._write_failed
            if reusable and self._direct_length is not None:
                untouched = self._h11_behind is not None  # h11 saw neither request nor response
                reusable = (
                    self._direct_complete
                    and self._direct_keep_alive
                    and not self._direct_overrun
                    and (untouched or h11_state.our_state is h11.DONE)
                )
                if reusable and not untouched:
                    self._h11_state = h11_state = self._new_h11_state()
            elif reusable:
                reusable = h11_state.our_state is h11.DONE and h11_state.their_state is h11.DONE
                if reusable:
                    h11_state.start_next_cycle()
            self._direct_length = self._direct_buffered = self._h11_behind = None
            self._direct_complete = self._direct_overrun = False
            if reusable:
                self._state = IDLE
                if self._keepalive_expiry is not None:
                    self._expire_at = time.monotonic() + self._keepalive_expiry
                return
        yield from self._close()

    def _close(self) -> Gen[None]:
        self._state = CLOSED
        yield (CLOSE, self._network_stream)

    # -- the state a pool asks for -----------------------------------------------------------

    def can_handle_request(self, origin: Origin) -> bool:
        return origin == self._origin

    def _lost_unanswered(self) -> bool:
        """The last request failed before any byte of its response arrived, on a connection
        that had served an earlier one: the server closed it as the request went out."""
        return self._unanswered

    def is_available(self) -> bool:
        # NEW is not available: a fresh connection is handed its first request by whoever
        # created it, never picked up by another.
        return self._state is IDLE

    def has_expired(self) -> bool:
        if self._expire_at is not None and time.monotonic() > self._expire_at:
            return True
        # An idle connection can only be readable because the server closed it.
        return self._state is IDLE and bool(self._network_stream.get_extra_info("is_readable"))

    def _has_timed_out(self, now: float) -> bool:
        """`has_expired()` without the readability check (no syscall)."""
        return self._expire_at is not None and now > self._expire_at

    def is_idle(self) -> bool:
        return self._state is IDLE

    def is_closed(self) -> bool:
        return self._state is CLOSED

    def info(self) -> str:
        origin, state, count = str(self._origin), self._state.name, self._request_count
        return f"{origin!r}, HTTP/1.1, {state}, Request Count: {count}"

    def __repr__(self) -> str:
        return (
            f"<{self.__class__.__name__} [{str(self._origin)!r}, {self._state.name}, "
            f"Request Count: {self._request_count}]>"
        )


class UpgradeStreamBase:
    """A network stream handed out after `101` or `CONNECT`: first the bytes h11 had already
    buffered, then the socket."""

    def __init__(self, stream: Any, leading_data: bytes) -> None:
        self._stream = stream
        self._leading_data = leading_data

    def _take_leading(self, max_bytes: int) -> bytes:
        data, self._leading_data = self._leading_data[:max_bytes], self._leading_data[max_bytes:]
        return data

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class HTTP11UpgradeStream(UpgradeStreamBase, NetworkStream):
    """The sync upgrade stream."""

    def read(self, max_bytes: int, timeout: Optional[float] = None) -> bytes:
        if self._leading_data:
            return self._take_leading(max_bytes)
        return self._stream.read(max_bytes, timeout)  # type: ignore[no-any-return]

    def write(self, buffer: bytes, timeout: Optional[float] = None) -> None:
        self._stream.write(buffer, timeout)

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> NetworkStream:
        return self._stream.start_tls(ssl_context, server_hostname, timeout)  # type: ignore[no-any-return]


class AsyncHTTP11UpgradeStream(UpgradeStreamBase, AsyncNetworkStream):
    """The async upgrade stream."""

    async def read(self, max_bytes: int, timeout: Optional[float] = None) -> bytes:
        if self._leading_data:
            return self._take_leading(max_bytes)
        return await self._stream.read(max_bytes, timeout)  # type: ignore[no-any-return]

    async def write(self, buffer: bytes, timeout: Optional[float] = None) -> None:
        await self._stream.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: Any,
        server_hostname: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> AsyncNetworkStream:
        return await self._stream.start_tls(ssl_context, server_hostname, timeout)  # type: ignore[no-any-return]


class HTTP11Connection(SyncShell, HTTP11Core, ConnectionInterface):
    """A single HTTP/1.1 connection over an established network stream."""

    _upgrade_stream_class = HTTP11UpgradeStream
