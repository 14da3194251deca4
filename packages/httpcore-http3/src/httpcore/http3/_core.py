"""The HTTP/3 connection: many concurrent requests multiplexed on one QUIC connection.

Written once, as generators yielding I/O operations (see `httpcore.base._drive`), and driven
by the sync class (threads) and the async class (asyncio or trio tasks). Parts:

- `_quic.py`    aioquic as used here (configuration from an SSLContext, headers, GOAWAY);
- `_stream.py`  the `Stream` record of one exchange (what HTTP/3 adds to `StreamBase`);
- `httpcore.base._multiplex`  the stream slots (`StreamSlots`) and the connection's health
  (`ConnectionHealth`), plain state shared with HTTP/2;
- `httpcore.base._multiplex_core`  the rest shared with HTTP/2: the lifecycle of a request
  (`MultiplexedCore._handle`, stream slots, closing, what the pool asks), the stream record
  (`StreamBase`) and the reader role (`ReaderRole.wait_for`);
- `_reader.py`  the QUIC side: handshake, datagrams out, the reader role, timers;
- `_exchange.py`  the request side (HEADERS, body) and the response side (head, body).

Rules (besides those of `MultiplexedCore`):
- The connection connects on its first request (a UDP endpoint from the network backend,
  then the QUIC handshake, `http3.send_connection_init`); concurrent first requests wait
  for that one handshake (the connect lock) and share its outcome.
- Bookkeeping is done under `_lock` (a real lock for threads, nothing under async) and never
  spans a yield.
- The request body is handed to aioquic chunk by chunk; while more than `SEND_BUFFER` bytes
  of the stream are not yet acknowledged, the request reads (or waits for the reader) until
  the server's flow control and acknowledgements let them go.
- Closing a response before its end cancels the stream (STOP_SENDING + RESET_STREAM with
  H3_REQUEST_CANCELLED, or H3_MESSAGE_ERROR for a malformed response); closing the connection
  sends CONNECTION_CLOSE and closes the socket.
"""

from __future__ import annotations

import ssl
import time
from typing import Any, Dict, List, Optional

from aioquic.quic.connection import QuicConnection

from httpcore.base._drive import CALL, CLOSE, LOCK, UNLOCK, WRITE, Flavour, Gen
from httpcore.base._exceptions import ConnectError, ConnectionNotAvailable, ConnectTimeout
from httpcore.base._models import Origin, Request
from httpcore.base._multiplex import OPEN, ConnectionHealth, StreamSlots, Waiter, renewed
from httpcore.base._multiplex_core import CLOSED, IDLE, MultiplexedCore, request_authority
from httpcore.base._multiplex_core import HTTPConnectionState as HTTPConnectionState
from httpcore.base._trace import traced

from ._exchange import StreamExchange
from ._quic import (
    Headers,
    idle_deadline,
    quic_configuration,
    request_headers,
)
from ._reader import QuicReader, logger
from ._stream import Stream

_H3_REQUEST_CANCELLED = 0x10C
_H3_MESSAGE_ERROR = 0x10E  # a malformed response (RFC 9114 §4.1.2)
_H3_NO_ERROR = 0x100


