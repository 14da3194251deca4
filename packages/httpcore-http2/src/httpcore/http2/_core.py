"""The HTTP/2 connection: many concurrent requests multiplexed on one connection.

Written once, as generators yielding I/O operations (see `httpcore.base._drive`), and driven
by the sync class (threads) and the async class (asyncio or trio tasks). `HTTP2Core` ties
the parts together and answers the pool:

- `_patches.py`  the h2 connection as this package uses it;
- `_headers.py`  request headers to h2's, response headers back;
- `_stream.py`   the `Stream` record of one exchange (the `Waiter` is in base `_multiplex.py`);
- `httpcore.base._multiplex`  the stream slots (`StreamSlots`) and the connection's health
  (`ConnectionHealth`), plain state shared with HTTP/3;
- `httpcore.base._multiplex_core`  what HTTP/3 shares beyond it: the lifecycle of a request
  (`MultiplexedCore._handle`, stream slots, closing, what the pool asks), the stream record
  (`StreamBase`), the reader role (`ReaderRole.wait_for`);
- `_reader.py`   the reader role (reading, filing events with streams);
- `_writer.py`   the writer role (writing h2's queue, finishing cancelled writes);
- `_send.py`     the request side of a stream (HEADERS, the body within the windows);
- `_receive.py`  the response side of a stream (head, body).

Rules (besides those of `MultiplexedCore`):
- Bookkeeping is done under `_lock` (a real lock for threads, nothing under async) and never
  spans a yield.
- The first request queues the preface under the lock and sends it, so that no HEADERS get
  ahead of it; if that fails, the connection closes unless other requests already use it.
- The connection closes when idle if its health says it is of no further use (a GOAWAY, a
  failed write) or h2 closed it.
"""

from __future__ import annotations

import time
from typing import Any, Dict, Optional

import h2.events
import h2.exceptions
from h2.errors import ErrorCodes

from httpcore.base._drive import CALL, CLOSE, Flavour, Gen
from httpcore.base._models import Origin, Request
from httpcore.base._multiplex import OPEN, ConnectionHealth, StreamSlots, Waiter
from httpcore.base._multiplex_core import CLOSED, IDLE, MultiplexedCore, request_authority
from httpcore.base._multiplex_core import HTTPConnectionState as HTTPConnectionState
from httpcore.base._sync_backend import peer_closed, tcp_socket_of
from httpcore.base._tls_records import PEER_ENDED
from httpcore.base._trace import traced

from ._headers import HeadMemo
from ._patches import CONFIG, RepeatDecoder, new_h2_connection
from ._reader import FrameReader, logger
from ._receive import ResponseReceiving
from ._send import WINDOW_INCREMENT, RequestSending
from ._stream import ENDED, RESET, Stream
from ._writer import FrameWriter

_RepeatDecoder = RepeatDecoder  # its former name, for the tests

_DataReceived = h2.events.DataReceived


