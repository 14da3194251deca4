"""What HTTP/2 (`httpcore.http2`) and HTTP/3 (`httpcore.http3`) connections share beyond the
plain state of `_multiplex.py`: the lifecycle of a request on a multiplexed connection, the
stream record, and the reader role. Generator code (see `_drive.py`), no protocol library:
each protocol plugs in what differs (opening a stream, sending, receiving, reading).

`MultiplexedCore` keeps these rules:

1. A request is inside the connection from `_handle` until its response is closed (or it
   fails): it counts in `in_flight`, holds a stream slot once granted, and has a stream once
   its HEADERS are queued. Each of those is undone exactly once, on every path.
2. Whether the connection takes a new request is asked in one place, `_refusal_locked()`: a
   closed connection, or one whose health is not OPEN, refuses. A request refused before
   anything was sent gets `ConnectionNotAvailable` (the pool retries it elsewhere) and does
   not count in the request count.
3. The first request starts the connection (HTTP/2: the preface; HTTP/3: the QUIC
   handshake) before it waits for a stream slot.
4. The connection goes IDLE when its last request is done, or closes if it is of no further
   use (`_closes_when_idle_locked`).

`ReaderRole` keeps these rules:

1. At most one request at a time is the *reader*: it reads and files what arrives with the
   streams, waking their requests; every other request that needs data waits on its own
   event. When the reader has what it needs it hands the role to the first request still
   waiting, so nobody waits behind a read that is not for them.
2. A failure of the connection is raised in every request that waits for data.
"""

from __future__ import annotations

import collections
import enum
import functools
import logging
import re
import time
from typing import (
    Any,
    Callable,
    ContextManager,
    Deque,
    Dict,
    Generic,
    Iterable,
    List,
    Optional,
    Tuple,
    TypeVar,
    Union,
)

from ._drive import WAIT, BodyGen, Flavour, Gen
from ._exceptions import (
    ConnectionNotAvailable,
    LocalProtocolError,
    PoolTimeout,
    ReadTimeout,
    RemoteProtocolError,
)
from ._http11 import origin_mismatch
from ._http11_simple import in_memory_body
from ._models import Origin, Request, Response
from ._multiplex import OPEN, ConnectionHealth, StreamSlots, Waiter, renewed
from ._ops import check_body
from ._trace import traced

T = TypeVar("T")
#: The connection's state lock (`SyncIO.state_lock()`: a threading.Lock; a no-op under async).
StateLock = ContextManager[object]
Headers = List[Tuple[bytes, bytes]]


# Headers meaningless in HTTP/2 and HTTP/3 (RFC 9113 §8.2.2, RFC 9114 §4.2), left out of
# requests.
DROPPED_HEADERS = frozenset(
    [b"host", b"transfer-encoding", b"connection", b"keep-alive", b"proxy-connection", b"upgrade"]
)


# RFC 9113 §8.2.1 and RFC 9114 §4.2: a field name is a token (RFC 9110 §5.1), lower-cased
# here; a field value must not hold NUL, CR or LF (a server must treat such a request as
# malformed; an intermediary turning it back into HTTP/1.1 would split it into more lines).
# Neither h2 nor aioquic checks what a client sends.
_FIELD_NAME = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-z]+")
_FORBIDDEN_IN_VALUE = re.compile(rb"[\x00\r\n]")
# Names found valid (most requests repeat a handful), up to a bound.
_VALID_NAMES: Dict[bytes, None] = {}
_MAX_VALID_NAMES = 512


def check_request_start(request: Request, authority: bytes, protocol: str) -> None:
    """Refuse NUL, CR or LF in the method, the Host header or the target (`LocalProtocolError`)."""
    if _FORBIDDEN_IN_VALUE.search(b"".join((request.method, authority, request.url.target))):
        raise LocalProtocolError(
            f"Invalid {protocol} request: NUL, CR and LF are not allowed in the method, the Host "
            "header or the target."
        )


def check_request_field(name: bytes, value: bytes, protocol: str) -> None:
    """Refuse a lower-cased request field that would be malformed (`LocalProtocolError`). The
    message names the field but not its value, which may be a credential."""
    if name not in _VALID_NAMES:
        if _FIELD_NAME.fullmatch(name) is None:
            raise LocalProtocolError(f"Invalid {protocol} request header name {name!r}.")
        if len(_VALID_NAMES) < _MAX_VALID_NAMES:
            _VALID_NAMES[bytes(name)] = None
    if _FORBIDDEN_IN_VALUE.search(value) is not None:
        raise LocalProtocolError(
            f"Invalid {protocol} request header value for {name!r}: NUL, CR and LF are not allowed."
        )