class HTTP3Core(StreamExchange, MultiplexedCore[Stream, Headers]):
    """HTTP/3 on aioquic. Subclasses pick the flavour (`_io`: `SyncIO` or `AsyncIO`)."""

    #: The QUIC idle timeout offered to the server (seconds).
    IDLE_TIMEOUT = 60.0
    #: An idle connection expires this long before QUIC's idle timeout would close it.
    IDLE_MARGIN = 2.0
    #: Without a connect timeout, how long a handshake may take before the next address of
    #: the host is tried (the last one has no limit).
    ATTEMPT_TIMEOUT = 5.0
    _is_http3 = True  # what the pool's connections look for (`httpcore.base._http3`)
    HTTP_VERSION = b"HTTP/3"
    LOGGER = logger

    _io: Flavour

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
        """The QUIC handshake with the first address of the host that answers.

        The host's addresses are tried in the order the resolver gave them (the endpoint
        knows the ones after the first, `alternative_addresses`); a failed or timed-out
        handshake moves on to the next. While others remain, an attempt gets an equal share
        of what is left of the connect timeout (`ATTEMPT_TIMEOUT` without one)."""
        backend = self._backend
        if backend is None:
            backend = self._backend = self._io.default_backend()
        connect_udp = backend.connect_udp
        deadline = None if timeout is None else time.monotonic() + timeout
        args = (self._origin.host.decode("ascii"), self._port, self._local_address, timeout)
        udp = yield (CALL, connect_udp, connect_udp, args)
        others = list(udp.get_extra_info("alternative_addresses") or ())
        while True:
            attempt = self._attempt_timeout(deadline, len(others))
            config = quic_configuration(self._ssl_context, self._server_hostname, self.IDLE_TIMEOUT)
            try:
                yield from self._quic.handshake(udp, QuicConnection(configuration=config), attempt)
                return
            except (ConnectError, ConnectTimeout):
                if not others or (deadline is not None and time.monotonic() >= deadline):
                    raise
                with self._lock:
                    if self._state is CLOSED:
                        raise
                    # The next address starts afresh: nothing of this attempt is kept.
                    self._health = ConnectionHealth()
                    self._quic = QuicReader(
                        self._io, self._lock, self._health, self._slots, self._streams
                    )
            yield (CLOSE, udp)
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            address = others.pop(0)
            args = (address, self._port, self._local_address, remaining)
            udp = yield (CALL, connect_udp, connect_udp, args)

    @classmethod
    def _attempt_timeout(cls, deadline: Optional[float], others: int) -> Optional[float]:
        """How long one handshake may take, with `others` addresses still to try after it."""
        if deadline is None:
            return cls.ATTEMPT_TIMEOUT if others else None
        remaining = max(0.0, deadline - time.monotonic())
        return remaining / (others + 1)

    # -- the steps of a request (`MultiplexedCore._handle`) -----------------------------------

    def _prepare(self, request: Request) -> Headers:
        return request_headers(request, request_authority(request))

    def _start_locked(self) -> bool:
        return not self._quic.handshake_done

    def _start(self, request: Request, write_timeout: Optional[float]) -> Gen[None]:
        return self._connect(request)

    def _network_stream_of(self) -> Any:
        return self._quic.udp

    # -- closing ---------------------------------------------------------------------------

    def _response_closed(self, stream: Stream, graceful: bool) -> Gen[None]:
        """Release the stream; cancel it if the exchange did not finish."""
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
                code = _H3_MESSAGE_ERROR if stream.malformed else _H3_REQUEST_CANCELLED
                try:
                    if stream.reset is None and not stream.remote_ended:
                        quic.stop_stream(stream_id, code)
                    if not stream.local_ended:
                        quic.reset_stream(stream_id, code)
                except Exception:  # pragma: no cover - the stream is gone already
                    pass
                flush = True
            stream.events.clear()
            closing, idle = self._release_locked()
        if closing:
            yield from self._close_connection()
        elif flush or (graceful and idle):
            # A stream that ended both ways leaves nothing to send but ACKs, which the
            # reader sends; with no request left there is no reader: send them now.
            try:
                yield from self._quic.flush(stream.write_timeout)
            except Exception:
                pass  # remembered by the connection; this response is complete

    def _closes_when_idle_locked(self) -> bool:
        health = self._health
        return health.state is not OPEN and (health.closes_when_idle() or health.error is not None)

    def _close_connection(self) -> Gen[None]:
        """CONNECTION_CLOSE to the server (if it is still there), then close the socket."""
        quic = self._quic
        with self._lock:
            self._state = CLOSED
            if quic.network_closed:
                return
            datagrams: List[Any] = []
            if quic.quic is not None:
                if self._health.error is None:
                    quic.quic.close(error_code=_H3_NO_ERROR)
                # Also the CONNECTION_CLOSE of a connection the client closed with an error
                # (the server broke HTTP/3), should it not have gone out yet.
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

    def is_available(self) -> bool:
        """Whether it takes another request now: open, healthy, a stream slot to spare."""
        return self._refusal_locked() is None and self._slots.has_room()

    def _has_timed_out(self, now: float) -> bool:
        """Besides `MultiplexedCore`'s reasons: QUIC's idle timeout is near."""
        if MultiplexedCore._has_timed_out(self, now):
            return True
        if self._slots.in_flight == 0:
            # QUIC's idle timeout (the smaller of ours and the server's) is near: the server
            # may have forgotten the connection already.
            quic = self._quic.quic
            deadline = None if quic is None else idle_deadline(quic)
            if deadline is not None and now > deadline - self.IDLE_MARGIN:
                return True
        return False

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__} [{self.info()}]>"