class HTTP2Core(RequestSending, ResponseReceiving, MultiplexedCore[Stream, bytes]):
    """HTTP/2 on h2. Subclasses pick the flavour (`_io`: `SyncIO` or `AsyncIO`)."""

    READ_NUM_BYTES = 65536
    #: How long a cancelled request may spend finishing the connection's interrupted write
    #: when the request has no write timeout.
    CANCELLED_WRITE_GRACE = 5.0
    CONFIG = CONFIG
    HTTP_VERSION = b"HTTP/2"
    LOGGER = logger

    _io: Flavour

    def __init__(
        self,
        origin: Origin,
        stream: Any,
        keepalive_expiry: Optional[float] = None,
    ) -> None:
        self._origin = origin
        self._network_stream = stream
        self._tcp_socket = tcp_socket_of(stream)
        self._tls = stream.get_extra_info("ssl_object") is not None
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
        self._heads: HeadMemo = {}
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
            close_network_stream=(
                self._close_network_stream if self._io.is_async else self._shut_down_network_stream
            ),
        )
        self._reader.attach(self._writer)

    @property
    def _max_streams(self) -> int:
        """How many streams may be open at once (1 until the server's SETTINGS arrive)."""
        return self._slots.limit

    # -- the steps of a request (`MultiplexedCore._handle`) -----------------------------------

    def _prepare(self, request: Request) -> bytes:
        return request_authority(request)

    def _start_locked(self) -> bool:
        """The first request queues the preface, so that no request's HEADERS can get ahead
        of it; it sends it (`_start`)."""
        if self._init_started:
            return False
        self._init_started = True
        h2_state = self._h2_state
        h2_state.initiate_connection()
        h2_state.increment_flow_control_window(WINDOW_INCREMENT)
        return True

    def _start(self, request: Request, write_timeout: Optional[float]) -> Gen[None]:
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

    def _network_stream_of(self) -> Any:
        return self._network_stream

    # -- closing ---------------------------------------------------------------------------

    def _response_closed(self, stream: Stream, graceful: bool) -> Gen[None]:
        """Release the stream. `graceful`: not on an error path, so frames may be written."""
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
            self._h2_state.forget_if_closed(stream_id)
            closing, _idle = self._release_locked()
        if closing:
            yield from self._close_connection()
        elif graceful:
            try:
                yield from self._writer.flush(stream.write_timeout, raise_error=False)
            except Exception:
                pass  # remembered by the connection; this response is complete

    def _closes_when_idle_locked(self) -> bool:
        health = self._health
        if health.state is not OPEN and health.closes_when_idle():
            return True
        return bool(self._h2_state.is_closed())

    def _close_connection(self) -> Gen[None]:
        with self._lock:
            self._state = CLOSED
            if self._network_closed:
                return
            self._network_closed = True
            self._writer.closed = True
            try:
                self._h2_state.close_connection()
            except h2.exceptions.ProtocolError:  # pragma: no cover
                pass
            self._reader.wake_all_locked()
        yield (CLOSE, self._network_stream)

    def _close_network_stream(self) -> Gen[None]:
        """Close the socket of a failed connection, which stays as it is until it is closed:
        a read in progress ends (see `FrameWriter`), and the socket is not left open."""
        with self._lock:
            if self._network_closed:
                return
            self._network_closed = True
            self._writer.closed = True
        yield (CLOSE, self._network_stream)

    def _shut_down_network_stream(self) -> Gen[None]:
        """Threads: shut the socket of a failed connection down, which ends a read another
        thread has in progress. Closing a socket under a reading thread is not safe (its
        descriptor may be reused at once); the connection's `close()` closes it later."""
        shutdown = getattr(self._network_stream, "shutdown", None)
        if shutdown is not None:
            yield (CALL, shutdown, None, ())

    # -- the state a pool asks for ---------------------------------------------------------

    def has_expired(self) -> bool:
        """Whether the pool should close it (keep-alive expired, of no further use with
        nothing in flight, or closed by the server while idle)."""
        if self._has_timed_out(time.monotonic()):
            return True
        # A server may close an idle connection without a GOAWAY (RFC 9113 §9.1): a request
        # sent on it would be lost. Unlike HTTP/1.1, readable does not mean closed here (a
        # PING, a WINDOW_UPDATE, a TLS session ticket), so ask for the TCP state, and under
        # TLS whether a close_notify waits (a proxy's, at the end of a tunnel, may come alone).
        if self._state is not IDLE:
            return False
        sock = self._tcp_socket
        if sock is not None and peer_closed(sock):
            return True
        return self._tls and self._network_stream.get_extra_info(PEER_ENDED) is True

    def is_available(self) -> bool:
        """Whether it can take another request now (a free stream slot, not failed or draining)."""
        return (
            self._refusal_locked() is None
            and not self._h2_state.is_closed()
            and self._slots.has_room()
        )

    def __repr__(self) -> str:
        return (
            f"<{self.__class__.__name__} [{str(self._origin)!r}, {self._state.name}, "
            f"Request Count: {self._request_count}]>"
        )
