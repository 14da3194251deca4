"""What one HTTP/1.1 exchange learns about its response (`ResponseState`): a new record for each
request, read and written by `HTTP11Core` (`_http11.py`), its h11 side (`_http11_h11.py`) and
the chunked decoder (`_http11_chunked.py`); closing it once is what keeps a late second close
away from the next request's exchange.
"""

from __future__ import annotations

from typing import Optional, Tuple

from ._models import Request


class ResponseState:
    """What one exchange learns about its response; a new one for each request."""

    __slots__ = (
        "buffered",
        "closed",
        "complete",
        "direct_length",
        "h11_behind",
        "head",
        "keep_alive",
        "overrun",
        "read_size",
        "started",
    )

    def __init__(self, read_size: int) -> None:
        # Whether any byte of the response arrived (a request lost unanswered has none).
        self.started = False
        # The direct body path (see `HTTP11Core._direct_body`): the Content-Length of a body
        # read straight from the socket (None: h11 reads the body), the body bytes that came
        # with the head, whether the body arrived whole, whether more than it arrived, and
        # whether both sides allow keep-alive.
        self.direct_length: Optional[int] = None
        self.buffered: Optional[bytes] = None
        self.complete = False
        self.overrun = False
        self.keep_alive = False
        # A request sent without h11: replayed into h11 if the response needs h11.
        self.h11_behind: Optional[Tuple[Request, bytes]] = None
        # The head of a chunked body the fast path reads (without its blank line): h11 is told
        # it if it takes the body over.
        self.head = b""
        # The size of the next body read through h11 (it grows while reads come back full).
        self.read_size = read_size
        # Whether the response was closed (`_response_closed`): a second close (a body error,
        # then its stream's close) must not touch the connection, which may by then serve the
        # next request.
        self.closed = False
