"""The reader role: reading from the socket and filing h2's events with their streams.

There is no background task: whoever needs something from the network reads it.

Rules:
- At most one request at a time is the *reader*. It reads, feeds h2, and files each event
  with the stream it belongs to, waking that stream's request; every other request that
  needs data waits on its own event. When the reader has what it needs it hands the role to
  the first request still waiting, so nobody waits behind a read that is not for them.
- A request never waits for the server while frames the server waits for sit in h2's
  buffer: the reader flushes before it reads, and after (acknowledgements, window updates).
- A read timeout fails only the request that read, but retires the connection: silent for a
  whole read timeout, it takes no new request and closes once the open ones are done. Any
  other read error, the server closing, or a protocol error fails the connection (every
  stream gets the error).
- Connection-level events change the connection: the server's SETTINGS set the stream limit
  (`StreamSlots.set_limit`), a GOAWAY makes it DRAINING and decides, per stream, whether it
  may complete, fails, or may be retried elsewhere (RFC 9113 §6.8).
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Sequence, TypeVar

import h2.events
import h2.exceptions
import h2.settings

from httpcore.base._drive import READ, Flavour, Gen
from httpcore.base._exceptions import (
    ConnectionNotAvailable,
    RemoteProtocolError,
    TimeoutException,
)
from httpcore.base._models import Request
from httpcore.base._multiplex import ConnectionHealth, StreamSlots, Waiter, renewed
from httpcore.base._multiplex_core import ReaderRole
from httpcore.base._trace import is_traced, traced

from ._patches import H2Connection
from ._stream import ENDED, RECEIVING, RESET, AnyNetworkStream, StateLock, Stream
from ._writer import FrameWriter

logger = logging.getLogger("httpcore.http2")

T = TypeVar("T")

_ResponseReceived = h2.events.ResponseReceived
_DataReceived = h2.events.DataReceived
_StreamEnded = h2.events.StreamEnded
_StreamReset = h2.events.StreamReset
_WindowUpdated = h2.events.WindowUpdated
_RemoteSettingsChanged = h2.events.RemoteSettingsChanged
_ConnectionTerminated = h2.events.ConnectionTerminated
_INITIAL_WINDOW_SIZE = h2.settings.SettingCodes.INITIAL_WINDOW_SIZE


def remote_failure(exc: h2.exceptions.ProtocolError) -> RemoteProtocolError:
    """The error for a protocol error in what the server sent.

    h2's errors about a stream carry only its number (`str()` is `"3"`): those get a message
    that says what happened.
    """
    if isinstance(exc, h2.exceptions.StreamClosedError):
        return RemoteProtocolError(f"Received a frame for stream {exc.stream_id} after it closed")
    if isinstance(exc, h2.exceptions.NoSuchStreamError):
        return RemoteProtocolError(
            f"Received a frame for stream {exc.stream_id}, which the client never opened"
        )
    return RemoteProtocolError(exc)


def _returning(value: T) -> Gen[T]:
    """A generator without operations that returns `value` (for a traced step)."""
    if False:  # pragma: no cover
        yield ()
    return value


class FrameReader(ReaderRole[Stream, Request]):
    """The reader role of one connection, and the streams it files events with."""

    __slots__ = ("_h2_state", "_network_stream", "_writer", "read_size")

    def __init__(
        self,
        h2_state: H2Connection,
        network_stream: AnyNetworkStream,
        io: Flavour,
        lock: StateLock,
        health: ConnectionHealth,
        slots: StreamSlots[Waiter],
        streams: Dict[int, Stream],
        read_size: int,
    ) -> None:
        self._h2_state = h2_state
        self._network_stream = network_stream
        self._io = io
        self._lock = lock
        self._health = health
        self._slots = slots
        self._writer: Optional[FrameWriter] = None  # set by `attach()`
        self.streams = streams  # the open streams, by id
        self._waiting: Dict[Stream, None] = {}  # streams waiting for the reader, in order
        self._reader: Optional[Stream] = None
        self.read_size = read_size

    def attach(self, writer: FrameWriter) -> None:
        self._writer = writer

    # -- waiting for something from the server (`ReaderRole.wait_for`) ---------------------

    def _wait_time(self, stream: Stream, request: Request) -> Optional[float]:
        return stream.read_timeout  # each wait, as each read, gets the whole read timeout

    def _wake_window_waiters_locked(self) -> None:
        for stream in list(self._waiting):
            if stream.wants_window:
                self._wake_locked(stream)

    def fail_locked(self, exc: BaseException) -> None:
        self._health.fail(exc)
        self.wake_all_locked()

    # -- reading ----------------------------------------------------------------------------

    def _read_once(self, stream: Stream, request: Request) -> Gen[None]:
        writer = self._writer
        assert writer is not None
        if self._h2_state.has_data_to_send() and not writer.writing:
            # Never wait for the server while frames it waits for sit in the buffer (left by
            # a writer that was cancelled, for instance).
            try:
                yield from writer.flush(stream.write_timeout, raise_error=False)
            except Exception:
                pass
        try:
            data = yield (READ, self._network_stream, self.read_size, stream.read_timeout)
        except TimeoutException:
            # Only this request fails; the others go on. But nothing came for a whole read
            # timeout: the connection takes no new request (it closes once they are done).
            with self._lock:
                self._health.retire()
            raise
        except Exception as exc:
            with self._lock:
                failure = self._health.error
                self.fail_locked(exc)
            if failure is not None:
                # The connection failed while this read waited, and was closed to end it.
                raise renewed(failure) from exc
            raise
        if not data:
            disconnected = RemoteProtocolError("Server disconnected")
            with self._lock:
                failure = self._health.error
                self.fail_locked(disconnected)
            if failure is not None:
                # The connection failed while this read waited, and was shut down to end it.
                raise renewed(failure) from disconnected
            raise disconnected
        failed: Optional[h2.exceptions.ProtocolError] = None
        with self._lock:
            try:
                events = self._h2_state.receive_data(data)
            except h2.exceptions.ProtocolError as exc:
                failed = exc
                goaway = writer.take_last_words_locked()
                self.fail_locked(remote_failure(exc))
            else:
                settings = self._dispatch_locked(events)
        if failed is not None:
            if goaway:
                yield from writer.write_last_words(goaway, stream.write_timeout)
            raise remote_failure(failed) from failed
        if settings is not None and is_traced(logger, request):
            yield from traced(logger, "receive_remote_settings", request, {}, _returning(settings))
        # Settings and PING acknowledgements, window updates, resets: out they go. A write
        # failure is remembered by the connection and reported to whoever needs it.
        try:
            yield from writer.flush(stream.write_timeout, raise_error=False)
        except Exception:
            pass

    def _dispatch_locked(self, events: List[Any]) -> Any:
        """File each event with its stream; returns the last RemoteSettingsChanged, if any."""
        streams = self.streams
        settings = None
        for event in events:
            kind = type(event)
            if kind is _DataReceived or kind is _ResponseReceived or kind is _StreamEnded:
                stream = streams.get(event.stream_id)
                if stream is None:
                    if kind is _DataReceived and event.flow_controlled_length:
                        # An abandoned stream: give the connection window back.
                        self.acknowledge_locked(event.flow_controlled_length, event.stream_id)
                    continue
                if kind is _ResponseReceived:
                    stream.remote = RECEIVING
                elif kind is _StreamEnded:
                    stream.remote = ENDED
                stream.events.append(event)
                if stream.waiter is not None:
                    self._wake_locked(stream)
            elif kind is _StreamReset:
                stream = streams.get(event.stream_id)
                if stream is not None:
                    stream.remote = RESET
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
                self._wake_granted(
                    self._slots.set_limit(
                        min(
                            h2_state.remote_settings.max_concurrent_streams,
                            h2_state.local_settings.max_concurrent_streams,
                        )
                    )
                )
                if _INITIAL_WINDOW_SIZE in event.changed_settings:
                    self._wake_window_waiters_locked()
            elif kind is _ConnectionTerminated:
                self._goaway_locked(event)
        return settings

    @staticmethod
    def _wake_granted(waiters: Sequence[Waiter]) -> None:
        for waiter in waiters:
            waiter.set()

    def _goaway_locked(self, event: Any) -> None:
        last_stream_id = event.last_stream_id
        self._health.drain(event, last_stream_id)
        graceful = event.error_code == 0
        for stream in self.streams.values():
            if stream.stream_id > last_stream_id:
                # Never processed by the server: safe to retry elsewhere, unless part of a
                # response or of a one-shot request body is already gone.
                if stream.response_started:
                    stream.failure = RemoteProtocolError(event)
                elif not stream.replayable:
                    # The event alone reads as the server's failure: say that it never
                    # processed the request, and why the pool cannot send it again.
                    stream.failure = RemoteProtocolError(
                        f"{event}: the server did not process stream {stream.stream_id}, and "
                        "the request was not sent again: its body can be read only once"
                    )
                else:
                    stream.failure = ConnectionNotAvailable()
            elif not graceful:
                stream.failure = RemoteProtocolError(event)
        self.wake_all_locked()

    def acknowledge_locked(self, size: int, stream_id: int) -> None:
        """Give `size` bytes of flow-control window back to the server."""
        if self._health.error is None:
            try:
                self._h2_state.acknowledge_received_data(size, stream_id)
            except h2.exceptions.ProtocolError:  # pragma: no cover - connection closed
                pass