def request_authority(request: Request) -> bytes:
    """The `:authority` of a request: its Host header, which must be there."""
    for name, value in request.headers:
        if name.lower() == b"host":
            return value
    raise LocalProtocolError("Missing mandatory Host: header")


class HTTPConnectionState(enum.IntEnum):
    """Where a multiplexed connection is: requests in flight, none, or closed."""

    ACTIVE = 1
    IDLE = 2
    CLOSED = 3


ACTIVE = HTTPConnectionState.ACTIVE
IDLE = HTTPConnectionState.IDLE
CLOSED = HTTPConnectionState.CLOSED

#: How many queued events a stream keeps in a plain list (`StreamBase.events`).
SHORT_EVENT_QUEUE = 16


class StreamBase:
    """One request/response exchange on a multiplexed connection: what every protocol keeps.

    Changed only under the connection's state lock, never across a yield. The events of a
    stream (the protocol library's, filed by the reader) are consumed in order; a `failure`
    (the connection's, or a GOAWAY's verdict on this stream) is raised only once they are all
    consumed, so what the server sent before it is still delivered.
    """

    __slots__ = (
        "closed",
        "events",
        "failure",
        "local_ended",
        "read_timeout",
        "replayable",
        "stream_id",
        "waiter",
        "write_timeout",
    )

    def __init__(
        self,
        stream_id: int,
        read_timeout: Optional[float],
        write_timeout: Optional[float],
        local_ended: bool,
        replayable: bool,
    ) -> None:
        self.stream_id = stream_id
        self.read_timeout = read_timeout
        self.write_timeout = write_timeout
        self.local_ended = local_ended  # the request is sent in full (END_STREAM / FIN)
        self.replayable = replayable  # the request body can be sent again elsewhere
        self.closed = False  # the response was closed: the stream is released
        #: The events for this stream (the protocol library's), filed by the reader, in order.
        #: A list while short: an empty deque costs 760 bytes against a list's 56, for every
        #: open stream. A stream that queues more (a slow reader of many small frames; the
        #: windows allow thousands) gets a deque (`next_event`), so taking one stays O(1).
        self.events: Union[List[Any], Deque[Any]] = []
        self.waiter: Optional[Waiter] = None
        self.failure: Optional[Exception] = None
        self._start()

    def _start(self) -> None:
        """Set the protocol's own fields (a subclass's; run at the end of `__init__`)."""

    def raise_failure(self) -> None:
        """Raise the stream's failure (a fresh copy: it may be raised more than once)."""
        failure = self.failure
        assert failure is not None
        if type(failure) is ConnectionNotAvailable:
            raise ConnectionNotAvailable()
        raise renewed(failure)

    def next_event(self) -> Any:
        """The next event for this stream, None if there is none yet (a `wait_for` check)."""
        events = self.events
        if events:
            if isinstance(events, list):
                if len(events) <= SHORT_EVENT_QUEUE:
                    return events.pop(0)
                self.events = events = collections.deque(events)
            return events.popleft()
        if self.failure is not None:
            self.raise_failure()
        return None


S = TypeVar("S", bound=StreamBase)
#: What a protocol's reader is given besides the stream (HTTP/2: the request; HTTP/3: the
#: deadline of the wait).
C = TypeVar("C")


