"""Where this package departs from h2's own behaviour, with the reason beside each departure.

Everything that subclasses h2, replaces one of its parts or reads one of its private
attributes is here (and, for received frames, in `_incoming.py`), and nowhere else, so that
an h2 upgrade is checked in one place (the `h2-oldest` test environment runs h2 3.2.0; 4.x
is the default). `new_h2_connection()` builds the client connection the rest of the package
uses.
"""

from __future__ import annotations

import struct
from typing import Any, Dict, List, Tuple

import h2.config
import h2.connection
import h2.exceptions
import h2.settings
import h2.stream
import h2.utilities
import hpack
from h2.errors import ErrorCodes
from hyperframe.frame import RstStreamFrame

from ._frames import (
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    HEADERS,
    WINDOW_UPDATE,
    frame_head,
)
from ._incoming import IncomingFrames

_SettingCodes = h2.settings.SettingCodes

#: h2's connection state machine once it is closed for good (after a protocol error or
#: after we closed it); nothing is sent or received any more.
H2_CLOSED = h2.connection.ConnectionState.CLOSED

CONFIG = h2.config.H2Configuration(
    client_side=True,
    validate_inbound_headers=False,
    # The request headers are built already lower-cased and valid for HTTP/2 (`_headers.py`).
    validate_outbound_headers=False,
    normalize_outbound_headers=False,
)


class GracefulStateMachine(h2.connection.H2ConnectionStateMachine):  # type: ignore[misc,unused-ignore]
    """h2's connection state machine, except that a received GOAWAY keeps the connection open.

    RFC 9113 §6.8: streams up to the GOAWAY's last-stream-id still complete. h2 would refuse
    every frame after a GOAWAY; here the connection keeps processing them, and the connection
    opens no new stream once a GOAWAY was seen (its health is DRAINING).
    """

    _transitions = dict(h2.connection.H2ConnectionStateMachine._transitions)
    _transitions[
        (h2.connection.ConnectionState.CLIENT_OPEN, h2.connection.ConnectionInputs.RECV_GOAWAY)
    ] = (None, h2.connection.ConnectionState.CLIENT_OPEN)


class RepeatDecoder(hpack.Decoder):  # type: ignore[misc,unused-ignore]
    """An HPACK decoder that remembers the header blocks it decoded without touching its
    dynamic table.

    Servers tend to send the same response headers again and again, many (nginx among them)
    as Huffman-coded literals every time, whose decoding in pure Python costs more than the
    rest of a small response. Such a block, met again while the decoding state (the table's
    contents and size, the limits) is the same, decodes to the same headers and leaves that
    state alone: a dict lookup does instead.
    """

    MEMO_SIZE = 64

    def __init__(self) -> None:
        super().__init__()
        self._memo: Dict[bytes, Tuple[Tuple[Any, ...], Tuple[Any, ...]]] = {}
        self._table_changes = 0
        table = self.header_table
        add = table.add

        # hpack has no hook for "the dynamic table changed": count the additions instead.
        def counting_add(name: bytes, value: bytes) -> None:
            was_empty = not table.dynamic_entries
            add(name, value)
            # An entry too big for the table (any entry when the server set its size to 0,
            # as nginx does) leaves an empty table empty: no change.
            if table.dynamic_entries or not was_empty:
                self._table_changes += 1

        table.add = counting_add  # type: ignore[method-assign]

    def decode(self, data: bytes, raw: bool = False) -> Any:
        state = (
            self._table_changes,
            self.header_table.maxsize,
            self.max_header_list_size,
            self.max_allowed_table_size,
            raw,
        )
        memo = self._memo
        known = memo.get(data)
        if known is not None and known[0] == state:
            return list(known[1])
        headers = super().decode(data, raw)
        if self._table_changes == state[0] and self.header_table.maxsize == state[1]:
            if len(memo) >= self.MEMO_SIZE:
                memo.clear()
            memo[bytes(data)] = (state, tuple(headers))
        elif self.header_table.maxsize != state[1]:
            # A size update in the block may have evicted entries without an addition:
            # count it as a change, or a later return to this size would look unchanged.
            self._table_changes += 1
        return headers


_NeverIndexed = hpack.NeverIndexedHeaderTuple

#: hpack's own `Encoder.header_table_size` property (its setter is extended below).
_ENCODER_TABLE_SIZE: Any = hpack.Encoder.__dict__["header_table_size"]


