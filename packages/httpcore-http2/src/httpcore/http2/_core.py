"""The HTTP/2 connection: many concurrent requests multiplexed on one connection.

Written once, as generators yielding I/O operations (see `httpcore.base._drive`), and driven
by the sync class (threads) and the async class (asyncio or trio tasks). `HTTP2Core` ties
the parts together and answers the pool:

- `_patches.py`  the h2 connection as this package uses it;
- `_headers.py`  request headers to h2's, response headers back;
- `_stream.py`   the `Stream` record of one exchange (the `Waiter` is in base `_multiplex.py`);
- `httpcore.base._multiplex`  the stream slots (`StreamSlots`) and the connection's health
  (`ConnectionHealth`), plain state shared with HTTP/3;
- `_reader.py`   the reader role (reading, filing events with streams);
- `_writer.py`   the writer role (writing h2's queue, finishing cancelled writes);
- `_send.py`     the request side of a stream (HEADERS, the body within the windows);
- `_receive.py`  the response side of a stream (head, body).

Rules:
- Bookkeeping is done under `_lock` (a real lock for threads, nothing under async) and never
  spans a yield.
- A request is inside the connection from `_handle` until its response is closed (or it
  fails): it counts in `in_flight`, holds a stream slot once granted, and has a `Stream` once
  its HEADERS are queued. Each of those is undone exactly once, on every path.
- Whether the connection takes a new request is asked in one place, `_refusal_locked()`: a
  closed connection, or one whose health is not OPEN, refuses.
- The connection goes IDLE when its last request is done, or closes if its health says it is
  of no further use (a GOAWAY, a failed write) or h2 closed it.
"""

from __future__ import annotations

import enum
import functools
import time
from typing import Any, Dict, Iterable, Optional

import h2.events
import h2.exceptions
from h2.errors import ErrorCodes

from httpcore.base._drive import CLOSE, WAIT, Gen
from httpcore.base._exceptions import (
    ConnectionNotAvailable,
    PoolTimeout,
)
from httpcore.base._http11 import origin_mismatch
from httpcore.base._http11_simple import in_memory_body
from httpcore.base._models import Origin, Request, Response
from httpcore.base._multiplex import OPEN, ConnectionHealth, StreamSlots, Waiter
from httpcore.base._trace import traced

from ._headers import request_authority
from ._patches import CONFIG, RepeatDecoder, new_h2_connection
from ._reader import FrameReader, logger
from ._receive import ResponseReceiving
from ._send import WINDOW_INCREMENT, RequestSending
from ._stream import ENDED, RESET, Stream
from ._writer import FrameWriter

_RepeatDecoder = RepeatDecoder  # its former name, for the tests

_DataReceived = h2.events.DataReceived


class HTTPConnectionState(enum.IntEnum):
    """The states of an HTTP/2 connection, as shown in its repr and `info()`."""

    ACTIVE = 1
    IDLE = 2
    CLOSED = 3


ACTIVE = HTTPConnectionState.ACTIVE
IDLE = HTTPConnectionState.IDLE
CLOSED = HTTPConnectionState.CLOSED


