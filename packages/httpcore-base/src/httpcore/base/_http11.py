"""HTTP/1.1: one protocol core (`HTTP11Core`) on h11, with the sync class here and the async
class in `httpcore.aio`.

This module holds the exchange (request out, response head and body in), the keep-alive
bookkeeping and the state a pool asks for. Its neighbours: `_http11_simple` (the fast path's
grammar, serializer and parser), `_http11_chunked` (the fast path's chunked body decoder),
`_http11_upgrade` (the streams handed out after `101` or `CONNECT`), `_http11_h11` (h11,
imported when a connection first needs it, and `H11Exchange`, the part of the core that talks
to h11).

Rules it keeps:
- h11 is the reference. A request or response head the fast path declines goes to h11, and a
  request sent without h11 is replayed into it (`_catch_up_h11`) before h11 reads a response,
  so h11's behaviour and exact errors are kept. h11's own errors are mapped in one place
  (`LOCAL_ERRORS`, `REMOTE_ERRORS` in `_http11_h11`, which imports h11 on first use).
- A Content-Length or chunked body is read straight from the socket, not through h11
  (`_direct_body`, `_chunked_body`); the connection is kept alive only if that body was
  complete, nothing arrived behind it and both sides allowed keep-alive (h11's rule, applied
  here since h11 never saw the body). A response h11 read is held to the same: bytes left in
  h11's buffer behind it close the connection.
- What one exchange learns about its response lives in one `ResponseState`, new for each
  request; the connection's own state (`_state`, h11's state machine, `_write_failed`,
  `_unanswered`) outlives it.
- State changes that decide who may use the connection are made under `_state_lock` and never
  span a yield.
"""

from __future__ import annotations

import enum
import functools
import logging
import time
from typing import TYPE_CHECKING, Callable, List, Optional, Tuple

from . import _http11_h11 as h11_lazy
from ._drive import READ, WRITE, BodyGen, Flavour, Gen, SyncIO
from ._exceptions import (
    ConnectionNotAvailable,
    ReadError,
    RemoteProtocolError,
    WriteError,
)
from ._http11_chunked import chunked_body
from ._http11_exchange import ResponseState
from ._http11_h11 import MAX_BODY_READ, H11Exchange
from ._http11_simple import (
    CHUNKED,
    MAX_SIMPLE_HEAD,
    connection_close,
    direct_body_length,
    in_memory_body,
    parse_simple_head,
    remembered_simple_head,
    serialize_simple_head,
    serialize_simple_request,
)
from ._http11_upgrade import AsyncHTTP11UpgradeStream, HTTP11UpgradeStream, UpgradeStreamBase
from ._interfaces import ConnectionInterface, SyncShell
from ._models import Origin, Request, Response
from ._ops import AnyNetworkStream, check_body, close, write
from ._trace import is_traced, traced

if TYPE_CHECKING:
    import h11

__all__ = [  # the names other modules and tests import from here
    "AsyncHTTP11UpgradeStream",
    "HTTP11Connection",
    "HTTP11Core",
    "HTTP11UpgradeStream",
    "UpgradeStreamBase",
    "origin_mismatch",
    "parse_simple_head",
    "serialize_simple_request",
]

logger = logging.getLogger("httpcore.http11")

ResponseHead = Tuple[bytes, int, bytes, List[Tuple[bytes, bytes]]]

# An in-memory body up to this size is joined to the request head for a single write; a larger
# one is written after the head, as it is.
MAX_JOINED_BODY = 65536


class HTTPConnectionState(enum.IntEnum):
    NEW = 0
    ACTIVE = 1
    IDLE = 2
    CLOSED = 3


NEW = HTTPConnectionState.NEW
ACTIVE = HTTPConnectionState.ACTIVE
IDLE = HTTPConnectionState.IDLE
CLOSED = HTTPConnectionState.CLOSED


def origin_mismatch(request: Request, origin: Origin) -> RuntimeError:
    return RuntimeError(
        f"Attempted to send request to {request.url.origin} on connection to {origin}"
    )


