"""One request/response exchange on an HTTP/3 connection: what HTTP/3 adds to the stream
record shared with HTTP/2 (`httpcore.base._multiplex_core.StreamBase`, whose rules hold).
"""

from __future__ import annotations

from typing import Optional

from httpcore.base._multiplex_core import StreamBase


class Reset:
    """The server reset the stream (RESET_STREAM) with `error_code`."""

    __slots__ = ("error_code",)

    def __init__(self, error_code: int) -> None:
        self.error_code = error_code

    def __repr__(self) -> str:
        return f"<StreamReset error_code={self.error_code:#x}>"


class Stream(StreamBase):
    """One request/response exchange on the connection (what HTTP/3 adds to `StreamBase`;
    its events are aioquic's HeadersReceived/DataReceived and a final `Reset` or
    `_h3conn.MalformedReceived`)."""

    __slots__ = (
        "consumed",
        "malformed",
        "paced",
        "received",
        "remote_ended",
        "reset",
        "response_started",
        "sending",
    )

    def _start(self) -> None:
        self.response_started = False  # response headers received
        self.remote_ended = False  # the server's FIN received
        self.reset: Optional[Reset] = None  # the server reset the stream
        self.malformed = False  # the response broke HTTP/3's rules (RFC 9114 §4.1.2)
        self.received = 0  # response body bytes filed by the reader
        self.consumed = 0  # response body bytes handed to the caller
        self.paced = False  # the receive window follows `consumed` (see `_quic.pace_stream`)
        #: A request body is being sent, or not all acknowledged yet.
        self.sending = not self.local_ended