class ReaderRole(Generic[S, C]):
    """The reader role of one connection (rules 1-2 at the top). A subclass reads:
    `_read_once(stream, context)` reads once and files what arrived; `_wait_time` says how
    long a request waits for the reader. The context of a wait is the protocol's (HTTP/2:
    the request; HTTP/3: the deadline of the wait)."""

    __slots__ = ("_health", "_io", "_lock", "_reader", "_slots", "_waiting", "streams")

    _io: Flavour
    _lock: StateLock
    _reader: Optional[object]  # the stream (or the handshake) now reading
    _waiting: Dict[S, None]  # streams waiting for the reader, in order
    _health: ConnectionHealth
    _slots: StreamSlots[Waiter]
    streams: Dict[int, S]  # the open streams, by id

    def _read_once(self, stream: S, context: C) -> Gen[None]:
        raise NotImplementedError  # pragma: no cover

    def _wait_time(self, stream: S, context: C) -> Optional[float]:
        raise NotImplementedError  # pragma: no cover

    def wait_for(self, stream: S, check: Callable[[S], Optional[T]], context: C) -> Gen[T]:
        """Until `check(stream)` (run under the lock) returns non-None: read as the reader,
        or wait for the reader to deliver."""
        lock = self._lock
        try:
            while True:
                with lock:
                    result = check(stream)
                    if result is not None:
                        return result
                    error = self._health.error
                    if error is not None:
                        raise renewed(error)
                    reader = self._reader
                    if reader is None or reader is stream:
                        self._reader = stream
                        waiter = None
                    else:
                        waiter = Waiter(self._io.new_event(), ReadTimeout)
                        stream.waiter = waiter
                        self._waiting[stream] = None
                if waiter is None:
                    yield from self._read_once(stream, context)
                else:
                    yield (WAIT, waiter, self._wait_time(stream, context))
        finally:
            with lock:
                if self._reader is stream:
                    self._reader = None
                if stream.waiter is not None:
                    stream.waiter = None
                    self._waiting.pop(stream, None)
                if self._reader is None and self._waiting:
                    # Somebody still needs data: the next in line becomes the reader.
                    for waiting in self._waiting:
                        self._wake_locked(waiting)
                        break

    def _wake_locked(self, stream: S) -> None:
        waiter = stream.waiter
        if waiter is not None:
            stream.waiter = None
            self._waiting.pop(stream, None)
            waiter.set()

    def wake_all_locked(self) -> None:
        """Wake every waiting request (streams and slots) to look at the connection again."""
        for stream in list(self._waiting):
            self._wake_locked(stream)
        for waiter in self._slots.queue:
            waiter.set()

    def forget_locked(self, stream: S) -> None:
        """The stream is released: no more events are filed with it."""
        self.streams.pop(stream.stream_id, None)
        self._waiting.pop(stream, None)


#: What a protocol needs to open a stream, made once per request (HTTP/2: the authority;
#: HTTP/3: the header list).
P = TypeVar("P")


