"""The HTTP/2 protocol core: many concurrent requests multiplexed on one connection.

Written once, as generators yielding I/O operations (see `httpcore.base._drive`), and driven
by the sync class (threads) and the async class (asyncio or trio tasks).

There is no background task. Whoever needs something from the network reads it:

* Reading. At most one request at a time is the *reader*. It reads from the socket, feeds
  h2, and files each event with the stream it belongs to, waking that stream's request.
  Every other request that needs data waits on its own event. When the reader has what it
  needs it hands the reader role to one of the requests still waiting, so nobody waits
  behind a read that is not for them.
* Writing. All frames go through h2's outbound buffer, in the order h2 produced them. The
  one request that is currently writing drains the buffer (in as few writes as possible)
  until it is empty, so the frames queued by other requests meanwhile go out with its
  writes and nobody ever blocks waiting for a write lock.
* Stream slots. A request holds a slot from before its HEADERS until its response is
  closed. The limit follows the server's SETTINGS_MAX_CONCURRENT_STREAMS; a request that
  finds no free slot queues, and closing a response hands its slot to the first in line
  (only while the number of open streams is below the current limit, so lowering the
  limit below the number in flight just delays the queue).

Bookkeeping is done under `_lock` (a real lock for threads, nothing under async) and never
spans a yield.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import functools
import logging
import time
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import hpack
from h2.errors import ErrorCodes
from hpack import NeverIndexedHeaderTuple

from httpcore.base._async import current_library
from httpcore.base._drive import CALL, CLOSE, ITER, NEXT, READ, WAIT, WRITE, BodyGen, Gen
from httpcore.base._exceptions import (
    ConnectionNotAvailable,
    LocalProtocolError,
    PoolTimeout,
    ReadTimeout,
    RemoteProtocolError,
    TimeoutException,
    WriteError,
    WriteTimeout,
)
from httpcore.base._http11 import origin_mismatch
from httpcore.base._models import ByteStream, Origin, Request, Response
from httpcore.base._trace import is_traced, traced

logger = logging.getLogger("httpcore.http2")

_ResponseReceived = h2.events.ResponseReceived
_DataReceived = h2.events.DataReceived
_StreamEnded = h2.events.StreamEnded
_StreamReset = h2.events.StreamReset
_WindowUpdated = h2.events.WindowUpdated
_RemoteSettingsChanged = h2.events.RemoteSettingsChanged
_ConnectionTerminated = h2.events.ConnectionTerminated

_SettingCodes = h2.settings.SettingCodes
_H2_CLOSED = h2.connection.ConnectionState.CLOSED

# Headers that are meaningless in HTTP/2 (RFC 9113 §8.2.2) are left out of requests.
_DROPPED_HEADERS = frozenset(
    [b"host", b"transfer-encoding", b"connection", b"keep-alive", b"proxy-connection", b"upgrade"]
)

# Never put in the HPACK dynamic table (RFC 7541 §7.1.3), as h2's normalisation would do.
_SENSITIVE_HEADERS = frozenset([b"authorization", b"proxy-authorization"])

_WINDOW_INCREMENT = 2**24
_STOP = object()  # "stop sending the request body": the server finished or reset the stream


class HTTPConnectionState(enum.IntEnum):
    ACTIVE = 1
    IDLE = 2
    CLOSED = 3


ACTIVE = HTTPConnectionState.ACTIVE
IDLE = HTTPConnectionState.IDLE
CLOSED = HTTPConnectionState.CLOSED


class _GracefulStateMachine(h2.connection.H2ConnectionStateMachine):  # type: ignore[misc,unused-ignore]
    """h2's connection state machine, except that a received GOAWAY keeps the connection open.

    RFC 9113 §6.8: streams up to the GOAWAY's last-stream-id still complete. h2 would refuse
    every frame after a GOAWAY; here the connection keeps processing them, and this module
    opens no new stream once a GOAWAY was seen.
    """

    _transitions = dict(h2.connection.H2ConnectionStateMachine._transitions)
    _transitions[
        (h2.connection.ConnectionState.CLIENT_OPEN, h2.connection.ConnectionInputs.RECV_GOAWAY)
    ] = (None, h2.connection.ConnectionState.CLIENT_OPEN)


class _RepeatDecoder(hpack.Decoder):  # type: ignore[misc,unused-ignore]
    """An HPACK decoder that remembers the header blocks it decoded without touching its
    dynamic table.

    Servers tend to send the same response headers again and again, many (nginx among them)
    as Huffman-coded literals every time, whose decoding in pure Python costs more than the
    rest of a small response. Such a block, met again while the decoding state (the table's
    contents and size, the limits) is the same, decodes to the same headers and leaves that
    state alone: a dict lookup does instead.
    """

    MEMO_SIZE = 64

    def __init__(self) -> None:
        super().__init__()
        self._memo: Dict[bytes, Tuple[Tuple[Any, ...], Tuple[Any, ...]]] = {}
        self._table_changes = 0
        table = self.header_table
        add = table.add

        def counting_add(name: bytes, value: bytes) -> None:
            was_empty = not table.dynamic_entries
            add(name, value)
            # An entry too big for the table (any entry when the server set its size to 0,
            # as nginx does) leaves an empty table empty: no change.
            if table.dynamic_entries or not was_empty:
                self._table_changes += 1

        table.add = counting_add  # type: ignore[method-assign]

    def decode(self, data: bytes, raw: bool = False) -> Any:
        state = (
            self._table_changes,
            self.header_table.maxsize,
            self.max_header_list_size,
            self.max_allowed_table_size,
            raw,
        )
        memo = self._memo
        known = memo.get(data)
        if known is not None and known[0] == state:
            return list(known[1])
        headers = super().decode(data, raw)
        if self._table_changes == state[0] and self.header_table.maxsize == state[1]:
            if len(memo) >= self.MEMO_SIZE:
                memo.clear()
            memo[bytes(data)] = (state, tuple(headers))
        return headers


class _H2Connection(h2.connection.H2Connection):  # type: ignore[misc,unused-ignore]
    """An h2 client connection that finishes the streams a GOAWAY lets complete."""

    def __init__(self, config: Any) -> None:
        super().__init__(config=config)
        self.state_machine = _GracefulStateMachine()
        decoder = _RepeatDecoder()
        decoder.max_header_list_size = self.decoder.max_header_list_size
        decoder.max_allowed_table_size = self.decoder.max_allowed_table_size
        self.decoder = decoder

    def clear_outbound_data_buffer(self) -> None:
        # h2 drops queued frames when a GOAWAY arrives; they may be window updates or body
        # data of streams that are still allowed to complete, so they are kept.
        return None


class _Waiter:
    """Something a request waits on with the WAIT operation (an event + the timeout error)."""

    __slots__ = ("event", "granted", "timeout_error")

    def __init__(self, event: Any, timeout_error: Any) -> None:
        self.event = event
        self.timeout_error = timeout_error
        self.granted = False

    def set(self) -> None:
        self.event.set()

    def wait_sync(self, timeout: Optional[float]) -> None:
        if not self.event.wait(timeout):
            raise self.timeout_error()

    async def wait_async(self, timeout: Optional[float]) -> None:
        try:
            await self.event.wait(timeout)
        except PoolTimeout as exc:
            if self.timeout_error is PoolTimeout:
                raise
            raise self.timeout_error(exc) from exc


class _Stream:
    """One request/response exchange on the connection."""

    __slots__ = (
        "closed",
        "ended",
        "events",
        "failure",
        "local_ended",
        "read_timeout",
        "replayable",
        "reset",
        "response_started",
        "stream_id",
        "waiter",
        "wants_window",
        "write_timeout",
    )

    def __init__(
        self, stream_id: int, read_timeout: Optional[float], write_timeout: Optional[float]
    ) -> None:
        self.stream_id = stream_id
        self.read_timeout = read_timeout
        self.write_timeout = write_timeout
        self.events: Deque[Any] = collections.deque()
        self.waiter: Optional[_Waiter] = None
        self.failure: Optional[Exception] = None
        self.response_started = False  # response headers received
        self.ended = False  # the server ended its side (END_STREAM)
        self.reset = False  # the server reset the stream
        self.local_ended = False  # we sent END_STREAM
        self.wants_window = False  # waiting for send flow-control window
        self.replayable = True  # the request body can be sent again on another connection
        self.closed = False


def _no_op(*args: Any) -> None:
    """The sync side of async-only `CALL`s."""
    return None


async def _let_others_run() -> None:
    """One turn of the event loop (a checkpoint under trio)."""
    if current_library() == "trio":
        import trio

        await trio.lowlevel.checkpoint()
    else:
        await asyncio.sleep(0)


async def _aresume_write(stream: Any, data: bytes, timeout: Optional[float]) -> None:
    await stream.resume_write(data, timeout)


def _returning(value: Any) -> Gen[Any]:
    """A generator without operations that returns `value` (for a traced step)."""
    if False:  # pragma: no cover
        yield ()
    return value


def _renewed(exc: BaseException) -> BaseException:
    """A copy of a remembered connection error, to raise in one more request."""
    try:
        copy = type(exc)(*exc.args)
    except Exception:  # pragma: no cover - exotic exception signatures
        return exc
    copy.__cause__ = exc
    return copy


class HTTP2Core:
    """HTTP/2 on h2. Subclasses pick the flavour (`_io`: `SyncIO` or `AsyncIO`)."""

    READ_NUM_BYTES = 65536
    #: How long a cancelled request may spend finishing the connection's interrupted write
    #: when the request has no write timeout.
    CANCELLED_WRITE_GRACE = 5.0
    CONFIG = h2.config.H2Configuration(
        client_side=True,
        validate_inbound_headers=False,
        # The request headers are built here already lower-cased and valid for HTTP/2.
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
    )

    _io: Any

    def __init__(
        self,
        origin: Origin,
        stream: Any,
        keepalive_expiry: Optional[float] = None,
    ) -> None:
        self._origin = origin
        self._network_stream = stream
        # A cancelled write can be finished (see `_after_cancelled_write`); async only.
        self._resumable = self._io.is_async and bool(getattr(stream, "resumable_writes", False))
        self._keepalive_expiry = keepalive_expiry
        self._expire_at: Optional[float] = None
        self._state = IDLE
        self._request_count = 0
        self._lock = self._io.state_lock()

        h2_state = _H2Connection(config=self.CONFIG)
        h2_state.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                _SettingCodes.ENABLE_PUSH: 0,
                _SettingCodes.MAX_CONCURRENT_STREAMS: 100,
                _SettingCodes.MAX_HEADER_LIST_SIZE: 65536,
            },
        )
        connect_protocol = getattr(_SettingCodes, "ENABLE_CONNECT_PROTOCOL", None)
        if connect_protocol is not None and connect_protocol in h2_state.local_settings:
            del h2_state.local_settings[connect_protocol]
        self._h2_state = h2_state

        self._init_started = False
        self._settings_received = False
        self._max_streams = 1  # until the server's SETTINGS arrive
        self._open_slots = 0  # slots held (streams open or about to be)
        self._slot_waiters: Deque[_Waiter] = collections.deque()
        self._in_flight = 0  # requests inside the connection, from handle to response close
        self._streams: Dict[int, _Stream] = {}
        self._waiting: Dict[_Stream, None] = {}  # streams waiting for the reader, in order
        self._reader: Optional[_Stream] = None
        self._writing = False
        # Remembered failures. `_error` ends the connection for everybody; `_write_error` (the
        # network refused a write, e.g. the server closed) only stops writing: what the server
        # already sent (responses, a GOAWAY refusing our streams) can still be read.
        self._error: Optional[BaseException] = None
        self._write_error: Optional[BaseException] = None
        self._terminated: Any = None  # the ConnectionTerminated event of a GOAWAY
        self._used_all_stream_ids = False
        self._network_closed = False

    # -- a request -------------------------------------------------------------------------

    def _handle(self, request: Request) -> Gen[Response]:
        if request.url.origin != self._origin:
            raise origin_mismatch(request, self._origin)
        authority = None
        for name, value in request.headers:
            if name.lower() == b"host":
                authority = value
                break
        if authority is None:
            raise LocalProtocolError("Missing mandatory Host: header")

        timeouts = request.extensions.get("timeout", {})
        read_timeout = timeouts.get("read", None)
        write_timeout = timeouts.get("write", None)

        with self._lock:
            if (
                self._state is CLOSED
                or self._terminated is not None
                or self._write_error is not None
                or self._used_all_stream_ids
            ):
                # Nothing sent yet: the pool can retry elsewhere.
                raise ConnectionNotAvailable()
            if self._error is not None:
                raise _renewed(self._error)
            self._request_count += 1
            self._in_flight += 1
            self._state = ACTIVE
            self._expire_at = None
            send_init = not self._init_started
            if send_init:
                # Queued at once, so that no request's HEADERS can get ahead of the preface.
                self._init_started = True
                h2_state = self._h2_state
                h2_state.initiate_connection()
                h2_state.increment_flow_control_window(_WINDOW_INCREMENT)

        stream: Optional[_Stream] = None
        has_slot = False
        try:
            if send_init:
                try:
                    yield from traced(
                        logger,
                        "send_connection_init",
                        request,
                        {"request": request},
                        self._flush(write_timeout),
                    )
                except BaseException:
                    yield from self._close_connection()
                    raise
            body: Any = request.stream
            content: Optional[bytes] = None
            if type(body) is ByteStream:
                content = body._content
            elif type(body) is bytes:
                content = body
            pool_timeout = timeouts.get("pool", None)
            while stream is None:
                yield from self._acquire_slot(pool_timeout)
                has_slot = True
                stream = self._open_stream(request, authority, content, read_timeout, write_timeout)
                if stream is None:
                    with self._lock:
                        self._release_slot_locked()
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
                        self._release_slot_locked()
                    self._in_flight -= 1
                    if self._in_flight == 0:
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

    # -- stream slots ------------------------------------------------------------------------

    def _acquire_slot(self, timeout: Optional[float]) -> Gen[None]:
        with self._lock:
            if not self._slot_waiters and self._open_slots < self._max_streams:
                self._open_slots += 1
                return
            waiter = _Waiter(self._io.new_event(), PoolTimeout)
            self._slot_waiters.append(waiter)
        try:
            while True:
                yield (WAIT, waiter, timeout)
                with self._lock:
                    if waiter.granted:
                        return
                    if self._unusable_locked():
                        self._slot_waiters.remove(waiter)
                        raise ConnectionNotAvailable()
                    waiter.event = self._io.new_event()  # pragma: no cover - spurious wake-up
        except BaseException:
            with self._lock:
                if waiter.granted:
                    self._release_slot_locked()
                elif waiter in self._slot_waiters:
                    self._slot_waiters.remove(waiter)
            raise

    def _unusable_locked(self) -> bool:
        return (
            self._state is CLOSED
            or self._error is not None
            or self._write_error is not None
            or self._terminated is not None
            or self._used_all_stream_ids
        )

    def _grant_slots_locked(self) -> None:
        waiters = self._slot_waiters
        while waiters and self._open_slots < self._max_streams:
            waiter = waiters.popleft()
            waiter.granted = True
            self._open_slots += 1
            waiter.set()

    def _release_slot_locked(self) -> None:
        self._open_slots -= 1
        if self._slot_waiters:
            self._grant_slots_locked()

    # -- sending -----------------------------------------------------------------------------

    def _open_stream(
        self,
        request: Request,
        authority: bytes,
        content: Optional[bytes],
        read_timeout: Optional[float],
        write_timeout: Optional[float],
    ) -> Optional[_Stream]:
        """Queue the HEADERS of a new stream (no I/O). None: no room after all, queue again."""
        empty = content is not None and not content
        url = request.url
        headers: List[Tuple[bytes, bytes]] = [
            (b":method", request.method),
            (b":authority", authority),
            (b":scheme", url.scheme),
            (b":path", url.target),
        ]
        if not url.target:
            raise LocalProtocolError("An HTTP/2 request needs a non-empty :path.")
        for name, value in request.headers:
            name = name.lower()
            if name in _DROPPED_HEADERS or (name == b"te" and value.lower() != b"trailers"):
                continue
            if not name or name[:1] == b":":
                raise LocalProtocolError(f"Invalid HTTP/2 request header name {name!r}.")
            if value[:1] in b" \t" or value[-1:] in b" \t":
                value = value.strip(b" \t")
            if name in _SENSITIVE_HEADERS or (name == b"cookie" and len(value) < 20):
                headers.append(NeverIndexedHeaderTuple(name, value))
            else:
                headers.append((name, value))

        with self._lock:
            if self._unusable_locked():
                error = self._error or self._write_error
                if error is not None:
                    raise _renewed(error)
                raise ConnectionNotAvailable()
            h2_state = self._h2_state
            try:
                stream_id = h2_state.get_next_available_stream_id()
            except h2.exceptions.NoAvailableStreamIDError:
                self._used_all_stream_ids = True
                raise ConnectionNotAvailable()
            try:
                h2_state.send_headers(stream_id, headers, end_stream=empty)
            except h2.exceptions.TooManyStreamsError:
                # The server lowered its limit after our slot was granted: queue again.
                return None
            except h2.exceptions.ProtocolError as exc:
                raise LocalProtocolError(exc) from exc
            h2_state.increment_flow_control_window(_WINDOW_INCREMENT, stream_id=stream_id)
            stream = _Stream(stream_id, read_timeout, write_timeout)
            stream.local_ended = empty
            stream.replayable = content is not None
            self._streams[stream_id] = stream
        return stream

    def _send_request(
        self, request: Request, stream: _Stream, content: Optional[bytes]
    ) -> Gen[None]:
        try:
            yield from self._send_request_steps(request, stream, content)
        except WriteError:
            if self._write_error is None:
                raise
            # The server stopped reading (it may have closed after a GOAWAY, or answered
            # early): what it sent is read next, and tells how this request ends.

    def _send_request_steps(
        self, request: Request, stream: _Stream, content: Optional[bytes]
    ) -> Gen[None]:
        write_timeout = stream.write_timeout
        if is_traced(logger, request):
            info = {"request": request, "stream_id": stream.stream_id}
            yield from traced(
                logger, "send_request_headers", request, info, self._flush(write_timeout)
            )
            yield from traced(
                logger,
                "send_request_body",
                request,
                info,
                self._send_request_body(request, stream, content),
            )
        elif content:
            # Head and body go out together when the body is in memory (and fits the window).
            yield from self._send_request_body(request, stream, content)
        else:
            yield from self._flush(write_timeout)
            yield from self._send_request_body(request, stream, content)

    def _send_request_body(
        self, request: Request, stream: _Stream, content: Optional[bytes]
    ) -> Gen[None]:
        if stream.local_ended:
            return
        if content is not None:
            yield from self._send_data(request, stream, content, end=True)
            return
        iterator = yield (ITER, request.stream)
        stream.replayable = False
        stopped = False
        while True:
            chunk = yield (NEXT, iterator)
            if chunk is None:
                break
            if chunk:
                stopped = yield from self._send_data(request, stream, chunk, end=False)
                if stopped:
                    break
        if not stopped:
            with self._lock:
                error = self._error or self._write_error
                if error is not None:
                    raise _renewed(error)
                if not stream.reset:
                    try:
                        self._h2_state.end_stream(stream.stream_id)
                        stream.local_ended = True
                    except h2.exceptions.ProtocolError as exc:
                        raise self._protocol_error(exc) from exc
            yield from self._flush(stream.write_timeout)

    def _send_data(self, request: Request, stream: _Stream, data: bytes, end: bool) -> Gen[bool]:
        """Queue non-empty `data` as DATA frames within the flow-control windows and flush.

        Returns True if the body should not be sent further (the server reset or finished
        the stream). With `end`, the last frame carries END_STREAM.
        """
        view = memoryview(data)
        total = len(view)
        offset = 0
        h2_state = self._h2_state
        stream_id = stream.stream_id
        while True:
            with self._lock:
                error = self._error or self._write_error
                if error is not None:
                    raise _renewed(error)
                if stream.reset:
                    return True
                try:
                    window = h2_state.local_flow_control_window(stream_id)
                    stop = offset + min(window, total - offset)
                    if stop > offset:
                        max_frame = h2_state.max_outbound_frame_size
                        while offset < stop:
                            n = min(max_frame, stop - offset)
                            last = end and offset + n == total
                            h2_state.send_data(
                                stream_id, view[offset : offset + n], end_stream=last
                            )
                            offset += n
                        if end and offset == total:
                            stream.local_ended = True
                except h2.exceptions.StreamClosedError:
                    return True
                except h2.exceptions.ProtocolError as exc:
                    raise self._protocol_error(exc) from exc
            yield from self._flush(stream.write_timeout)
            if offset >= total:
                return False
            # The window is used up: wait for the server to open it.
            outcome = yield from self._wait_for(stream, self._check_window, request)
            if outcome is _STOP:
                return True

    def _check_window(self, stream: _Stream) -> Any:
        if self._write_error is not None:
            raise _renewed(self._write_error)
        if stream.reset or stream.ended or stream.closed:
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
            raise self._stream_failure(stream)
        stream.wants_window = True
        return None

    def _protocol_error(self, exc: Exception) -> Exception:
        if self._terminated is not None:
            return RemoteProtocolError(self._terminated)
        return LocalProtocolError(exc)

    def _flush(self, timeout: Optional[float], raise_error: bool = True) -> Gen[None]:
        """Write what h2 has queued; if another request is writing, it writes it for us."""
        lock = self._lock
        with lock:
            error = self._error or self._write_error
            if error is not None:
                self._h2_state.data_to_send()  # never to be sent: do not let it pile up
                if raise_error:
                    raise _renewed(error)
                return
            if self._writing or not self._h2_state._data_to_send:
                return
            self._writing = True
        network_stream = self._network_stream
        if self._resumable and len(self._streams) > 1:
            # Other tasks are likely ready to queue frames too (say, the next requests of those
            # whose responses the reader just delivered): let them, and write it all at once.
            # (Only where a cancellation here can be made good: others count on this flush.)
            try:
                yield (CALL, _no_op, _let_others_run, ())
            except BaseException as exc:
                yield from self._after_cancelled_write(network_stream, timeout, exc)
                raise
        try:
            with lock:
                data = self._h2_state.data_to_send()
            while True:
                yield (WRITE, network_stream, data, timeout)
                with lock:
                    data = self._h2_state.data_to_send()
                    if not data:
                        self._writing = False
                        return
        except WriteError as exc:
            # The network refused the write (typically: the server closed the connection).
            # Nothing more can be sent, but what the server sent before can still be read.
            with lock:
                self._writing = False
                if self._write_error is None:
                    self._write_error = exc
                self._h2_state.data_to_send()
                self._wake_all_locked()
            raise
        except BaseException as exc:
            yield from self._after_cancelled_write(network_stream, timeout, exc)
            raise

    def _after_cancelled_write(
        self, network_stream: Any, timeout: Optional[float], exc: BaseException
    ) -> Gen[None]:
        """The writer was interrupted (cancelled, timed out) while holding the write role.

        Frames of other requests may be in what it was writing, or queued behind it, so the
        connection is only good if all of it still goes out, in order. A stream with
        `resumable_writes` kept what it had not sent: finish the job, shielded from the
        cancellation and within the write timeout (`CANCELLED_WRITE_GRACE` without one).
        Anything else may have sent part of a frame: the connection fails.
        """
        lock = self._lock
        failure: Optional[BaseException] = None
        if isinstance(exc, Exception) or not self._resumable:
            failure = (
                exc
                if isinstance(exc, Exception)
                else WriteError("The connection was interrupted while writing.")
            )
        else:
            budget = timeout if timeout is not None else self.CANCELLED_WRITE_GRACE
            deadline = time.monotonic() + budget
            try:
                while True:
                    with lock:
                        data = self._h2_state.data_to_send()
                    yield (CALL, _no_op, _aresume_write, (network_stream, data, budget))
                    with lock:
                        if not self._h2_state._data_to_send:
                            self._writing = False
                            return
                    budget = deadline - time.monotonic()
                    if budget <= 0:
                        raise WriteTimeout("Timed out finishing an interrupted write.")
            except BaseException as resume_exc:
                failure = (
                    resume_exc
                    if isinstance(resume_exc, Exception)
                    else WriteError("The connection was interrupted while writing.")
                )
        with lock:
            self._writing = False
            self._fail_locked(failure)

    # -- receiving ---------------------------------------------------------------------------

    def _wait_for(
        self, stream: _Stream, check: Callable[[_Stream], Any], request: Request
    ) -> Gen[Any]:
        """Until `check(stream)` (run under the lock) returns non-None: read as the reader,
        or wait for the reader to deliver."""
        lock = self._lock
        try:
            while True:
                with lock:
                    result = check(stream)
                    if result is not None:
                        return result
                    if self._error is not None:
                        raise _renewed(self._error)
                    reader = self._reader
                    if reader is None or reader is stream:
                        self._reader = stream
                        waiter = None
                    else:
                        waiter = _Waiter(self._io.new_event(), ReadTimeout)
                        stream.waiter = waiter
                        self._waiting[stream] = None
                if waiter is None:
                    yield from self._read_once(request, stream)
                else:
                    yield (WAIT, waiter, stream.read_timeout)
        finally:
            with lock:
                if self._reader is stream:
                    self._reader = None
                if stream.waiter is not None:
                    stream.waiter = None
                    self._waiting.pop(stream, None)
                if self._reader is None and self._waiting:
                    # Somebody still needs data: the next in line becomes the reader.
                    self._wake_next_reader_locked()

    def _wake_next_reader_locked(self) -> None:
        for stream in self._waiting:
            self._wake_locked(stream)
            return

    def _wake_locked(self, stream: _Stream) -> None:
        waiter = stream.waiter
        if waiter is not None:
            stream.waiter = None
            self._waiting.pop(stream, None)
            waiter.set()

    def _wake_all_locked(self) -> None:
        for stream in list(self._waiting):
            self._wake_locked(stream)
        waiters = self._slot_waiters
        for waiter in waiters:
            waiter.set()

    def _fail_locked(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        self._wake_all_locked()

    def _read_once(self, request: Request, stream: _Stream) -> Gen[None]:
        if self._h2_state._data_to_send and not self._writing:
            # Never wait for the server while frames it waits for sit in the buffer (left by
            # a writer that was cancelled, for instance).
            try:
                yield from self._flush(stream.write_timeout, raise_error=False)
            except Exception:
                pass
        try:
            data = yield (READ, self._network_stream, self.READ_NUM_BYTES, stream.read_timeout)
        except TimeoutException:
            raise  # nothing was read: only this request is concerned
        except Exception as exc:
            with self._lock:
                self._fail_locked(exc)
            raise
        if not data:
            disconnected = RemoteProtocolError("Server disconnected")
            with self._lock:
                self._fail_locked(disconnected)
            raise disconnected
        with self._lock:
            try:
                events = self._h2_state.receive_data(data)
            except h2.exceptions.ProtocolError as exc:
                error = RemoteProtocolError(exc)
                self._fail_locked(error)
                raise error from exc
            settings = self._dispatch_locked(events)
        if settings is not None and is_traced(logger, request):
            yield from traced(logger, "receive_remote_settings", request, {}, _returning(settings))
        # Settings and PING acknowledgements, window updates, resets: out they go. A write
        # failure is remembered by the connection and reported to whoever needs it.
        try:
            yield from self._flush(stream.write_timeout, raise_error=False)
        except Exception:
            pass

    def _dispatch_locked(self, events: List[Any]) -> Any:
        streams = self._streams
        settings = None
        for event in events:
            kind = type(event)
            if kind is _DataReceived or kind is _ResponseReceived or kind is _StreamEnded:
                stream = streams.get(event.stream_id)
                if stream is None:
                    if kind is _DataReceived and event.flow_controlled_length:
                        # An abandoned stream: give the connection window back.
                        self._acknowledge_locked(event.flow_controlled_length, event.stream_id)
                    continue
                if kind is _ResponseReceived:
                    stream.response_started = True
                elif kind is _StreamEnded:
                    stream.ended = True
                stream.events.append(event)
                if stream.waiter is not None:
                    self._wake_locked(stream)
            elif kind is _StreamReset:
                stream = streams.get(event.stream_id)
                if stream is not None:
                    stream.reset = True
                    stream.events.append(event)
                    self._wake_locked(stream)
            elif kind is _WindowUpdated:
                if event.stream_id == 0:
                    self._wake_window_waiters_locked()
                else:
                    stream = streams.get(event.stream_id)
                    if stream is not None and stream.wants_window:
                        self._wake_locked(stream)
            elif kind is _RemoteSettingsChanged:
                settings = event
                h2_state = self._h2_state
                self._settings_received = True
                self._max_streams = min(
                    h2_state.remote_settings.max_concurrent_streams,
                    h2_state.local_settings.max_concurrent_streams,
                )
                self._grant_slots_locked()
                if _SettingCodes.INITIAL_WINDOW_SIZE in event.changed_settings:
                    self._wake_window_waiters_locked()
            elif kind is _ConnectionTerminated:
                self._goaway_locked(event)
        return settings

    def _wake_window_waiters_locked(self) -> None:
        for stream in list(self._waiting):
            if stream.wants_window:
                self._wake_locked(stream)

    def _goaway_locked(self, event: Any) -> None:
        self._terminated = event
        last_stream_id = event.last_stream_id
        graceful = event.error_code == 0
        for stream in self._streams.values():
            if stream.stream_id > last_stream_id:
                # Never processed by the server: safe to retry elsewhere, unless part of a
                # response or of a one-shot request body is already gone.
                if stream.response_started or not stream.replayable:
                    stream.failure = RemoteProtocolError(event)
                else:
                    stream.failure = ConnectionNotAvailable()
            elif not graceful:
                stream.failure = RemoteProtocolError(event)
        self._wake_all_locked()

    def _acknowledge_locked(self, size: int, stream_id: int) -> None:
        if self._error is None:
            try:
                self._h2_state.acknowledge_received_data(size, stream_id)
            except h2.exceptions.ProtocolError:  # pragma: no cover - connection closed
                pass

    def _stream_failure(self, stream: _Stream) -> Exception:
        failure = stream.failure
        assert failure is not None
        if type(failure) is ConnectionNotAvailable:
            return ConnectionNotAvailable()
        return _renewed(failure)  # type: ignore[return-value]

    def _check_event(self, stream: _Stream) -> Any:
        events = stream.events
        if events:
            return events.popleft()
        if stream.failure is not None:
            raise self._stream_failure(stream)
        return None

    def _receive_response_headers(
        self, request: Request, stream: _Stream
    ) -> Gen[Tuple[int, List[Tuple[bytes, bytes]]]]:
        while True:
            event = yield from self._wait_for(stream, self._check_event, request)
            kind = type(event)
            if kind is _ResponseReceived:
                break
            if kind is _StreamReset:
                raise RemoteProtocolError(event)
            if kind is _StreamEnded:  # pragma: no cover - h2 rejects this
                raise RemoteProtocolError("Stream ended without a response.")
        status = 200
        headers = []
        for name, value in event.headers:
            if name == b":status":
                try:
                    status = int(value)
                except ValueError:
                    raise RemoteProtocolError(f"Invalid :status {value!r}") from None
            elif not name.startswith(b":"):
                headers.append((name, value))
        return status, headers

    def _receive_body(self, request: Request, stream: _Stream) -> BodyGen:
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
            yield from self._traced_response_closed(request, stream, graceful=False)
            raise

    def _body_chunks(self, request: Request, stream: _Stream) -> BodyGen:
        lock = self._lock
        stream_id = stream.stream_id
        while True:
            event = yield from self._wait_for(stream, self._check_event, request)
            kind = type(event)
            if kind is _DataReceived:
                size = event.flow_controlled_length
                if size:
                    with lock:
                        self._acknowledge_locked(size, stream_id)
                    try:
                        yield from self._flush(stream.write_timeout, raise_error=False)
                    except Exception:
                        pass  # remembered; the data already received is still good
                data = event.data
                if data:
                    yield data if type(data) is bytes else bytes(data)
            elif kind is _StreamEnded:
                return
            elif kind is _StreamReset:
                raise RemoteProtocolError(event)

    # -- closing -----------------------------------------------------------------------------

    def _traced_response_closed(
        self, request: Optional[Request], stream: _Stream, graceful: bool
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

    def _response_closed(self, stream: _Stream, graceful: bool) -> Gen[None]:
        """Release the stream. `graceful`: not on an error path, so frames may be written."""
        closing = False
        with self._lock:
            if stream.closed:
                return
            stream.closed = True
            stream_id = stream.stream_id
            self._streams.pop(stream_id, None)
            self._waiting.pop(stream, None)
            # Flow-control credit of data that will never be read goes back to the server.
            unread = 0
            for event in stream.events:
                if type(event) is _DataReceived:
                    unread += event.flow_controlled_length
            stream.events.clear()
            if unread:
                self._acknowledge_locked(unread, stream_id)
            terminated = self._terminated
            if (
                self._error is None
                and self._state is not CLOSED
                and not stream.reset
                and not (stream.ended and stream.local_ended)
                and (terminated is None or stream_id <= terminated.last_stream_id)
            ):
                try:
                    self._h2_state.reset_stream(stream_id, ErrorCodes.CANCEL)
                except h2.exceptions.ProtocolError:  # pragma: no cover - already closed
                    pass
            self._release_slot_locked()
            self._in_flight -= 1
            if self._in_flight == 0:
                closing = self._become_idle_locked()
        if closing:
            yield from self._close_connection()
        elif graceful:
            try:
                yield from self._flush(stream.write_timeout, raise_error=False)
            except Exception:
                pass  # remembered by the connection; this response is complete

    def _become_idle_locked(self) -> bool:
        """No request left: go IDLE, or return True if the connection should close."""
        if self._state is CLOSED:
            return False
        if (
            self._terminated is not None
            or self._write_error is not None
            or self._h2_state.state_machine.state is _H2_CLOSED
        ):
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
            self._wake_all_locked()
        yield (CLOSE, self._network_stream)

    # -- the state a pool asks for -----------------------------------------------------------

    def can_handle_request(self, origin: Origin) -> bool:
        return origin == self._origin

    def is_available(self) -> bool:
        return (
            self._state is not CLOSED
            and self._error is None
            and self._write_error is None
            and self._terminated is None
            and not self._used_all_stream_ids
            and self._h2_state.state_machine.state is not _H2_CLOSED
            and (not self._settings_received or self._in_flight < self._max_streams)
        )

    def has_expired(self) -> bool:
        return self._has_timed_out(time.monotonic())

    def _has_timed_out(self, now: float) -> bool:
        if self._expire_at is not None and now > self._expire_at:
            return True
        # A broken or used-up connection with nothing in flight is of no further use.
        return self._in_flight == 0 and (
            self._error is not None
            or self._write_error is not None
            or self._used_all_stream_ids
            or self._terminated is not None
        )

    def is_idle(self) -> bool:
        return self._state is IDLE

    def is_closed(self) -> bool:
        return self._state is CLOSED

    def info(self) -> str:
        return (
            f"{str(self._origin)!r}, HTTP/2, {self._state.name}, "
            f"Request Count: {self._request_count}"
        )

    def __repr__(self) -> str:
        return (
            f"<{self.__class__.__name__} [{str(self._origin)!r}, {self._state.name}, "
            f"Request Count: {self._request_count}]>"
        )
