"""The HTTP/3 connection: many concurrent requests multiplexed on one QUIC connection.

Written once, as generators yielding I/O operations (see `httpcore.base._drive`), and driven
by the sync class (threads) and the async class (asyncio or trio tasks). Parts:

- `_quic.py`    aioquic as used here (configuration from an SSLContext, headers, GOAWAY);
- `_stream.py`  the `Stream` record of one exchange and the `Waiter` a request blocks on;
- `httpcore.base._multiplex`  the stream slots (`StreamSlots`) and the connection's health
  (`ConnectionHealth`), plain state shared with HTTP/2;
- `_reader.py`  the QUIC side: handshake, datagrams out, the reader role, timers;
- `_exchange.py`  the request side (HEADERS, body) and the response side (head, body).

Rules:
- The connection connects on its first request (a UDP endpoint from the network backend,
  then the QUIC handshake, `http3.send_connection_init`); concurrent first requests wait
  for that one handshake (the connect lock) and share its outcome.
- Bookkeeping is done under `_lock` (a real lock for threads, nothing under async) and never
  spans a yield. A request is inside the connection from `_handle` until its response is
  closed (or it fails): it counts in `in_flight`, holds a stream slot once granted, and has
  a `Stream` once its HEADERS are queued. Each of those is undone exactly once.
- The request body is handed to aioquic chunk by chunk; while more than `SEND_BUFFER` bytes
  of the stream are not yet acknowledged, the request reads (or waits for the reader) until
  the server's flow control and acknowledgements let them go.
- Closing a response before its end cancels the stream (STOP_SENDING + RESET_STREAM with
  H3_REQUEST_CANCELLED); closing the connection sends CONNECTION_CLOSE and closes the socket.
"""

from __future__ import annotations

import enum
import functools
import ssl
import time
from typing import Any, Dict, List, Optional

from aioquic.quic.connection import QuicConnection

from httpcore.base._drive import CALL, CLOSE, LOCK, UNLOCK, WAIT, WRITE, Gen
from httpcore.base._exceptions import (
    ConnectionNotAvailable,
    PoolTimeout,
)
from httpcore.base._http11 import origin_mismatch
from httpcore.base._models import ByteStream, Origin, Request, Response
from httpcore.base._multiplex import OPEN, ConnectionHealth, StreamSlots, Waiter, renewed
from httpcore.base._trace import traced

from ._exchange import StreamExchange
from ._quic import (
    idle_deadline,
    quic_configuration,
    request_authority,
    request_headers,
)
from ._reader import QuicReader, logger
from ._stream import Stream

_H3_REQUEST_CANCELLED = 0x10C
_H3_NO_ERROR = 0x100


class HTTPConnectionState(enum.IntEnum):
    """Where an HTTP/3 connection is: requests in flight, none, or closed."""

    ACTIVE = 1
    IDLE = 2
    CLOSED = 3


ACTIVE = HTTPConnectionState.ACTIVE
IDLE = HTTPConnectionState.IDLE
CLOSED = HTTPConnectionState.CLOSED


