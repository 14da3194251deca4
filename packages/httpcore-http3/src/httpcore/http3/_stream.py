"""One request/response exchange on an HTTP/3 connection, and the waiter a request blocks on.

Rules:
- A `Stream` is changed only under the connection's state lock, never across a yield.
- The events of a stream (aioquic's HeadersReceived/DataReceived, and the reset) are consumed
  in order; a `failure` (the connection's, or a GOAWAY's verdict on this stream) is raised
  only once they are all consumed, so what the server sent before it is still delivered.
"""

from __future__ import annotations

import collections
from typing import Any, Deque, Optional

from httpcore.base._exceptions import ConnectionNotAvailable
from httpcore.base._multiplex import Waiter, renewed


class Reset:
    """The server reset the stream (RESET_STREAM) with `error_code`."""

    __slots__ = ("error_code",)

    def __init__(self, error_code: int) -> None:
        self.error_code = error_code

    def __repr__(self) -> str:
        return f"<StreamReset error_code={self.error_code:#x}>"


class Stream:
    """One request/response exchange on the connection."""

    __slots__ = (
        "closed",
        "events",
        "failure",
        "local_ended",
        "read_timeout",
        "remote_ended",
        "replayable",
        "reset",
        "response_started",
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
        self.local_ended = local_ended  # our FIN is queued
        self.replayable = replayable  # the request body can be sent again elsewhere
        self.response_started = False  # response headers received
        self.remote_ended = False  # the server's FIN received
        self.reset: Optional[Reset] = None  # the server reset the stream
        self.closed = False  # the response was closed: the stream is released
        #: aioquic events for this stream (and a final `Reset`), filed by the reader, in order.
        self.events: Deque[Any] = collections.deque()
        self.waiter: Optional[Waiter] = None
        self.failure: Optional[Exception] = None

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
            return events.popleft()
        if self.failure is not None:
            self.raise_failure()
        return None
