"""The HTTP/1.1 fast path for chunked response bodies (RFC 9112 §7.1), without h11.

Rules it keeps:
- It decodes a *subset* of what h11 accepts: size lines of 1-16 hex digits and nothing else
  (no extensions, no whitespace), each chunk's data followed by CRLF, and a last chunk with
  no trailer fields. At the first byte outside that subset it stops and hands what is left
  to h11 (`Handover`), at a point where h11, told the same head, reads the rest exactly as it
  would have read the whole body: h11's behaviour and exact errors are kept.
- A chunk's data goes to the caller as it arrives, without waiting for the chunk's end, as
  h11 gives it.
- The end of the connection mid-body is handed to h11 too, which raises its own error.
"""

from __future__ import annotations

import re
from typing import Generator, Optional, Protocol, Tuple, Union

from ._drive import READ
from ._ops import AnyNetworkStream, Op, Sent

# The subset: 1-16 hex digits (the size fits a machine word; h11 takes up to 20), then CRLF.
_SIZE_LINE = re.compile(rb"([0-9A-Fa-f]{1,16})\r\n")
# A size line longer than this without its CRLF is not the subset's.
_MAX_SIZE_LINE = 18

#: Where h11 takes over: the bytes to feed it after the response head; whether they start
#: with a made-up one-byte chunk whose data the caller must drop (used when the bytes after a
#: chunk's data are not its CRLF: h11 then checks them where it would have); and whether the
#: connection ended after them (h11 is told so, and says what it would have said).
Handover = Tuple[bytes, bool, bool]

#: A chunk with this data stands in for the one whose end h11 is handed.
STAND_IN_CHUNK = b"1\r\n\x00"

ChunkedGen = Generator[Union[Op, bytes], Sent, Optional[Handover]]


class Progress(Protocol):
    """Where a chunked body read records how it ended (a `ResponseState`)."""

    complete: bool  # the last chunk and the blank line after it arrived
    overrun: bool  # bytes arrived after that


def chunked_body(
    stream: AnyNetworkStream,
    buffered: bytes,
    timeout: Optional[float],
    read_size: int,
    max_read_size: int,
    progress: Progress,
) -> ChunkedGen:
    """Yield the body's data (and the READ operations that fetch it), starting with the bytes
    that came after the head (`buffered`). Returns None when the body is complete, or a
    `Handover` for h11."""
    # `buffer[pos:]` is what is not consumed yet: an offset rather than slicing off what was,
    # which would copy the rest of a large read once per chunk in it.
    buffer, pos = buffered, 0
    size = read_size

    def more() -> Generator[Op, Sent, bytes]:
        nonlocal size
        data: bytes = yield (READ, stream, size, timeout)
        if len(data) == size and size < max_read_size:
            size *= 2
        return data

    while True:
        # At the start of a size line.
        end = buffer.find(b"\r\n", pos, pos + _MAX_SIZE_LINE)
        while end < 0:
            if len(buffer) - pos >= _MAX_SIZE_LINE:
                return buffer[pos:], False, False
            data = yield from more()
            if not data:
                return buffer[pos:], False, True
            buffer, pos = buffer[pos:] + data, 0
            end = buffer.find(b"\r\n", 0, _MAX_SIZE_LINE)
        match = _SIZE_LINE.match(buffer, pos, end + 2)
        if match is None or match.end() != end + 2:
            return buffer[pos:], False, False
        left = int(match.group(1), 16)
        if not left:
            # The blank line that ends the body, or trailer fields (h11 reads those).
            after = end + 2
            while len(buffer) < after + 2 and buffer[after:] in (b"", b"\r"):
                data = yield from more()
                if not data:
                    return buffer[pos:], False, True
                buffer += data
            if buffer[after : after + 2] != b"\r\n":
                return buffer[pos:], False, False
            progress.complete = True
            progress.overrun = len(buffer) > after + 2
            return None
        pos = end + 2
        # The chunk's data, as it arrives.
        while True:
            have = len(buffer) - pos
            if have >= left:
                yield buffer if pos == 0 and have == left else buffer[pos : pos + left]
                pos += left
                break
            if have:
                left -= have
                yield buffer[pos:] if pos else buffer
            buffer, pos = (yield from more()), 0
            if not buffer:  # h11, told it is inside a chunk, has this much of it left
                return b"%x\r\n" % left, False, True
        # Its CRLF.
        while len(buffer) - pos < 2 and buffer[pos:] in (b"", b"\r"):
            data = yield from more()
            if not data:
                return STAND_IN_CHUNK + buffer[pos:], True, True
            buffer, pos = buffer[pos:] + data, 0
        if buffer[pos : pos + 2] != b"\r\n":
            return STAND_IN_CHUNK + buffer[pos:], True, False
        pos += 2
