"""The writer role: putting on the wire what h2 has queued, for every stream of the connection.

Rules:
- All frames go through h2's outbound buffer, in the order h2 produced them. Whoever needs
  its frames sent calls `flush()`: if another request is writing, that one writes them too
  (it drains the buffer until it is empty), so the caller returns at once and nobody ever
  blocks on a write lock. Only the writer takes data out of h2's buffer.
- Nothing is written once the connection's health says so (`send_error`) or once the
  connection closed its network stream (`closed`); what is queued then is dropped, never to
  be sent (e.g. the GOAWAY of the close, or the WINDOW_UPDATE of a body read after it).
  One exception: the GOAWAY h2 queues when it finds a connection error in what the server
  sent is taken just before the connection fails, and written (`write_last_words`).
- A write the network refuses (typically: the server closed) stops writing for good
  (WRITE_FAILED) but not reading: the streams are woken to read what the server sent.
- A writer interrupted while holding the role (cancelled, timed out) must not leave a torn
  frame, nor frames nobody will send: on a stream with `resumable_writes` (asyncio, trio,
  in-memory TLS over either; async only) the cancelled request finishes the interrupted
  write and what is queued behind it, shielded, within its write timeout
  (`CANCELLED_WRITE_GRACE` without one); on any other stream the connection fails.
- When an interrupted write fails the connection, the frames queued behind it are lost, so
  a request reading meanwhile waits for an answer that cannot come: the writer ends that read,
  under async by closing the network stream, with threads by shutting its socket down
  (closing a socket another thread reads is not safe).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, Optional

from httpcore.base._async import checkpoint
from httpcore.base._drive import CALL, WRITE, Gen
from httpcore.base._exceptions import WriteError, WriteTimeout
from httpcore.base._multiplex import ConnectionHealth, renewed

from ._patches import H2Connection
from ._stream import AnyNetworkStream, StateLock, Stream

#: The longest the GOAWAY of a connection error may take to write (seconds).
LAST_WORDS_TIMEOUT = 1.0


def _no_op(*args: Any) -> None:
    """The sync side of async-only `CALL`s."""
    return None


async def _resume_write(stream: Any, data: bytes, timeout: Optional[float]) -> None:
    await stream.resume_write(data, timeout)


def _interrupted(exc: BaseException) -> Exception:
    """What the connection fails with when a write was interrupted by `exc`."""
    if isinstance(exc, Exception):
        return exc
    return WriteError("The connection was interrupted while writing.")


class FrameWriter:
    """The writer role of one connection (the rules at the top)."""

    __slots__ = (
        "_close_network_stream",
        "_grace",
        "_h2_state",
        "_health",
        "_lock",
        "_network_stream",
        "_resumable",
        "_streams",
        "_wake_all_locked",
        "closed",
        "writing",
    )

    def __init__(
        self,
        h2_state: H2Connection,
        network_stream: AnyNetworkStream,
        lock: StateLock,
        health: ConnectionHealth,
        streams: Dict[int, Stream],
        wake_all_locked: Callable[[], None],
        resumable: bool,
        grace: float,
        close_network_stream: Optional[Callable[[], Gen[None]]] = None,
    ) -> None:
        self._h2_state = h2_state
        self._network_stream = network_stream
        self._lock = lock
        self._health = health
        self._streams = streams  # the open streams (shared with the connection)
        self._wake_all_locked = wake_all_locked
        self._resumable = resumable  # a cancelled write can be finished
        self._grace = grace
        # After a failed interrupted write: ends a read in progress (see the rules above).
        self._close_network_stream = close_network_stream
        self.writing = False
        self.closed = False  # set by the connection, under the lock, when it closes the stream

    def flush(self, timeout: Optional[float], raise_error: bool = True) -> Gen[None]:
        """Write what h2 has queued; if another request is writing, it writes it for us."""
        lock = self._lock
        h2_state = self._h2_state
        with lock:
            error = self._health.send_error
            if error is not None:
                h2_state.data_to_send()  # never to be sent: do not let it pile up
                if raise_error:
                    raise renewed(error)
                return
            if self.closed:
                h2_state.data_to_send()
                return
            if self.writing or not h2_state.has_data_to_send():
                return
            self.writing = True
        network_stream = self._network_stream
        if self._resumable and len(self._streams) > 1:
            # Other tasks are likely ready to queue frames too (say, the next requests of those
            # whose responses the reader just delivered): let them, and write it all at once.
            # (Only where a cancellation here can be made good: others count on this flush.)
            try:
                yield (CALL, _no_op, checkpoint, ())
            except BaseException as exc:
                yield from self._after_cancelled_write(timeout, exc)
                raise
        try:
            with lock:
                data = h2_state.data_to_send()
            while True:
                yield (WRITE, network_stream, data, timeout)
                with lock:
                    data = h2_state.data_to_send()
                    if not data:
                        self.writing = False
                        return
        except WriteError as exc:
            self._write_refused(exc)
            raise
        except BaseException as exc:
            yield from self._after_cancelled_write(timeout, exc)
            raise

    def _write_refused(self, exc: WriteError) -> None:
        """The network refused a write (typically: the server closed the connection).
        Nothing more can be sent, but what the server sent before can still be read."""
        with self._lock:
            self.writing = False
            self._health.fail_writes(exc)
            self._h2_state.data_to_send()
            self._wake_all_locked()

    def take_last_words_locked(self) -> bytes:
        """What h2 queued on a connection error it found (its GOAWAY), for
        `write_last_words`; empty if another request is writing or the stream is closed.
        Nobody else writes after it: the connection fails under the same lock."""
        if self.writing or self.closed or self._health.send_error is not None:
            return b""
        return self._h2_state.data_to_send()

    def write_last_words(self, data: bytes, timeout: Optional[float]) -> Gen[None]:
        """Tell the server why the connection ends (RFC 9113 §5.4.1), if it still listens:
        within the write timeout, and never more than `LAST_WORDS_TIMEOUT`, since the error
        is what the caller waits for."""
        if timeout is None or timeout > LAST_WORDS_TIMEOUT:
            timeout = LAST_WORDS_TIMEOUT
        try:
            yield (WRITE, self._network_stream, data, timeout)
        except Exception:
            pass  # the connection has failed already

    def _after_cancelled_write(self, timeout: Optional[float], exc: BaseException) -> Gen[None]:
        """The writer was interrupted (cancelled, timed out) while holding the write role.

        Frames of other requests may be in what it was writing, or queued behind it, so the
        connection is only good if all of it still goes out, in order. A stream with
        `resumable_writes` kept what it had not sent: finish the job, shielded from the
        cancellation and within the write timeout (`CANCELLED_WRITE_GRACE` without one).
        Anything else may have sent part of a frame: the connection fails.
        """
        lock = self._lock
        h2_state = self._h2_state
        failure: Exception
        if isinstance(exc, Exception) or not self._resumable:
            failure = _interrupted(exc)
        else:
            budget = timeout if timeout is not None else self._grace
            deadline = time.monotonic() + budget
            try:
                while True:
                    with lock:
                        data = h2_state.data_to_send()
                    yield (CALL, _no_op, _resume_write, (self._network_stream, data, budget))
                    with lock:
                        if not h2_state.has_data_to_send():
                            self.writing = False
                            return
                    budget = deadline - time.monotonic()
                    if budget <= 0:
                        raise WriteTimeout("Timed out finishing an interrupted write.")
            except WriteError as refused:
                # The network refused the rest (the server closed, say, after a graceful
                # GOAWAY): a refused write like any other.
                self._write_refused(refused)
                return
            except BaseException as resume_exc:
                failure = _interrupted(resume_exc)
        with lock:
            self.writing = False
            self._health.fail(failure)
            self._wake_all_locked()
        if self._close_network_stream is not None:
            yield from self._close_network_stream()  # ends a read in progress (rules above)
