"""Stream bookkeeping: one request/response exchange on the connection (the part shared
with HTTP/3 is `StreamBase` in `httpcore.base._multiplex_core`, the `Waiter` a request
blocks on is in `httpcore.base._multiplex`).

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

import enum
from typing import Union

from httpcore.base._backends import AsyncNetworkStream, NetworkStream
from httpcore.base._multiplex_core import StateLock as StateLock  # re-exported
from httpcore.base._multiplex_core import StreamBase

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


class Stream(StreamBase):
    """One request/response exchange on the connection (what HTTP/2 adds to `StreamBase`)."""

    __slots__ = ("remote", "wants_window")

    def _start(self) -> None:
        self.remote = AWAITING_HEADERS
        self.wants_window = False  # waiting for send flow-control window

    @property
    def response_started(self) -> bool:
        return self.remote is RECEIVING or self.remote is ENDED