class MultiplexedCore(Generic[S, P]):
    """The lifecycle of requests on a multiplexed connection (rules 1-4 at the top).

    A protocol's core derives from it and provides the steps: `_prepare`, `_start_locked`,
    `_start`, `_open_stream`, `_send_request`, `_receive_response_headers`, `_receive_body`,
    `_response_closed`, `_close_connection`, `_closes_when_idle_locked`, `_network_stream_of`.
    """

    #: The `http_version` extension of its responses, and the name in `info()`.
    HTTP_VERSION = b"HTTP/2"
    #: Takes several requests at once (the pool's `_interfaces.multiplexes`).
    MULTIPLEXED = True
    #: The logger of the protocol's trace steps.
    LOGGER = logging.getLogger("httpcore")

    _io: Flavour  # SyncIO or AsyncIO (the shells set it)
    _lock: StateLock
    _origin: Origin
    _state: HTTPConnectionState
    _request_count: int
    _expire_at: Optional[float]
    _keepalive_expiry: Optional[float]
    _health: ConnectionHealth
    _slots: StreamSlots[Waiter]

    # -- the protocol's steps ---------------------------------------------------------------

    _prepare: Callable[[Request], P]
    _start_locked: Callable[[], bool]
    _start: Callable[[Request, Optional[float]], Gen[None]]
    _open_stream: Callable[
        [Request, P, Optional[bytes], Optional[float], Optional[float]], Optional[S]
    ]
    _send_request: Callable[[Request, S, Optional[bytes]], Gen[None]]
    _receive_response_headers: Callable[[Request, S], Gen[Tuple[int, Headers]]]
    _receive_body: Callable[[Request, S], BodyGen]
    _response_closed: Callable[[S, bool], Gen[None]]
    _close_connection: Callable[[], Gen[None]]
    _closes_when_idle_locked: Callable[[], bool]
    _network_stream_of: Callable[[], object]

    def _refusal_locked(self) -> Optional[BaseException]:
        """Can this connection take a new request? None if so, else the exception to raise."""
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
        check_body(request.stream, self._io.is_async)
        prepared = self._prepare(request)
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
            start = self._start_locked()

        stream: Optional[S] = None
        has_slot = False
        try:
            if start:
                yield from self._start(request, write_timeout)
            # An in-memory body (ours, bytes, httpx's) is sent whole and can be sent again on
            # another connection when GOAWAY refuses the stream.
            content = in_memory_body(request.stream)
            pool_timeout = timeouts.get("pool", None)
            while stream is None:
                yield from self._acquire_slot(pool_timeout)
                has_slot = True
                stream = self._open_stream(request, prepared, content, read_timeout, write_timeout)
                if stream is None:  # no room after all: queue again
                    with self._lock:
                        self._wake(self._slots.release())
                    has_slot = False
            yield from self._send_request(request, stream, content)
            status, headers = yield from traced(
                self.LOGGER,
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
                yield from self._traced_response_closed(request, stream, False)
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

        # The protocols build the headers as bytes pairs already: no copy to coerce them.
        return Response._wrap(
            status,
            headers,
            self._io.stream_class(
                self._receive_body(request, stream),
                functools.partial(self._traced_response_closed, request, stream, True),
            ),
            {
                "http_version": self.HTTP_VERSION,
                "network_stream": self._network_stream_of(),
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
                        raise ConnectionNotAvailable()  # nothing sent: retry elsewhere
                    waiter.event = self._io.new_event()  # pragma: no cover - spurious wake-up
        except BaseException:
            with self._lock:
                self._wake(slots.withdraw(waiter))
            raise

    # -- closing ---------------------------------------------------------------------------

    def _traced_response_closed(
        self, request: Optional[Request], stream: S, graceful: bool
    ) -> Gen[None]:
        if stream.closed:
            return
        yield from traced(
            self.LOGGER,
            "response_closed",
            request,
            {"stream_id": stream.stream_id},
            self._response_closed(stream, graceful),
        )

    def _release_locked(self) -> Tuple[bool, bool]:
        """A request is done with its stream: the slot goes to the next in line. Returns
        (whether the connection should now close, whether no request is left)."""
        slots = self._slots
        for waiter in slots.release():
            waiter.set()
        idle = slots.leave()
        return (self._become_idle_locked() if idle else False), idle

    def _become_idle_locked(self) -> bool:
        """No request left: go IDLE, or return True if the connection should close."""
        if self._state is CLOSED:
            return False
        if self._closes_when_idle_locked():
            return True
        self._state = IDLE
        if self._keepalive_expiry is not None:
            self._expire_at = time.monotonic() + self._keepalive_expiry
        return False

    def _close(self) -> Gen[None]:
        return self._close_connection()

    # -- the state a pool asks for ---------------------------------------------------------

    def can_handle_request(self, origin: Origin) -> bool:
        """Whether this connection serves `origin` (each connection serves one origin)."""
        return origin == self._origin

    def has_expired(self) -> bool:
        """Whether the pool should close it (keep-alive expired, of no further use with
        nothing in flight)."""
        return self._has_timed_out(time.monotonic())

    def _has_timed_out(self, now: float) -> bool:
        if self._expire_at is not None and now > self._expire_at:
            return True
        # A broken or used-up connection with nothing in flight is of no further use.
        return self._slots.in_flight == 0 and self._health.state is not OPEN

    def is_idle(self) -> bool:
        """Whether it is open with no request in flight."""
        return self._state is IDLE

    def is_closed(self) -> bool:
        """Whether it is closed (the pool drops it without closing it again)."""
        return self._state is CLOSED

    def info(self) -> str:
        """A short description of its state, as shown in its repr."""
        return (
            f"{str(self._origin)!r}, {self.HTTP_VERSION.decode()}, {self._state.name}, "
            f"Request Count: {self._request_count}"
        )


def response_head(
    block: Iterable[Tuple[bytes, bytes]], default_status: Optional[int] = None
) -> Tuple[int, Headers]:
    """The status and headers of a response's header block (pseudo-headers left out).

    `:status` must be three digits, 100 to 999 (RFC 9110 §15), not whatever `int()` takes
    (`" 200"`, `"2_00"`); without one, `default_status`, or `RemoteProtocolError`.
    """
    status = default_status
    headers = []
    for name, value in block:
        if name == b":status":
            if len(value) != 3 or not value.isdigit() or value[:1] == b"0":
                raise RemoteProtocolError(f"Invalid :status {value!r}")
            status = int(value)
        elif not name.startswith(b":"):
            headers.append((name, value))
    if status is None:
        raise RemoteProtocolError("Response without a :status")
    return status, headers