class RepeatEncoder(hpack.Encoder):  # type: ignore[misc,unused-ignore]
    """An HPACK encoder that remembers the header blocks it produced without touching its
    dynamic table.

    A client sends the same request headers again and again; once they are all in the
    dynamic table, encoding them again (a table search and an integer encoding per header,
    in pure Python) gives the same bytes and leaves the table alone: a dict lookup does
    instead. The memo holds while the table is unchanged: no entry added, no size change.
    Blocks with never-indexed fields (credentials) are encoded every time, never kept.
    """

    MEMO_SIZE = 64

    def __init__(self) -> None:
        super().__init__()
        self._memo: Dict[Any, Tuple[Tuple[int, int], bytes]] = {}
        self._table_changes = 0
        table = self.header_table
        add = table.add

        def counting_add(name: bytes, value: bytes) -> None:
            add(name, value)
            self._table_changes += 1

        table.add = counting_add  # type: ignore[method-assign]

    @property
    def header_table_size(self) -> int:
        return int(self.header_table.maxsize)

    @header_table_size.setter
    def header_table_size(self, value: int) -> None:
        # A new size may evict entries, and hpack then emits a size update: a change.
        _ENCODER_TABLE_SIZE.fset(self, value)
        self._table_changes += 1

    def encode(self, headers: Any, huffman: bool = True) -> bytes:
        table = self.header_table
        if table.resized or type(headers) is not list:
            self._table_changes += 1
            return bytes(super().encode(headers, huffman))
        # The types tell plain tuples from `NeverIndexedHeaderTuple`s (which compare equal);
        # blocks with never-indexed fields (credentials) are not kept in memory.
        types = tuple(map(type, headers))
        if _NeverIndexed in types:
            return bytes(super().encode(headers, huffman))
        key = (tuple(headers), types, huffman)
        state = (self._table_changes, table.maxsize)
        memo = self._memo
        known = memo.get(key)
        if known is not None and known[0] == state:
            return known[1]
        block = bytes(super().encode(headers, huffman))
        if self._table_changes == state[0]:
            if len(memo) >= self.MEMO_SIZE:
                memo.clear()
            memo[key] = (state, block)
        return block


_DummyLogger = h2.config.DummyLogger
_CONN_SEND_HEADERS = h2.connection.ConnectionInputs.SEND_HEADERS
_CONN_SEND_WINDOW_UPDATE = h2.connection.ConnectionInputs.SEND_WINDOW_UPDATE
_CONN_SEND_DATA = h2.connection.ConnectionInputs.SEND_DATA
_SEND_DATA = h2.stream.StreamInputs.SEND_DATA
_SEND_HEADERS = h2.stream.StreamInputs.SEND_HEADERS
_SEND_END_STREAM = h2.stream.StreamInputs.SEND_END_STREAM
_SEND_WINDOW_UPDATE = h2.stream.StreamInputs.SEND_WINDOW_UPDATE
_INCREMENT = struct.Struct(">L")  # a WINDOW_UPDATE's payload

_StreamClosedError = h2.exceptions.StreamClosedError
_StreamIDTooLowError = h2.exceptions.StreamIDTooLowError


