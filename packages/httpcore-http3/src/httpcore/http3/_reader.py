"""The QUIC side of a connection: the handshake, sending aioquic's datagrams, the reader role
(reading datagrams, firing aioquic's timers, filing HTTP/3 events with their streams).

There is no background task: whoever needs something from the network reads it.

Rules:
- Every call into aioquic is made under the state lock (it is not thread-safe); datagrams
  are taken from it under the lock and written after, by whoever changed its state.
- At most one request at a time is the *reader*. It waits for a datagram until aioquic's
  next timer (`get_timer()`) or its own read deadline, whichever is first: a datagram goes
  to `receive_datagram()`, a due timer to `handle_timer()`; then the events are filed and
  what aioquic wants to send is sent. A wait is capped at `MAX_WAIT`, so that a timer set
  meanwhile by another request (a retransmission) is not late by more than that.
- A reader that has heard nothing from the server for `PROBE_AFTER` sends it a PING, and again
  each time the silence doubles (`_probe`): a server whose loss recovery stalled resends once
  it hears from us. Idle connections have no reader, so they send none.
- A read deadline that passes concerns only the request that read (`ReadTimeout`); a
  socket error or the connection closing fails the connection (every stream gets it).
- Connection-level events change the connection: the handshake sets the stream limit
  (`StreamSlots.set_limit`), a GOAWAY makes it DRAINING and decides, per stream, whether it
  may complete, or may be retried elsewhere (RFC 9114 §5.2).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Dict, Optional, Sequence, Type

from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic import events as quic_events
from aioquic.quic.connection import QuicConnection

from httpcore.base._drive import READ, SLEEP, WRITE, Flavour, Gen
from httpcore.base._exceptions import (
    ConnectError,
    ConnectionNotAvailable,
    ConnectTimeout,
    ReadTimeout,
    RemoteProtocolError,
)
from httpcore.base._multiplex import ConnectionHealth, StreamSlots, Waiter
from httpcore.base._multiplex_core import ReaderRole
from httpcore.base._udp import MAX_DATAGRAM_SIZE

from ._h3conn import ClientH3Connection, MalformedReceived
from ._quic import (
    ERROR_NAMES,
    STREAM_WINDOW,
    ControlStreamError,
    GoawayWatcher,
    close_event,
    closed_here,
    open_receive_window,
    pace_stream,
    peer_stream_limit,
    unpace_stream,
    unsent_bytes,
)
from ._stream import Reset, Stream

logger = logging.getLogger("httpcore.http3")

_StreamDataReceived = quic_events.StreamDataReceived
_StreamReset = quic_events.StreamReset
_HandshakeCompleted = quic_events.HandshakeCompleted
_ConnectionTerminated = quic_events.ConnectionTerminated

#: The longest a reader waits before looking at aioquic's timer again (seconds).
MAX_WAIT = 0.05
#: The most datagrams taken in before aioquic is asked what to send.
BATCH = 32
#: Unread response bytes after which a stream's receive window follows the caller's reads.
PACE_AFTER = STREAM_WINDOW // 4
#: Silence from the server, while a request waits, after which it is sent a PING (seconds);
#: the next PING waits for twice the silence of the one before.
PROBE_AFTER = 1.0


def deadline_after(timeout: Optional[float]) -> Optional[float]:
    """When a wait of `timeout` seconds from now ends (None: never)."""
    return None if timeout is None else time.monotonic() + timeout


class QuicReader(ReaderRole[Stream, Optional[float]]):
    """The QUIC endpoint of one connection and its reader role (rules at the top)."""

    __slots__ = (
        "address",
        "flush_pending",
        "goaway",
        "h3",
        "handshake_done",
        "heard_at",
        "network_closed",
        "probed_silence",
        "quic",
        "udp",
        "unsent",
    )

    def __init__(
        self,
        io: Flavour,
        lock: Any,
        health: ConnectionHealth,
        slots: StreamSlots[Waiter],
        streams: Dict[int, Stream],
    ) -> None:
        self._io = io
        self._lock = lock
        self._health = health
        self._slots = slots
        self.streams = streams
        self.udp: Any = None
        self.quic: Optional[QuicConnection] = None
        self.h3: Optional[ClientH3Connection] = None
        self.address: Any = None
        self.goaway = GoawayWatcher()
        self.handshake_done = False
        self.network_closed = False
        #: A flush was interrupted (error, cancellation): datagrams may wait in aioquic.
        self.unsent = False
        #: A request is about to flush what others queue meanwhile (`send_soon`).
        self.flush_pending = False
        #: When the last datagram came, and the silence at the last probe (PING) since.
        self.heard_at = 0.0
        self.probed_silence = 0.0
        self._reader: Optional[object] = None  # the stream (or handshake) now reading
        self._waiting: Dict[Stream, None] = {}  # streams waiting for the reader, in order

    # -- the handshake ----------------------------------------------------------------------

    def handshake(self, udp: Any, quic: QuicConnection, timeout: Optional[float]) -> Gen[None]:
        """Run the QUIC + TLS handshake on `udp`; ConnectError/ConnectTimeout if it fails."""
        self.udp = udp
        self.address = udp.get_extra_info("server_addr") or ("0.0.0.0", 0)
        with self._lock:
            quic.connect(self.address, now=time.monotonic())
            self.quic = quic
            self.h3 = ClientH3Connection(quic)
            self.unsent = True  # the Initial packet
        deadline = None if timeout is None else time.monotonic() + timeout
        token = object()
        self._reader = token
        try:
            while not self.handshake_done:
                with self._lock:
                    error = self._health.error
                if error is not None:
                    raise ConnectError(str(error)) from error
                yield from self.read_once(deadline, ConnectTimeout)
        except ConnectTimeout as exc:
            with self._lock:
                self.fail_locked(ConnectTimeout(str(exc)))
            raise
        except ConnectError:
            raise
        except Exception as exc:
            error = ConnectError(str(exc) or type(exc).__name__)
            with self._lock:
                self.fail_locked(error)
            raise error from exc
        finally:
            self._reader = None
        with self._lock:
            self._wake_all_granted(self._slots.set_limit(peer_stream_limit(quic)))

    # -- sending ----------------------------------------------------------------------------

    def flush(self, timeout: Optional[float]) -> Gen[None]:
        """Send what aioquic has to send. A socket error fails the connection."""
        with self._lock:
            quic = self.quic
            if quic is None or self.network_closed:
                return
            datagrams = quic.datagrams_to_send(now=time.monotonic())
            self.unsent = True
            self.flush_pending = False
        udp = self.udp
        for data, _address in datagrams:
            try:
                yield (WRITE, udp, data, timeout)
            except Exception as exc:
                with self._lock:
                    self.fail_locked(exc)
                raise
        self.unsent = False

    def send_soon(self, backend: Any, timeout: Optional[float]) -> Gen[None]:
        """Send what was queued, after letting the other requests in flight queue theirs.

        Requests started together (asyncio tasks, threads) then share datagrams and one pass
        of aioquic's packet builder, whose cost grows with the number of open streams, instead
        of each paying one. A request that finds a flush pending leaves its frames to it."""
        with self._lock:
            if self.flush_pending:
                return
            alone = self._slots.in_flight <= 1
            if not alone:
                self.flush_pending = True
                self.unsent = True  # should the flusher be cancelled, the reader sends them
        if not alone:
            try:
                yield (SLEEP, backend, 0)
            except BaseException:
                with self._lock:
                    self.flush_pending = False
                raise
        yield from self.flush(timeout)

    # -- waiting for something from the server ----------------------------------------------

    # `ReaderRole.wait_for` waits with a deadline (`deadline_after()`): a read timeout bounds the
    # whole wait, since datagrams for other streams (and ACKs) arrive meanwhile.

    def _read_once(self, stream: Stream, deadline: Optional[float]) -> Gen[None]:
        return self.read_once(deadline, ReadTimeout)

    def _wait_time(self, stream: Stream, deadline: Optional[float]) -> Optional[float]:
        return None if deadline is None else max(0.0, deadline - time.monotonic())

    def read_once(self, deadline: Optional[float], timeout_error: Type[Exception]) -> Gen[None]:
        """Wait for one datagram, or until aioquic's timer (handled) or `deadline` (raising
        `timeout_error`)."""
        if self.unsent and not self.flush_pending:
            # Never wait for the server while what it waits for sits in aioquic (asking
            # aioquic costs a pass over every stream, so only after an interrupted flush, or
            # a window update; a request about to flush for everybody, `send_soon`, will).
            yield from self.flush(None)
        lock = self._lock
        with lock:
            quic = self.quic
            assert quic is not None
            timer = quic.get_timer()
        now = time.monotonic()
        wait = MAX_WAIT
        if timer is not None and timer - now < wait:
            wait = max(0.0, timer - now)
        if deadline is not None and deadline - now < wait:
            wait = max(0.0, deadline - now)
        try:
            data = yield (READ, self.udp, MAX_DATAGRAM_SIZE, wait)
        except ReadTimeout:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise timeout_error("timed out") from None
            if timer is not None and now >= timer:
                with lock:
                    quic.handle_timer(now=now)
                    self._dispatch_locked()
                yield from self.flush(None)
            elif self.handshake_done and now - self.heard_at >= PROBE_AFTER:
                yield from self._probe(now)
            return
        except Exception as exc:
            with lock:
                self.fail_locked(exc)
            raise
        udp = self.udp
        address = self.address
        self.heard_at = now = time.monotonic()
        self.probed_silence = 0.0
        with lock:
            quic.receive_datagram(data, address, now=now)
        # The datagrams already there are taken in too before answering: one pass of
        # aioquic's packet builder (and one ACK) per batch instead of per datagram.
        for _ in range(BATCH - 1):
            try:
                data = yield (READ, udp, MAX_DATAGRAM_SIZE, 0.0)
            except ReadTimeout:
                break
            except Exception as exc:
                with lock:
                    self.fail_locked(exc)
                raise
            with lock:
                quic.receive_datagram(data, address, now=time.monotonic())
        with lock:
            self._dispatch_locked()
            due = self._send_due_locked(quic)
        if due:
            yield from self.flush(None)

    def _probe(self, now: float) -> Gen[None]:
        """A request waits and the server has said nothing for a while: send it a PING, which it
        must acknowledge. Were the server's loss recovery stalled (its retransmission timer
        lost or set late), the lost end of a response would otherwise never come, since we
        have nothing else to send: a datagram from us makes it look at its timers again."""
        silence = now - self.heard_at
        if silence < 2 * self.probed_silence:
            return
        self.probed_silence = silence
        with self._lock:
            quic = self.quic
            if quic is None or self.network_closed:
                return
            quic.send_ping(0)
        yield from self.flush(None)

    def _send_due_locked(self, quic: QuicConnection) -> bool:
        """After datagrams came in: whether to ask aioquic what to send now. A pass of its
        packet builder costs as much as the streams open, and most find nothing to send: the
        ACK of what came in is due 1 ms later (aioquic's ACK delay), with its timer. So not
        unless aioquic's timer is due, the handshake runs, or a request body is on its way
        (an ACK from the server, which sets no timer, may have opened room for more of it)."""
        if not self.handshake_done or self.network_closed:
            return True
        timer = quic.get_timer()
        if timer is not None and timer <= time.monotonic():
            return True
        for stream in self.streams.values():
            if stream.sending:
                if not stream.local_ended or unsent_bytes(quic, stream.stream_id):
                    return True
                stream.sending = False  # all of the body is acknowledged
        return False

    # -- filing events ------------------------------------------------------------------------

    def _dispatch_locked(self) -> None:
        quic = self.quic
        h3 = self.h3
        assert quic is not None and h3 is not None
        streams = self.streams
        event: Any
        h3_event: Any
        while True:
            event = quic.next_event()
            if event is None:
                break
            kind = type(event)
            if kind is _StreamDataReceived:
                if event.stream_id & 3 == 3:  # a server unidirectional stream: GOAWAY?
                    try:
                        goaway = self.goaway.feed(event.stream_id, event.data)
                    except ControlStreamError as exc:
                        name = ERROR_NAMES[exc.code]
                        quic.close(error_code=exc.code, reason_phrase=str(exc))
                        self.fail_locked(RemoteProtocolError(f"{exc} ({name})"))
                        return
                    if goaway is not None:
                        self._goaway_locked(goaway)
            elif kind is _StreamReset:
                stream = streams.get(event.stream_id)
                if stream is not None and stream.reset is None:
                    stream.reset = reset = Reset(event.error_code)
                    stream.events.append(reset)
                    self._wake_locked(stream)
            elif kind is _HandshakeCompleted:
                self.handshake_done = True
            elif kind is _ConnectionTerminated:
                self._terminated_locked(event)
                return
            for h3_event in h3.handle_event(event):
                h3_kind = type(h3_event)
                if h3_kind is DataReceived or h3_kind is HeadersReceived:
                    stream = streams.get(h3_event.stream_id)
                    if stream is None:
                        continue
                    if h3_kind is HeadersReceived:
                        stream.response_started = True
                    else:
                        stream.received += len(h3_event.data)
                        if not stream.paced and stream.received - stream.consumed > PACE_AFTER:
                            # The caller lags behind: its window now follows its reads.
                            stream.paced = True
                            pace_stream(quic, stream.stream_id)
                    if h3_event.stream_ended:
                        stream.remote_ended = True
                    stream.events.append(h3_event)
                    if stream.waiter is not None:
                        self._wake_locked(stream)
                elif h3_kind is MalformedReceived:
                    stream = streams.get(h3_event.stream_id)
                    if stream is not None:
                        stream.malformed = True
                        stream.events.append(h3_event)
                        self._wake_locked(stream)
        terminated = close_event(quic)
        if terminated is not None and self._health.error is None:
            self._terminated_locked(terminated)

    def _terminated_locked(self, event: Any) -> None:
        """The connection closed (by the server, an idle timeout or a protocol error)."""
        code = event.error_code
        said = f"error code {code:#x}"
        if code in ERROR_NAMES:
            said += f" ({ERROR_NAMES[code]})"
        if event.reason_phrase:
            said += f", {event.reason_phrase!r}"
        if code not in (0, 0x100) and self.quic is not None and closed_here(self.quic):
            said += "; closed by the client, as the server broke the protocol"
        if self.handshake_done:
            error: Exception = RemoteProtocolError(f"QUIC connection closed: {said}")
        else:
            error = ConnectError(f"QUIC handshake failed: {said}")
        if event.error_code in (0, 0x100) and self.handshake_done:  # NO_ERROR, H3_NO_ERROR
            # A graceful close: requests not answered were not processed.
            for stream in self.streams.values():
                if stream.failure is None and not stream.response_started and stream.replayable:
                    stream.failure = ConnectionNotAvailable()
        self.fail_locked(error)

    def _goaway_locked(self, last_stream_id: int) -> None:
        # The server processes streams below `last_stream_id`; the others may go elsewhere.
        self._health.drain(last_stream_id, last_stream_id)
        for stream in self.streams.values():
            if stream.stream_id >= last_stream_id and stream.failure is None:
                if stream.response_started:
                    stream.failure = RemoteProtocolError(
                        f"GOAWAY: stream {stream.stream_id} not processed"
                    )
                elif not stream.replayable:
                    stream.failure = RemoteProtocolError(
                        f"GOAWAY: stream {stream.stream_id} not processed, and the request was"
                        " not sent again: its body can be read only once"
                    )
                else:
                    stream.failure = ConnectionNotAvailable()
        self.wake_all_locked()

    # -- waking -----------------------------------------------------------------------------

    @staticmethod
    def _wake_all_granted(waiters: Sequence[Waiter]) -> None:
        for waiter in waiters:
            waiter.set()

    def forget_locked(self, stream: Stream) -> None:
        """The stream is released: no more events are filed with it, nothing to pace."""
        ReaderRole.forget_locked(self, stream)
        if stream.paced and self.quic is not None:
            unpace_stream(self.quic, stream.stream_id)

    def open_window_locked(self, stream: Stream) -> None:
        """The caller read more of a paced stream: let the server send more."""
        quic = self.quic
        if quic is not None and open_receive_window(
            quic, stream.stream_id, stream.consumed, STREAM_WINDOW
        ):
            self.unsent = True  # the reader sends the MAX_STREAM_DATA before it waits

    def fail_locked(self, exc: BaseException) -> None:
        self._health.fail(exc)
        for stream in self.streams.values():
            if stream.failure is None:
                stream.failure = exc if isinstance(exc, Exception) else RuntimeError(exc)
        self.wake_all_locked()