class HTTP3Core(StreamExchange):
    """HTTP/3 on aioquic. Subclasses pick the flavour (`_io`: `SyncIO` or `AsyncIO`)."""

    #: The QUIC idle timeout offered to the server (seconds).
    IDLE_TIMEOUT = 60.0
    #: An idle connection expires this long before QUIC's idle timeout would close it.
    IDLE_MARGIN = 2.0
    _is_http3 = True  # what the pool's connections look for (`httpcore.base._http3`)

    _io: Any

    def __init__(
        self,
        origin: Origin,
        ssl_context: Optional[ssl.SSLContext] = None,
        keepalive_expiry: Optional[float] = None,
        local_address: Optional[str] = None,
        network_backend: Any = None,
        server_hostname: Optional[str] = None,
        port: Optional[int] = None,
    ) -> None:
        if origin.scheme != b"https":
            raise ValueError("HTTP/3 needs an https origin")
        self._origin = origin
        self._ssl_context = ssl_context
        self._keepalive_expiry = keepalive_expiry
        self._local_address = local_address
        self._backend = network_backend
        self._server_hostname = server_hostname or origin.host.decode("ascii")
        self._port = origin.port if port is None else port  # UDP port (Alt-Svc may differ)
        self._expire_at: Optional[float] = None
        self._state = IDLE
        self._request_count = 0
        self._lock = self._io.state_lock()
        self._connect_lock = self._io.io_lock()
        self._connect_started = False
        self._health = ConnectionHealth()
        self._slots: StreamSlots[Waiter] = StreamSlots()
        self._streams: Dict[int, Stream] = {}
        self._quic = QuicReader(self._io, self._lock, self._health, self._slots, self._streams)

    def _refusal_locked(self) -> Optional[BaseException]:
        """Can this connection take a new request? None if so, else the exception to raise."""
        if self._state is CLOSED:
            return ConnectionNotAvailable()
        return self._health.refusal()

    # -- connecting -------------------------------------------------------------------------

    def _connect(self, request: Request, timeout_cap: Optional[float] = None) -> Gen[None]:
        """Connect on the first request; later ones wait for that handshake's outcome.

        `timeout_cap` bounds the handshake below the request's connect timeout (the pool's
        Alt-Svc discovery falls back to TCP after it)."""
        yield (LOCK, self._connect_lock)
        try:
            with self._lock:
                started, self._connect_started = self._connect_started, True
                if started:
                    error = self._health.error
                    if error is not None:
                        raise renewed(error)
            if not started:
                timeout = request.extensions.get("timeout", {}).get("connect", None)
                if timeout_cap is not None and (timeout is None or timeout > timeout_cap):
                    timeout = timeout_cap
                yield from traced(
                    logger,
                    "send_connection_init",
                    request,
                    {"request": request},
                    self._handshake(timeout),
                )
        except BaseException as exc:
            if isinstance(exc, Exception):
                with self._lock:
                    self._quic.fail_locked(exc)  # the requests waiting for it get it too
            yield (UNLOCK, self._connect_lock)
            if not self._quic.handshake_done:
                yield from self._close_connection()
            raise
        yield (UNLOCK, self._connect_lock)

    def _handshake(self, timeout: Optional[float]) -> Gen[None]:
        backend = self._backend
        if backend is None:
            backend = self._backend = self._io.default_backend()
        origin = self._origin
        udp = yield (
            CALL,
            backend.connect_udp,
            backend.connect_udp,
            (origin.host.decode("ascii"), self._port, self._local_address, timeout),
        )
        config = quic_configuration(self._ssl_context, self._server_hostname, self.IDLE_TIMEOUT)
        yield from self._quic.handshake(udp, QuicConnection(configuration=config), timeout)

    # -- a request -------------------------------------------------------------------------

    def _handle(self, request: Request) -> Gen[Response]:
        if request.url.origin != self._origin:
            raise origin_mismatch(request, self._origin)
        authority = request_authority(request)
        headers = request_headers(request, authority)
        timeouts = request.extensions.get("timeout", {})
        read_timeout = timeouts.get("read", None)
        write_timeout = timeouts.get("write", None)

        with self._lock:
            refusal = self._refusal_locked()
            if refusal is not None:
                raise refusal  # nothing sent yet: the pool can retry elsewhere
            self._request_count += 1
            self._slots.enter()
            self._state = ACTIVE
            self._expire_at = None

        stream: Optional[Stream] = None
        has_slot = False
        try:
            if not self._quic.handshake_done:
                yield from self._connect(request)
            body: Any = request.stream
            content: Optional[bytes] = None
            if type(body) is ByteStream:
                content = body._content
            elif type(body) is bytes:
                content = body
            yield from self._acquire_slot(timeouts.get("pool", None))
            has_slot = True
            stream = self._open_stream(headers, content, read_timeout, write_timeout)
            yield from self._send_request(request, stream, content)
            status, response_headers = yield from traced(
                logger,
                "receive_response_headers",
                request,
                {"request": request, "stream_id": stream.stream_id},
                self._receive_response_headers(stream),
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
            headers=response_headers,
            content=self._io.stream_class(
                self._receive_body(request, stream),
                functools.partial(self._traced_response_closed, request, stream, True),
            ),
            extensions={
                "http_version": b"HTTP/3",
                "network_stream": self._quic.udp,
                "stream_id": stream.stream_id,
            },
        )

    # -- stream slots -----------------------------------------------------------------------

    @staticmethod
    def _wake(waiters: Any) -> None:
        for waiter in waiters:
            waiter.set()

    def _acquire_slot(self, timeout: Optional[float]) -> Gen[None]:
        slots = self._slots
        with self._lock:
            refusal = self._refusal_locked()
            if refusal is not None:
                raise refusal
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
                    refusal = self._refusal_locked()
                    if refusal is not None:
                        slots.withdraw(waiter)
                        raise refusal
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
        """Release the stream; cancel it if the exchange did not finish."""
        closing = False
        flush = False
        with self._lock:
            if stream.closed:
                return
            stream.closed = True
            self._quic.forget_locked(stream)
            quic = self._quic.quic
            health = self._health
            if (
                quic is not None
                and health.error is None
                and self._state is not CLOSED
                and not (stream.remote_ended and stream.local_ended)
            ):
                stream_id = stream.stream_id
                try:
                    if stream.reset is None and not stream.remote_ended:
                        quic.stop_stream(stream_id, _H3_REQUEST_CANCELLED)
                    if not stream.local_ended:
                        quic.reset_stream(stream_id, _H3_REQUEST_CANCELLED)
                except Exception:  # pragma: no cover - the stream is gone already
                    pass
                flush = True
            stream.events.clear()
            self._wake(self._slots.release())
            idle = self._slots.leave()
            if idle:
                closing = self._become_idle_locked()
        if closing:
            yield from self._close_connection()
        elif flush or (graceful and idle):
            # A stream that ended both ways leaves nothing to send but ACKs, which the
            # reader sends; with no request left there is no reader: send them now.
            try:
                yield from self._quic.flush(stream.write_timeout)
            except Exception:
                pass  # remembered by the connection; this response is complete

    def _become_idle_locked(self) -> bool:
        """No request left: go IDLE, or return True if the connection should close."""
        if self._state is CLOSED:
            return False
        health = self._health
        if health.state is not OPEN and (health.closes_when_idle() or health.error is not None):
            return True
        self._state = IDLE
        if self._keepalive_expiry is not None:
            self._expire_at = time.monotonic() + self._keepalive_expiry
        return False

    def _close(self) -> Gen[None]:
        return self._close_connection()

    def _close_connection(self) -> Gen[None]:
        """CONNECTION_CLOSE to the server (if it is still there), then close the socket."""
        quic = self._quic
        with self._lock:
            self._state = CLOSED
            if quic.network_closed:
                return
            datagrams: List[Any] = []
            if quic.quic is not None and self._health.error is None:
                quic.quic.close(error_code=_H3_NO_ERROR)
                datagrams = quic.quic.datagrams_to_send(now=time.monotonic())
            quic.network_closed = True
            self._health.fail(ConnectionNotAvailable("The connection is closed."))
            quic.wake_all_locked()
        udp = quic.udp
        if udp is None:
            return
        interrupted: Optional[BaseException] = None
        try:
            for data, _address in datagrams:
                yield (WRITE, udp, data, None)
        except Exception:
            pass  # the server will time the connection out
        except BaseException as exc:  # cancelled: the socket is closed all the same
            interrupted = exc
        yield (CLOSE, udp)
        if interrupted is not None:
            raise interrupted

    # -- the state a pool asks for ---------------------------------------------------------

    def can_handle_request(self, origin: Origin) -> bool:
        """Whether this connection serves `origin` (each connection serves one origin)."""
        return origin == self._origin

    def is_available(self) -> bool:
        """Whether it takes another request now: open, healthy, a stream slot to spare."""
        return self._refusal_locked() is None and self._slots.has_room()

    def has_expired(self) -> bool:
        """Whether the pool should close it: keep-alive expired, QUIC's idle timeout near,
        or of no further use (failed, GOAWAY) with nothing in flight."""
        return self._has_timed_out(time.monotonic())

    def _has_timed_out(self, now: float) -> bool:
        if self._expire_at is not None and now > self._expire_at:
            return True
        if self._slots.in_flight == 0:
            if self._health.state is not OPEN:
                return True
            # QUIC's idle timeout (the smaller of ours and the server's) is near: the server
            # may have forgotten the connection already.
            quic = self._quic.quic
            deadline = None if quic is None else idle_deadline(quic)
            if deadline is not None and now > deadline - self.IDLE_MARGIN:
                return True
        return False

    def is_idle(self) -> bool:
        """Whether it is open with no request in flight."""
        return self._state is IDLE

    def is_closed(self) -> bool:
        """Whether it is closed."""
        return self._state is CLOSED

    def info(self) -> str:
        """A short description of its state, as shown in its repr."""
        return (
            f"{str(self._origin)!r}, HTTP/3, {self._state.name}, "
            f"Request Count: {self._request_count}"
        )

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__} [{self.info()}]>"