class H2Connection(h2.connection.H2Connection):  # type: ignore[misc,unused-ignore]
    """An h2 client connection that finishes the streams a GOAWAY lets complete, encodes and
    decodes repeated headers from memory, writes a request's opening frames and builds a
    response's frames without hyperframe's generic work (`IncomingFrames`), and skips h2's
    per-stream walks and frame formatting where their outcome is known."""

    #: `_open_streams` walks h2's stream table at least once it holds this many streams.
    MIN_WALK = 64

    def __init__(self, config: h2.config.H2Configuration) -> None:
        super().__init__(config=config)
        self.state_machine = GracefulStateMachine()
        decoder = RepeatDecoder()
        decoder.max_header_list_size = self.decoder.max_header_list_size
        decoder.max_allowed_table_size = self.decoder.max_allowed_table_size
        self.decoder = decoder
        encoder = RepeatEncoder()
        encoder.header_table_size = self.encoder.header_table_size
        self.encoder = encoder
        self._walk_at = self.MIN_WALK
        self._bound_will_do = False
        self._own_stream_ids = h2.connection.AllowedStreamIDs(config.client_side)
        if config.client_side:
            self.incoming_buffer = IncomingFrames()  # type: ignore[assignment,unused-ignore]

    # -- counting open streams --------------------------------------------------------------
    #
    # h2 (3.2.0 - 4.x) counts the open streams by walking its whole stream table (and drops
    # the closed ones from it) on every new stream, to check the peer's
    # SETTINGS_MAX_CONCURRENT_STREAMS: O(n) per stream, O(n^2) for n concurrent requests.
    # The table's size is an upper bound of that count; while it is below the limit, the
    # check passes whatever the exact count, so the walk is skipped (`send_headers`). It
    # still walks, for the exact count, near the limit and, to drop closed streams, once the
    # table has doubled since the last walk; a stream found closed on release is dropped at
    # once (`forget_if_closed`), as the walk would.

    def send_headers(self, stream_id: int, headers: Any, *args: Any, **kwargs: Any) -> None:
        streams = self.streams
        size = len(streams)
        self._bound_will_do = (
            size < self._walk_at and size < self.remote_settings.max_concurrent_streams
        )
        try:
            super().send_headers(stream_id, headers, *args, **kwargs)
        finally:
            self._bound_will_do = False

    def _open_streams(self, remainder: int) -> int:
        if self._bound_will_do:
            # Only for the check in h2's `send_headers`: size + 1 <= limit, so it passes,
            # as it would with the exact count (which is no greater).
            return len(self.streams)
        count = int(super()._open_streams(remainder))
        self._walk_at = max(2 * len(self.streams), self.MIN_WALK)
        return count

    def forget_if_closed(self, stream_id: int) -> None:
        """Drop a stream that h2 has closed from its table, as its next walk would."""
        stream = self.streams.get(stream_id)
        if stream is not None and stream.closed:
            del self.streams[stream_id]
            self._closed_streams[stream_id] = stream.closed_by

    # -- a request's frames ----------------------------------------------------------------
    #
    # A request opens its stream with HEADERS (CONTINUATION too, for a block bigger than a
    # frame), then a stream WINDOW_UPDATE (API.md §4.4), and sends its body in DATA frames.
    # h2 (3.2.0 - 4.x) builds each as a hyperframe object, whose flags are a set of names
    # checked on every addition, and then serializes it: about two thirds of h2's ~30 µs to
    # open a stream. `open_request` and `send_request_data` make h2's state changes in h2's
    # order, through h2's own state machines, and write those frames' bytes directly.

    def open_request(
        self, stream_id: int, headers: List[Any], end_stream: bool, window_increment: int
    ) -> None:
        """`send_headers(stream_id, headers, end_stream=end_stream)`, then
        `increment_flow_control_window(window_increment, stream_id=stream_id)`: the same
        bytes queued, the same state changes and the same errors."""
        streams = self.streams
        if stream_id in streams or type(self.config.logger) is not _DummyLogger:
            # h2's own: trailers on an open stream, or a logger that wants h2's lines.
            self.send_headers(stream_id, headers, end_stream=end_stream)
            self.increment_flow_control_window(window_increment, stream_id=stream_id)
            return
        limit = self.remote_settings.max_concurrent_streams
        size = len(streams)
        if size >= self._walk_at or size >= limit:  # else the bound will do (above)
            open_now = self.open_outbound_streams
            if open_now + 1 > limit:
                msg = f"Max outbound streams is {limit}, {open_now} open"
                raise h2.exceptions.TooManyStreamsError(msg)
        self.state_machine.process_input(_CONN_SEND_HEADERS)
        stream = self._get_or_create_stream(stream_id, self._own_stream_ids)
        machine = stream.state_machine
        machine.process_input(_SEND_HEADERS)
        block = self.encoder.encode(headers)
        flags = 0
        if end_stream:
            machine.process_input(_SEND_END_STREAM)
            flags = END_STREAM
        if machine.client and stream._authority is None:
            stream._authority = h2.utilities.authority_from_headers(headers)
        stream.request_method = h2.utilities.extract_method_header(headers)
        max_size = self.max_outbound_frame_size
        if len(block) <= max_size:
            frames = frame_head(len(block), HEADERS, flags | END_HEADERS, stream_id) + block
        else:
            parts = [block[i : i + max_size] for i in range(0, len(block), max_size)]
            pieces = [frame_head(len(parts[0]), HEADERS, flags, stream_id), parts[0]]
            for part in parts[1:-1]:
                pieces += (frame_head(len(part), CONTINUATION, 0, stream_id), part)
            last = parts[-1]
            pieces += (frame_head(len(last), CONTINUATION, END_HEADERS, stream_id), last)
            frames = b"".join(pieces)
        self._data_to_send += frames
        if not 1 <= window_increment <= self.MAX_WINDOW_INCREMENT:
            msg = f"Flow control increment must be between 1 and {self.MAX_WINDOW_INCREMENT}"
            raise ValueError(msg)
        self.state_machine.process_input(_CONN_SEND_WINDOW_UPDATE)
        machine.process_input(_SEND_WINDOW_UPDATE)
        stream._inbound_window_manager.window_opened(window_increment)
        self._data_to_send += frame_head(4, WINDOW_UPDATE, 0, stream_id) + _INCREMENT.pack(
            window_increment
        )

    def send_request_data(self, stream_id: int, data: Any, end_stream: bool) -> None:
        """`send_data(stream_id, data, end_stream=end_stream)` for a request body's frame:
        the same bytes queued and the same state changes, the frame written directly. A
        frame the windows or the frame size do not allow is h2's to refuse."""
        size = len(data)
        if (
            type(self.config.logger) is not _DummyLogger
            or not size
            or size > self.local_flow_control_window(stream_id)
            or size > self.max_outbound_frame_size
        ):
            self.send_data(stream_id, data, end_stream=end_stream)
            return
        self.state_machine.process_input(_CONN_SEND_DATA)
        stream = self.streams[stream_id]
        machine = stream.state_machine
        machine.process_input(_SEND_DATA)
        flags = 0
        if end_stream:
            machine.process_input(_SEND_END_STREAM)
            flags = END_STREAM
        stream.outbound_flow_control_window -= size
        self._data_to_send += frame_head(size, DATA, flags, stream_id) + data
        self.outbound_flow_control_window -= size

    # -- receiving --------------------------------------------------------------------------

    def _receive_frame(self, frame: Any) -> List[Any]:
        """h2's handling of one received frame, without the `repr(frame)` that h2 4.x
        formats for its trace log before calling the logger, even the default one that does
        nothing (a DATA frame's repr costs more than handling it). With a logger configured,
        h2's own method runs. The handling of a closed stream is h2's (3.2.0 - 4.x)."""
        if type(self.config.logger) is not _DummyLogger:
            return super()._receive_frame(frame)  # type: ignore[no-any-return,unused-ignore]
        try:
            frames, events = self._frame_dispatch_table[frame.__class__](frame)
        except _StreamClosedError as exc:
            # Closed by a RST_STREAM: a stream error, answered with RST_STREAM; otherwise a
            # connection error.
            if not self._stream_is_closed_by_reset(exc.stream_id):
                raise
            reset = RstStreamFrame(exc.stream_id)
            reset.error_code = exc.error_code
            self._prepare_for_sending([reset])
            return exc._events  # type: ignore[no-any-return,unused-ignore]
        except _StreamIDTooLowError as exc:
            # A frame for a stream already forgotten: a stream error if it was reset, a
            # connection error if it ended (STREAM_CLOSED) or was closed implicitly.
            if self._stream_is_closed_by_reset(exc.stream_id):
                reset = RstStreamFrame(exc.stream_id)
                reset.error_code = ErrorCodes.STREAM_CLOSED
                self._prepare_for_sending([reset])
                return []
            if self._stream_is_closed_by_end(exc.stream_id):
                raise _StreamClosedError(exc.stream_id) from exc
            raise
        self._prepare_for_sending(frames)
        return events  # type: ignore[no-any-return,unused-ignore]

    def clear_outbound_data_buffer(self) -> None:
        # h2 drops queued frames when a GOAWAY arrives; they may be window updates or body
        # data of streams that are still allowed to complete, so they are kept.
        return None

    def has_data_to_send(self) -> bool:
        """Whether frames are queued. h2 has no public way to ask: `data_to_send()` takes
        them, and only the writer may (see `_writer.py`)."""
        return bool(self._data_to_send)

    def is_closed(self) -> bool:
        return self.state_machine.state is H2_CLOSED


def new_h2_connection(config: h2.config.H2Configuration = CONFIG) -> H2Connection:
    """The client-side h2 connection, with our local SETTINGS (not yet sent)."""
    h2_state = H2Connection(config=config)
    h2_state.local_settings = h2.settings.Settings(
        client=True,
        initial_values={
            _SettingCodes.ENABLE_PUSH: 0,
            _SettingCodes.MAX_CONCURRENT_STREAMS: 100,
            _SettingCodes.MAX_HEADER_LIST_SIZE: 65536,
        },
    )
    # h2 4.x puts SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441, value 0) in every SETTINGS
    # frame. It is the server's setting to send; left out, the client's preface is the same
    # under h2 3.x and 4.x.
    connect_protocol = getattr(_SettingCodes, "ENABLE_CONNECT_PROTOCOL", None)
    if connect_protocol is not None and connect_protocol in h2_state.local_settings:
        del h2_state.local_settings[connect_protocol]
    return h2_state