class HTTP11Core(H11Exchange):
    """The HTTP/1.1 protocol: requests out, responses in, keep-alive bookkeeping.

    Subclasses pick the flavour (`_io`) and the class of the upgrade stream.
    """

    _io: Flavour = SyncIO
    _response: ResponseState
    # The stream handed out after `101` or `CONNECT`: (network stream, bytes already read).
    _upgrade_stream_class: Callable[[AnyNetworkStream, bytes], AnyNetworkStream]

    def __init__(
        self,
        origin: Origin,
        stream: AnyNetworkStream,
        keepalive_expiry: Optional[float] = None,
    ) -> None:
        self._origin = origin
        self._network_stream = stream
        self._keepalive_expiry = keepalive_expiry
        self._expire_at: Optional[float] = None
        self._state = NEW
        self._request_count = 0
        # A failed write leaves the socket unusable even when h11 counts the request as sent.
        self._write_failed = False
        # Whether the last request was lost unanswered on a reused connection (the pool may
        # send it again, API.md §3.7).
        self._unanswered = False
        self._state_lock = self._io.state_lock()
        # h11's state machine, made when first needed (`_h11()`): the fast path needs none.
        self._h11_state: Optional[h11.Connection] = None
        self._response = ResponseState(self.READ_NUM_BYTES)

    # -- the exchange ----------------------------------------------------------------------

    def _handle(self, request: Request) -> Gen[Response]:
        if request.url.origin != self._origin:
            raise origin_mismatch(request, self._origin)
        check_body(request.stream, self._io.is_async)
        with self._state_lock:
            if self._state is not NEW and self._state is not IDLE:
                raise ConnectionNotAvailable()
            self._request_count += 1
            self._state = ACTIVE
            self._expire_at = None
            self._response = exchange = ResponseState(self.READ_NUM_BYTES)

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
                    network_stream, self._h11().trailing_data[0]
                )
            if is_traced(logger, request):
                body = self._io.stream_class(
                    self._receive_body(request, exchange, read_timeout),
                    functools.partial(self._traced_response_closed, request, exchange),
                )
            else:
                # Nothing to trace: one generator layer less per chunk and at close.
                body = self._io.stream_class(
                    self._untraced_body(exchange, read_timeout),
                    functools.partial(self._response_closed, exchange),
                )
            # The head was validated (by h11 or the fast path's grammar) into a fresh list of
            # (bytes, bytes): nothing left for the constructor's coercion to do.
            return Response._wrap(
                status,
                headers,
                body,
                {
                    "http_version": http_version,
                    "reason_phrase": reason_phrase,
                    "network_stream": network_stream,
                },
            )
        except BaseException as exc:
            if (
                self._request_count > 1
                and not self._response.started
                and isinstance(exc, (ReadError, WriteError, RemoteProtocolError))
            ):
                # The server closed the kept-alive connection as the request went out.
                self._unanswered = True
            yield from self._traced_response_closed(request, exchange)
            raise

    def _send_request(self, request: Request, timeout: Optional[float]) -> Gen[None]:
        """A request whose body is in memory (ours, bytes, httpx's): head and body in one write
        (two for a large body), without h11 when the fast path accepts it."""
        content = in_memory_body(request.stream)
        if content is None:
            yield from self._send_request_headers(request, timeout)
            yield from self._send_request_body(request, timeout)
            return
        if request.method not in (b"HEAD", b"CONNECT"):
            head = serialize_simple_head(request, len(content))
            if head is not None:
                # h11 is told about this request only if the response needs h11. (The fast
                # path yields its operations inline: a helper would add a frame per op.)
                self._response.h11_behind = (request, content)
                if len(content) <= MAX_JOINED_BODY:
                    yield (WRITE, self._network_stream, head + content, timeout)
                else:
                    # Joined, a large body would be copied once more: two writes instead.
                    yield (WRITE, self._network_stream, head, timeout)
                    yield (WRITE, self._network_stream, content, timeout)
                return
        yield from write(self._network_stream, self._h11_request_bytes(request, content), timeout)

    def _receive_response_headers(
        self, request: Request, timeout: Optional[float]
    ) -> Gen[ResponseHead]:
        if request.method not in (b"HEAD", b"CONNECT"):
            head = yield from self._receive_simple_head(request, timeout)
            if head is not None:
                return head
        import h11  # here, not above: the fast path above needs no h11

        response = self._response
        while True:
            event = yield from self._receive_event(timeout)
            if type(event) is h11.Response:
                response.direct_length = length = direct_body_length(request, event)
                if length is not None:
                    # h11's keep-alive rule, which it can't apply to a body it doesn't see.
                    response.keep_alive = (
                        event.http_version == b"1.1"
                        and not connection_close(event.headers)
                        and not connection_close(request.headers)
                    )
                break
            if type(event) is h11.InformationalResponse and event.status_code == 101:
                response.direct_length = None
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
        response = self._response
        buffer = b""
        while True:
            data: bytes = yield (READ, self._network_stream, self.READ_NUM_BYTES, timeout)
            if not data:
                if not buffer:
                    raise RemoteProtocolError("Server disconnected without sending a response.")
                break
            response.started = True
            buffer += data
            end = buffer.find(b"\r\n\r\n")
            if end >= 0:
                head = buffer[:end]
                parsed = remembered_simple_head(head) if end <= MAX_SIMPLE_HEAD else None
                if parsed is not None:
                    version, status, reason, headers, length, says_close = parsed
                    response.direct_length = length
                    if length == CHUNKED:
                        response.head = head
                    response.buffered = buffer[end + 4 :]
                    response.keep_alive = (
                        version == b"1.1"
                        and not says_close
                        and not connection_close(request.headers)
                    )
                    return (b"HTTP/" + version, status, reason, headers)
                break
            # No whole head yet. h11 also ends a head at a bare LF, and fails at once on bytes
            # that cannot begin a status line: it decides those now, rather than this loop
            # waiting for a CRLF CRLF that may never come.
            if (
                buffer[:5] != b"HTTP/"[: len(buffer)]
                or b"\n\n" in buffer
                or b"\n\r\n" in buffer
                or len(buffer) > MAX_SIMPLE_HEAD
            ):
                break
        self._catch_up_h11()
        self._h11().receive_data(buffer)
        return None

    def _receive_body(
        self, request: Request, exchange: ResponseState, timeout: Optional[float]
    ) -> BodyGen:
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
            yield from self._traced_response_closed(request, exchange)
            raise

    def _untraced_body(self, exchange: ResponseState, timeout: Optional[float]) -> BodyGen:
        """`_receive_body` when nothing is traced."""
        try:
            if exchange.direct_length is not None:
                yield from self._direct_body(exchange, timeout)
            else:
                yield from self._body_chunks(timeout)
        except GeneratorExit:
            raise
        except BaseException:
            yield from self._response_closed(exchange)
            raise

    def _body_chunks(self, timeout: Optional[float]) -> BodyGen:
        response = self._response
        if response.direct_length is not None:
            yield from self._direct_body(response, timeout)
        else:
            yield from self._h11_body(response, timeout)

    def _h11_body(
        self, response: ResponseState, timeout: Optional[float], drop: bool = False
    ) -> BodyGen:
        """The body as h11 reads it; `drop`: leave out the data of its first chunk."""
        import h11

        while True:
            event = yield from self._receive_event(timeout, response.read_size)
            if type(event) is h11.Data:
                if drop:
                    drop = False
                    continue
                data = event.data
                yield data if type(data) is bytes else bytes(data)
            elif type(event) is h11.EndOfMessage or event is h11.PAUSED:
                return
            elif type(event) is h11.ConnectionClosed:  # pragma: no cover - h11 raises first
                return

    def _chunked_body(self, response: ResponseState, timeout: Optional[float]) -> BodyGen:
        """A chunked body decoded without h11 (`_http11_chunked`), or by h11 from the first
        byte the fast path does not take."""
        handover = yield from chunked_body(
            self._network_stream,
            response.buffered or b"",
            timeout,
            self.READ_NUM_BYTES,
            MAX_BODY_READ,
            response,
        )
        if handover is None:
            return
        rest, stand_in, eof = handover
        # Told the request (if it went out without h11), the head and the rest, h11 stands
        # where it would have stood at this point of the body.
        self._catch_up_h11()
        h11_state = self._h11()
        h11_state.receive_data(response.head + b"\r\n\r\n" + rest)
        if eof:
            h11_state.receive_data(b"")
        response.direct_length = None
        yield from self._receive_event(timeout)  # the head again, as an h11 Response
        yield from self._h11_body(response, timeout, drop=stand_in)

    def _direct_body(self, response: ResponseState, timeout: Optional[float]) -> BodyGen:
        """A Content-Length body read straight from the socket.

        h11 parsed and validated the head; running the body through its receive buffer would
        copy every byte three times. The connection takes a fresh h11 state machine for its
        next request once this body is complete (see `_response_closed`).
        """
        if response.direct_length == CHUNKED:
            yield from self._chunked_body(response, timeout)
            return
        length: int = response.direct_length  # type: ignore[assignment]
        buffered = response.buffered
        if buffered is None:
            buffered = self._h11().trailing_data[0]
        if len(buffered) > length:
            # More than the body arrived: the connection is out of step; never reuse it.
            response.overrun = True
            buffered = buffered[:length]
        remaining = length - len(buffered)
        if buffered:
            yield buffered
        size = self.READ_NUM_BYTES
        stream = self._network_stream
        while remaining:
            data: bytes = yield (READ, stream, min(size, remaining), timeout)
            if not data:
                raise RemoteProtocolError(
                    "peer closed connection without sending complete message body "
                    f"(received {length - remaining} bytes, expected {length})"
                )
            remaining -= len(data)
            if remaining < 0:
                # A stream that returns more than it was asked for (a `MockStream` does, and so
                # may a caller's backend): the rest is not this body's, and the connection is
                # out of step.
                response.overrun = True
                data = data[:remaining]
                remaining = 0
            if len(data) == size and size < MAX_BODY_READ:
                size *= 2
            yield data
        response.complete = True

    # -- closing -----------------------------------------------------------------------------

    def _traced_response_closed(
        self, request: Optional[Request], exchange: ResponseState
    ) -> Gen[None]:
        if exchange.closed:
            return  # traced once, when it was closed
        try:
            yield from traced(
                logger, "response_closed", request, {}, self._response_closed(exchange)
            )
        except BaseException:
            # E.g. a failing trace callback: never leave the connection ACTIVE for good (but
            # never touch it once it serves the next request).
            if self._state is ACTIVE and self._response is exchange:
                yield from self._close()
            raise

    def _response_closed(self, exchange: ResponseState) -> Gen[None]:
        with self._state_lock:
            if exchange.closed:
                return
            exchange.closed = True
            response = exchange
            reusable = self._state is not CLOSED and not self._write_failed
            if reusable and response.direct_length is not None:
                untouched = response.h11_behind is not None  # h11 saw neither request nor response
                reusable = (
                    response.complete
                    and response.keep_alive
                    and not response.overrun
                    and (untouched or h11_lazy.request_done(self._h11_state))
                )
                if reusable and not untouched:
                    self._h11_state = None  # a fresh one for the next request that needs h11
            elif reusable:
                h11_state = self._h11_state
                if (
                    h11_state is not None
                    and h11_lazy.done(h11_state)
                    # Bytes past the response: the server is out of step (and the fast path,
                    # reading the socket, would leave them to answer a later request). Or the
                    # server closed: h11 ends an HTTP/1.1 body without a length at EOF and
                    # calls that done, though nothing more can come.
                    and h11_state.trailing_data == (b"", False)
                ):
                    h11_state.start_next_cycle()
                else:
                    reusable = False
            # A second close (a body error, then its stream's close) sees a finished response.
            response.direct_length = response.buffered = response.h11_behind = None
            response.complete = response.overrun = False
            response.head = b""
            if reusable:
                self._state = IDLE
                if self._keepalive_expiry is not None:
                    self._expire_at = time.monotonic() + self._keepalive_expiry
                return
        yield from self._close()

    def _close(self) -> Gen[None]:
        self._state = CLOSED
        yield from close(self._network_stream)

    # -- the state a pool asks for -----------------------------------------------------------

    def can_handle_request(self, origin: Origin) -> bool:
        """Whether this connection serves `origin` (each connection serves one origin)."""
        return origin == self._origin

    def _lost_unanswered(self) -> bool:
        """The last request failed before any byte of its response arrived, on a connection
        that had served an earlier one: the server closed it as the request went out."""
        return self._unanswered

    def is_available(self) -> bool:
        """Whether it can take another request now (only when idle)."""
        # NEW is not available: a fresh connection is handed its first request by whoever
        # created it, never picked up by another.
        return self._state is IDLE

    def has_expired(self) -> bool:
        """Whether the pool should close it (keep-alive expired, or closed by the server)."""
        if self._expire_at is not None and time.monotonic() > self._expire_at:
            return True
        # An idle connection can only be readable because the server closed it.
        return self._state is IDLE and bool(self._network_stream.get_extra_info("is_readable"))

    def _has_timed_out(self, now: float) -> bool:
        """`has_expired()` without the readability check (no syscall)."""
        return self._expire_at is not None and now > self._expire_at

    def is_idle(self) -> bool:
        """Whether it is open with no request in progress."""
        return self._state is IDLE

    def is_closed(self) -> bool:
        """Whether it is closed (the pool drops it without closing it again)."""
        return self._state is CLOSED

    def info(self) -> str:
        """A short description of its state, as shown in its repr."""
        origin, state, count = str(self._origin), self._state.name, self._request_count
        return f"{origin!r}, HTTP/1.1, {state}, Request Count: {count}"

    def __repr__(self) -> str:
        return (
            f"<{self.__class__.__name__} [{str(self._origin)!r}, {self._state.name}, "
            f"Request Count: {self._request_count}]>"
        )


class HTTP11Connection(SyncShell, HTTP11Core, ConnectionInterface):
    """A single HTTP/1.1 connection over an established network stream."""

    _upgrade_stream_class = HTTP11UpgradeStream