class HTTP2Core(RequestSending, ResponseReceiving):
    """HTTP/2 on h2. Subclasses pick the flavour (`_io`: `SyncIO` or `AsyncIO`)."""

    READ_NUM_BYTES = 65536
    #: How long a cancelled request may spend finishing the connection's interrupted write
    #: when the request has no write timeout.
    CANCELLED_WRITE_GRACE = 5.0
    CONFIG = CONFIG

    _io: Any

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
        self._state = IDLE
        self._request_count = 0
        self._lock = self._io.state_lock()
        self._h2_state = new_h2_connection(self.CONFIG)
        self._init_started = False
        self._network_closed = False
        self._health = ConnectionHealth()
        self._slots: StreamSlots[Waiter] = StreamSlots()
        self._streams: Dict[int, Stream] = {}
        self._reader = FrameReader(
            self._h2_state,
            stream,
            self._io,
            self._lock,
            self._health,
            self._slots,
            self._streams,
            self.READ_NUM_BYTES,
        )
        self._writer = FrameWriter(
            self._h2_state,
            stream,
            self._lock,
            self._health,
            self._streams,
            self._reader.wake_all_locked,
            # A cancelled write can be finished (see `FrameWriter`); async only.
            resumable=self._io.is_async and bool(getattr(stream, "resumable_writes", False)),
            grace=self.CANCELLED_WRITE_GRACE,
        )
        self._reader.attach(self._writer)

    @property
    def _max_streams(self) -> int:
        """How many streams may be open at once (1 until the server's SETTINGS arrive)."""
        return self._slots.limit

    def _refusal_locked(self) -> Optional[BaseException]:
        """Can this connection take a new request? None if so, else the exception to raise
        (`ConnectionNotAvailable`: nothing was sent, the pool may retry elsewhere)."""
        if self._state is CLOSED:
            return ConnectionNotAvailable()
        health = self._health
        if health.state is OPEN:
            return None
        return health.refusal()

    # -- a request -------------------------------------------------------------------------

    def _handle(self, request: Request) -> Gen[Response]:
        if request.url.origin != self._origin:
            raise origin_mismatch(request, self._origin)
        authority = request_authority(request)
        timeouts = request.extensions.get("timeout", {})
        read_timeout = timeouts.get("read", None)
        write_timeout = timeouts.get("write", None)

        with self._lock:
            if self._state is CLOSED or self._health.state is not OPEN:
                refusal = self._refusal_locked()
                if refusal is not None:
                    raise refusal  # nothing sent yet: the pool can retry elsewhere
            self._request_count += 1
            self._slots.enter()
            self._state = ACTIVE
            self._expire_at = None
            send_init = not self._init_started
            if send_init:
                # Queued at once, so that no request's HEADERS can get ahead of the preface.
                self._init_started = True
                h2_state = self._h2_state
                h2_state.initiate_connection()
                h2_state.increment_flow_control_window(WINDOW_INCREMENT)

        stream: Optional[Stream] = None
        has_slot = False
        try:
            if send_init:
                try:
                    yield from traced(
                        logger,
                        "send_connection_init",
                        request,
                        {"request": request},
                        self._writer.flush(write_timeout),
                    )
                except BaseException:
                    with self._lock:
                        # Requests already on the connection keep it when the preface went out
                        # whole (a cancelled writer finishes its write, see `_writer.py`).
                        keep = self._health.state is OPEN and self._slots.in_flight > 1
                    if not keep:
                        yield from self._close_connection()
                    raise
            # An in-memory body (ours, bytes, httpx's) is sent whole and can be sent again on
            # another connection when GOAWAY refuses the stream.
            content = in_memory_body(request.stream)
            pool_timeout = timeouts.get("pool", None)
            while stream is None:
                yield from self._acquire_slot(pool_timeout)
                has_slot = True
                stream = self._open_stream(request, authority, content, read_timeout, write_timeout)
                if stream is None:
                    with self._lock:
                        self._wake(self._slots.release())
                    has_slot = False
            yield from self._send_request(request, stream, content)
            status, headers = yield from traced(
                logger,
                "receive_response_headers",
                request,
                {"request": request, "stream_id": stream.stream_id},
                self._receive_response_headers(request, stream),
            )
        except BaseException as exc:
            if type(exc) is ConnectionNotAvailable:
                with self._lock:
                    self._request_count -= 1
            if stream is not None:
                yield from self._traced_response_closed(request, stream, graceful=False)
            else:
                closing = False
                with self._lock:
                    if has_slot:
                        self._wake(self._slots.release())
                    if self._slots.leave():
                        closing = self._become_idle_locked()
                if closing:
                    yield from self._close_connection()
            raise

        return Response(
            status=status,
            headers=headers,
            content=self._io.stream_class(
                self._receive_body(request, stream),
                functools.partial(self._traced_response_closed, request, stream, True),
            ),
            extensions={
                "http_version": b"HTTP/2",
                "network_stream": self._network_stream,
                "stream_id": stream.stream_id,
            },
        )

    # -- stream slots -----------------------------------------------------------------------

    @staticmethod
    def _wake(waiters: Iterable[Waiter]) -> None:
        for waiter in waiters:
            waiter.set()

    def _acquire_slot(self, timeout: Optional[float]) -> Gen[None]:
        slots = self._slots
        with self._lock:
            if slots.take():
                return
            waiter = Waiter(self._io.new_event(), PoolTimeout)
            slots.wait(waiter)
        try:
            while True:
                yield (WAIT, waiter, timeout)
                with self._lock:
                    if waiter.granted:
                        return
                    if self._refusal_locked() is not None:
                        slots.withdraw(waiter)
                        raise ConnectionNotAvailable()
                    waiter.event = self._io.new_event()  # pragma: no cover - spurious wake-up
        except BaseException:
            with self._lock:
                self._wake(slots.withdraw(waiter))
            raise

    # -- closing ---------------------------------------------------------------------------

    def _traced_response_closed(
        self, request: Optional[Request], stream: Stream, graceful: bool
    ) -> Gen[None]:
        if stream.closed:
            return
        yield from traced(
            logger,
            "response_closed",
            request,
            {"stream_id": stream.stream_id},
            self._response_closed(stream, graceful),
        )

    def _response_closed(self, stream: Stream, graceful: bool) -> Gen[None]:
        """Release the stream. `graceful`: not on an error path, so frames may be written."""
        closing = False
        with self._lock:
            if stream.closed:
                return
            stream.closed = True
            stream_id = stream.stream_id
            reader = self._reader
            reader.forget_locked(stream)
            # Flow-control credit of data that will never be read goes back to the server.
            unread = 0
            for event in stream.events:
                if type(event) is _DataReceived:
                    unread += event.flow_controlled_length
            stream.events.clear()
            if unread:
                reader.acknowledge_locked(unread, stream_id)
            health = self._health
            if (
                health.error is None
                and self._state is not CLOSED
                and stream.remote is not RESET
                and not (stream.remote is ENDED and stream.local_ended)
                and (health.goaway is None or stream_id <= health.goaway_last_stream_id)
            ):
                try:
                    self._h2_state.reset_stream(stream_id, ErrorCodes.CANCEL)
                except h2.exceptions.ProtocolError:  # pragma: no cover - already closed
                    pass
            slots = self._slots
            for waiter in slots.release():
                waiter.set()
            if slots.leave():
                closing = self._become_idle_locked()
        if closing:
            yield from self._close_connection()
        elif graceful:
            try:
                yield from self._writer.flush(stream.write_timeout, raise_error=False)
            except Exception:
                pass  # remembered by the connection; this response is complete

    def _become_idle_locked(self) -> bool:
        """No request left: go IDLE, or return True if the connection should close."""
        if self._state is CLOSED:
            return False
        health = self._health
        if (health.state is not OPEN and health.closes_when_idle()) or self._h2_state.is_closed():
            return True
        self._state = IDLE
        if self._keepalive_expiry is not None:
            self._expire_at = time.monotonic() + self._keepalive_expiry
        return False

    def _close(self) -> Gen[None]:
        return self._close_connection()

    def _close_connection(self) -> Gen[None]:
        with self._lock:
            self._state = CLOSED
            if self._network_closed:
                return
            self._network_closed = True
            try:
                self._h2_state.close_connection()
            except h2.exceptions.ProtocolError:  # pragma: no cover
                pass
            self._reader.wake_all_locked()
        yield (CLOSE, self._network_stream)

    # -- the state a pool asks for ---------------------------------------------------------

    def can_handle_request(self, origin: Origin) -> bool:
        """Whether this connection serves `origin` (each connection serves one origin)."""
        return origin == self._origin

    def is_available(self) -> bool:
        """Whether it can take another request now (a free stream slot, not failed or draining)."""
        return (
            self._refusal_locked() is None
            and not self._h2_state.is_closed()
            and self._slots.has_room()
        )

    def has_expired(self) -> bool:
        """Whether the pool should close it (keep-alive expired, failed with nothing in flight)."""
        return self._has_timed_out(time.monotonic())

    def _has_timed_out(self, now: float) -> bool:
        if self._expire_at is not None and now > self._expire_at:
            return True
        # A broken or used-up connection with nothing in flight is of no further use.
        return self._slots.in_flight == 0 and self._health.state is not OPEN

    def is_idle(self) -> bool:
        """Whether it is open with no stream in progress."""
        return self._state is IDLE

    def is_closed(self) -> bool:
        """Whether it is closed (the pool drops it without closing it again)."""
        return self._state is CLOSED

    def info(self) -> str:
        """A short description of its state, as shown in its repr."""
        return (
            f"{str(self._origin)!r}, HTTP/2, {self._state.name}, "
            f"Request Count: {self._request_count}"
        )

    def __repr__(self) -> str:
        return (
            f"<{self.__class__.__name__} [{str(self._origin)!r}, {self._state.name}, "
            f"Request Count: {self._request_count}]>"
        )
