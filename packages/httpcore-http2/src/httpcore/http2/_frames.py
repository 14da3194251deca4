"""The few facts of HTTP/2's framing that this package writes and reads itself (RFC 9113
§4.1, §6): frame types, flags and the 9-byte frame header. Everything else about frames is
h2's and hyperframe's."""

from __future__ import annotations

import struct

# Frame types.
DATA, HEADERS, WINDOW_UPDATE, CONTINUATION = 0x0, 0x1, 0x8, 0x9
# Flags.
END_STREAM, END_HEADERS, PADDED, PRIORITY = 0x1, 0x4, 0x8, 0x20

#: A frame header: the 24-bit length as 8 + 16 bits, type, flags, stream id (with the
#: reserved bit).
FRAME_HEAD = struct.Struct(">BHBBL")


def frame_head(length: int, kind: int, flags: int, stream_id: int) -> bytes:
    """A frame's 9-byte header."""
    return FRAME_HEAD.pack(length >> 16, length & 0xFFFF, kind, flags, stream_id)
