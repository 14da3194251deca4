"""Received bytes into h2's frame objects, the two frames of a response built directly.

h2 (3.2.0 - 4.x) parses every received frame through hyperframe: a frame object whose
constructor builds a set of flag names, then a parse of its body through memoryviews. For a
small response (HEADERS, DATA) that is about a fifth of h2's cost of receiving it.

Rules:
- `IncomingFrames` stands in for h2's `FrameBuffer` on our client connections
  (`_patches.H2Connection`), with the same interface: `add_data`, `max_frame_size`, and
  iteration over whole frames in order.
- A DATA frame without padding, and a HEADERS frame that holds a whole header block without
  padding or priority, are built here, as hyperframe's own classes with the attributes its
  parsing gives them. Whether they look the same is checked once, at import, against frames
  hyperframe parsed; if not, every frame takes h2's path.
- Every other frame (SETTINGS, PING, GOAWAY, padded frames, header blocks that continue,
  frames on stream 0, frames of unknown types, frames too large) goes through an h2
  `FrameBuffer`, one whole frame at a time, so h2's checks and errors are its own. While a
  header block continues, every frame goes there.
- As in h2, a frame is handled only once all of it has arrived; one longer than
  `max_frame_size` is an error then.
"""

from __future__ import annotations

from typing import Any, Set

import h2.frame_buffer
from hyperframe.flags import Flags
from hyperframe.frame import DataFrame, Frame, HeadersFrame

from ._frames import DATA, END_HEADERS, END_STREAM, FRAME_HEAD, HEADERS, PADDED, PRIORITY

# Shared by the frames built here: hyperframe only reads a frame's set of valid flag names.
_DATA_FLAG_NAMES = {flag.name for flag in DataFrame.defined_flags}
_HEADERS_FLAG_NAMES = {flag.name for flag in HeadersFrame.defined_flags}


def _flags(valid: Set[str], names: Set[str]) -> Any:
    """A hyperframe `Flags` holding `names`, without building its set of valid names."""
    flags = Flags.__new__(Flags)
    flags._valid_flags = valid
    flags._flags = names
    return flags


def data_frame(stream_id: int, data: bytes, end_stream: bool) -> Any:
    """The DATA frame hyperframe would parse, without padding."""
    frame = DataFrame.__new__(DataFrame)
    frame.stream_id = stream_id
    frame.flags = _flags(_DATA_FLAG_NAMES, {"END_STREAM"} if end_stream else set())
    frame.body_len = len(data)
    frame.pad_length = 0
    frame.data = data
    return frame


def headers_frame(stream_id: int, block: bytes, end_stream: bool) -> Any:
    """The HEADERS frame hyperframe would parse, with END_HEADERS, without padding or
    priority."""
    frame = HeadersFrame.__new__(HeadersFrame)
    frame.stream_id = stream_id
    names = {"END_HEADERS", "END_STREAM"} if end_stream else {"END_HEADERS"}
    frame.flags = _flags(_HEADERS_FLAG_NAMES, names)
    frame.body_len = len(block)
    frame.pad_length = 0
    frame.depends_on = 0
    frame.stream_weight = 0
    frame.exclusive = False
    frame.data = block
    return frame


def _built_as_parsed() -> bool:
    """Whether the frames built here have the attributes of the ones hyperframe parses."""
    cases = [(DATA, END_STREAM, data_frame), (HEADERS, END_HEADERS, headers_frame)]
    try:
        for kind, flags, build in cases:
            head = FRAME_HEAD.pack(0, 3, kind, flags, 1)
            parsed, _ = Frame.parse_frame_header(memoryview(head))
            parsed.parse_body(memoryview(b"abc"))
            built = build(1, b"abc", bool(flags & END_STREAM))
            if type(built) is not type(parsed) or vars(built).keys() != vars(parsed).keys():
                return False
            if vars(built.flags) != vars(parsed.flags) or set(built.flags) != set(parsed.flags):
                return False
            for name, value in vars(parsed).items():
                if name != "flags" and getattr(built, name) != value:
                    return False
    except Exception:  # a layout this module does not know: h2's path for every frame
        return False
    return True


#: Whether `IncomingFrames` builds DATA and HEADERS frames itself.
BUILDS_FRAMES = _built_as_parsed()


class IncomingFrames:
    """h2's `FrameBuffer` for a client connection, building the frames of a response
    directly (the rules at the top)."""

    def __init__(self) -> None:
        #: The largest frame accepted; h2 sets it before each use.
        self.max_frame_size = 0
        self._buffer = bytearray()
        self._h2_buffer = h2.frame_buffer.FrameBuffer(server=False)
        self._in_block = False  # h2's buffer holds the start of a header block

    def add_data(self, data: Any) -> None:
        self._buffer += data

    def __iter__(self) -> IncomingFrames:
        return self

    def __next__(self) -> Any:
        buffer = self._buffer
        while True:
            if len(buffer) < 9:
                raise StopIteration
            high, low, kind, flags, stream_id = FRAME_HEAD.unpack_from(buffer)
            length = (high << 16) | low
            end = 9 + length
            if len(buffer) < end:
                raise StopIteration
            stream_id &= 0x7FFFFFFF
            if (
                BUILDS_FRAMES
                and stream_id
                and not self._in_block
                and length <= self.max_frame_size
                and not flags & PADDED
            ):
                if kind == DATA:
                    frame = data_frame(stream_id, bytes(buffer[9:end]), bool(flags & END_STREAM))
                    del buffer[:end]
                    return frame
                if kind == HEADERS and flags & END_HEADERS and not flags & PRIORITY:
                    block = bytes(buffer[9:end])
                    frame = headers_frame(stream_id, block, bool(flags & END_STREAM))
                    del buffer[:end]
                    return frame
            # h2's own parsing, one whole frame at a time: its buffer is empty between frames,
            # except for a header block still to be continued.
            h2_buffer = self._h2_buffer
            h2_buffer.max_frame_size = self.max_frame_size
            h2_buffer.add_data(bytes(buffer[:end]))
            del buffer[:end]
            try:
                frame = next(h2_buffer)
            except StopIteration:
                self._in_block = True  # part of a header block, kept by h2 until it ends
                continue
            self._in_block = False
            return frame
