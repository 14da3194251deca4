"""Stream bookkeeping: one request/response exchange on the connection (the `Waiter` a
request blocks on is shared with HTTP/3, in `httpcore.base._multiplex`).

Rules:
- A `Stream` is changed only under the connection's state lock, never across a yield.
- The server's side of a stream goes AWAITING_HEADERS → RECEIVING → ENDED, or to RESET from
  any of them (a server may reset a stream after ending its response, to stop an upload);
  h2 checks the order of frames, this records what the requests need to know from it.
- The events of a stream (h2's, filed by the reader) are consumed in order; a `failure`
  (the connection's, or a GOAWAY's verdict on this stream) is raised only once they are
  all consumed, so what the server sent before it is still delivered.
"""

from __future__ import annotations

import collections
import enum
from typing import Any, ContextManager, Deque, Optional, Union

from httpcore.base._backends import AsyncNetworkStream, NetworkStream
from httpcore.base._exceptions import ConnectionNotAvailable
from httpcore.base._multiplex import Waiter, renewed

#: The connection's state lock (`SyncIO.state_lock()`: a threading.Lock; a no-op under async).
StateLock = ContextManager[object]
#: The connection's network stream, sync or async.
AnyNetworkStream = Union[NetworkStream, AsyncNetworkStream]


class Remote(enum.Enum):
    """The server's side of a stream."""

    AWAITING_HEADERS = "awaiting headers"
    RECEIVING = "receiving"  # response headers received
    ENDED = "ended"  # END_STREAM received
    RESET = "reset"  # RST_STREAM received


AWAITING_HEADERS = Remote.AWAITING_HEADERS
RECEIVING = Remote.RECEIVING
ENDED = Remote.ENDED
RESET = Remote.RESET


class Stream:
    """One request/response exchange on the connection."""

    __slots__ = (
        "closed",
        "events",
        "failure",
        "local_ended",
        "read_timeout",
        "remote",
        "replayable",
        "stream_id",
        "waiter",
        "wants_window",
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
        self.remote = AWAITING_HEADERS
        self.local_ended = local_ended  # we sent END_STREAM
        self.replayable = replayable  # the request body can be sent again elsewhere
        self.wants_window = False  # waiting for send flow-control window
        self.closed = False  # the response was closed: the stream is released
        #: h2 events for this stream, filed by the reader, in order.
        self.events: Deque[Any] = collections.deque()
        self.waiter: Optional[Waiter] = None
        self.failure: Optional[Exception] = None

    @property
    def response_started(self) -> bool:
        return self.remote is RECEIVING or self.remote is ENDED

    def raise_failure(self) -> None:
        """Raise the stream's failure (a fresh copy: it may be raised more than once)."""
        failure = self.failure
        assert failure is not None
        if type(failure) is ConnectionNotAvailable:
            raise ConnectionNotAvailable()
        raise renewed(failure)

    def next_event(self) -> Any:
        """The next event for this stream, None if there is none yet (a `_wait_for` check)."""
        events = self.events
        if events:
            return events.popleft()
        if self.failure is not None:
            self.raise_failure()
        return None
