"""The shortcuts `httpcore.http2._patches` takes past h2's own work, checked against h2 itself.

Each shortcut must leave the behaviour of h2 as it is (under h2 3.2.0 in the `h2-oldest`
environment as under 4.x): the HPACK memos give the bytes and headers hpack gives, the skipped
walks of h2's stream table, the `repr`-free frame handling and the directly written frames
that open a request give the frames, events and errors h2 gives. The differential test runs
our connection and one with h2's own methods put back through the same random exchanges,
frame by frame.
"""

from __future__ import annotations

import functools
import random
from typing import Any, Callable, Dict, List, Optional, Tuple

import anyio
import h2
import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.frame_buffer
import h2.settings
import hpack
import hyperframe.frame
import pytest
from h2servers import H2Server

import httpcore
from httpcore.http2._patches import (
    CONFIG,
    H2Connection,
    RepeatDecoder,
    RepeatEncoder,
    new_h2_connection,
)

_Codes = h2.settings.SettingCodes
OLD_H2 = h2.__version__.startswith("3.")
GET = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"a"), (b":path", b"/")]
SERVER_CONFIG = h2.config.H2Configuration(client_side=False, header_encoding=None)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


# -- HPACK: the encoder's memo ------------------------------------------------------------------


REQUEST_SETS: List[List[Any]] = [
    [(b":method", b"GET"), (b":path", b"/"), (b"accept", b"*/*")],
    [(b":method", b"GET"), (b":path", b"/2k"), (b"user-agent", b"python-httpx/0.28.1")],
    # The same fields, once plain and once never indexed (the tuples compare equal).
    [(b":method", b"GET"), (b"authorization", b"secret")],
    [(b":method", b"GET"), hpack.NeverIndexedHeaderTuple(b"authorization", b"secret")],
    [(b":method", b"GET"), (b"authorization", b"secret", True)],
    [(b":method", b"POST"), (b"x-big", b"v" * 3000)],  # evicts most of a 4096-byte table
]


@pytest.mark.parametrize("seed", range(6))
def test_repeat_encoder_encodes_as_hpack(seed: int) -> None:
    """Bytes and dynamic table as hpack's encoder, through repeats, never-indexed fields,
    Huffman on and off and table size changes."""
    rnd = random.Random(seed)
    plain, memo = hpack.Encoder(), RepeatEncoder()
    decoder = hpack.Decoder()
    for _ in range(300):
        if rnd.random() < 0.05:
            size = rnd.choice([0, 100, 4096])
            plain.header_table_size = size
            memo.header_table_size = size
        headers = list(rnd.choice(REQUEST_SETS))
        huffman = rnd.random() < 0.8
        expected = plain.encode(headers, huffman=huffman)
        assert memo.encode(headers, huffman=huffman) == expected
        assert list(memo.header_table.dynamic_entries) == list(plain.header_table.dynamic_entries)
        decoder.decode(expected)  # a valid block in sequence
    assert memo._memo  # it did remember blocks


def test_repeat_encoder_encodes_a_repeat_from_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """Once the fields are in the table, the same request headers are not encoded again,
    until the table changes (then the indexes move: the remembered bytes would be wrong)."""
    encodes: List[int] = []
    real_encode = hpack.Encoder.encode

    def counted_encode(self: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(self, RepeatEncoder):
            encodes.append(1)
        return real_encode(self, *args, **kwargs)

    monkeypatch.setattr(hpack.Encoder, "encode", counted_encode)
    plain, encoder = hpack.Encoder(), RepeatEncoder()
    headers = [(b":method", b"GET"), (b":path", b"/2k"), (b"accept", b"*/*")]
    for _ in range(7):
        assert encoder.encode(list(headers)) == plain.encode(list(headers))
    assert len(encodes) == 2  # the first indexes the fields, the second changes nothing
    for fields in ([(b":path", b"/other")], headers):  # a new entry moves the others
        assert encoder.encode(list(fields)) == plain.encode(list(fields))
    assert len(encodes) == 4
    encoder.header_table_size = plain.header_table_size = 4096  # not trusted either
    assert encoder.encode(list(headers)) == plain.encode(list(headers))
    assert len(encodes) == 5


def test_repeat_encoder_keeps_no_credentials() -> None:
    """A block with a never-indexed field (a credential) is encoded as hpack does, every
    time, and not kept in the memo."""
    plain, encoder = hpack.Encoder(), RepeatEncoder()
    headers = [(b":method", b"GET"), hpack.NeverIndexedHeaderTuple(b"authorization", b"secret")]
    for _ in range(3):
        assert encoder.encode(list(headers)) == plain.encode(list(headers))
    assert encoder._memo == {}


def test_repeat_decoder_forgets_blocks_across_a_size_round_trip() -> None:
    """A table emptied by a size update and grown back holds nothing: a block referring to
    a dynamic entry decoded earlier must fail now, as with hpack, not come from memory."""
    encoder = hpack.Encoder()
    setup = encoder.encode([(b"x-name", b"value")])  # adds the field to the table
    indexed = encoder.encode([(b"x-name", b"value")])  # refers to dynamic entry 62
    emptied = b"\x20"  # dynamic table size update to 0
    restored = b"\x3f\xe1\x1f"  # dynamic table size update to 4096
    plain, memo = hpack.Decoder(), RepeatDecoder()
    for decoder in (plain, memo):
        decoder.decode(setup, raw=True)
        assert decoder.decode(indexed, raw=True) == [(b"x-name", b"value")]
        assert decoder.decode(indexed, raw=True) == [(b"x-name", b"value")]
        assert decoder.decode(emptied, raw=True) == []
        assert decoder.decode(restored, raw=True) == []
        with pytest.raises(hpack.HPACKDecodingError):
            decoder.decode(indexed, raw=True)


# -- h2: our connection against one with h2's own methods -------------------------------------


class ReferenceH2(H2Connection):
    """Our connection with h2's own code back where `_patches` takes a shortcut."""

    send_headers = h2.connection.H2Connection.send_headers
    _open_streams = h2.connection.H2Connection._open_streams
    _receive_frame = h2.connection.H2Connection._receive_frame

    def open_request(
        self, stream_id: int, headers: List[Any], end_stream: bool, window_increment: int
    ) -> None:
        self.send_headers(stream_id, headers, end_stream=end_stream)
        self.increment_flow_control_window(window_increment, stream_id=stream_id)

    def send_request_data(self, stream_id: int, data: Any, end_stream: bool) -> None:
        self.send_data(stream_id, data, end_stream=end_stream)

    def forget_if_closed(self, stream_id: int) -> None:
        return None  # h2 forgets closed streams on its next walk


def reference_connection(config: h2.config.H2Configuration) -> H2Connection:
    conn = new_h2_connection(config)
    conn.__class__ = ReferenceH2
    conn.incoming_buffer = h2.frame_buffer.FrameBuffer(server=False)
    decoder = hpack.Decoder()
    decoder.max_header_list_size = conn.decoder.max_header_list_size
    decoder.max_allowed_table_size = conn.decoder.max_allowed_table_size
    conn.decoder = decoder
    conn.encoder = hpack.Encoder()
    return conn


class TracingLogger:
    """A logger of h2's kind that keeps what it is given (not h2's no-op default)."""

    def __init__(self) -> None:
        self.lines: List[str] = []

    def debug(self, fmtstr: str, *args: Any) -> None:
        self.lines.append(fmtstr % args)

    def trace(self, fmtstr: str, *args: Any) -> None:
        self.lines.append(fmtstr % args)


def logged_config() -> h2.config.H2Configuration:
    """Our client configuration (`CONFIG`), with a `TracingLogger`."""
    return h2.config.H2Configuration(
        client_side=True,
        validate_inbound_headers=False,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
        logger=TracingLogger(),
    )


def outcome(call: Callable[..., Any], *args: Any) -> Tuple[str, Any]:
    try:
        return ("ok", call(*args))
    except h2.exceptions.ProtocolError as exc:
        return (type(exc).__name__, str(exc))


RESPONSE_SETS: List[List[Tuple[bytes, bytes]]] = [
    [(b":status", b"200"), (b"server", b"nginx"), (b"content-length", b"5")],
    [(b":status", b"200"), (b"server", b"nginx")],
    [(b":status", b"404"), (b"date", b"Mon, 30 Nov 2026 15:00:00 GMT")],
]


class Exchange:
    """A client of ours and a reference client, each with its own h2 server, driven alike."""

    def __init__(self, rnd: random.Random, config: h2.config.H2Configuration) -> None:
        self.rnd = rnd
        self.ours = new_h2_connection(config)
        self.reference = reference_connection(config)
        self.servers = {}
        limit = rnd.choice([3, 8, 100, None])
        for client in (self.ours, self.reference):
            server = h2.connection.H2Connection(SERVER_CONFIG)
            if limit is not None:
                server.local_settings = h2.settings.Settings(
                    client=False, initial_values={_Codes.MAX_CONCURRENT_STREAMS: limit}
                )
            server.initiate_connection()
            self.servers[id(client)] = server
            client.initiate_connection()
        self.opened: List[int] = []
        self.done = False
        self.flush()  # the client's preface

    def both(self, call: Callable[[H2Connection], Any]) -> Any:
        """Run `call` on both clients; they must do the same and send the same bytes."""
        results = [outcome(call, self.ours), outcome(call, self.reference)]
        assert results[0][0] == results[1][0]
        if results[0][0] == "ok":
            assert repr(results[0][1]) == repr(results[1][1])
        else:
            assert results[0] == results[1]
        self.flush()
        return results[0]

    def flush(self) -> None:
        ours, reference = self.ours.data_to_send(), self.reference.data_to_send()
        assert ours == reference
        if ours:
            for client in (self.ours, self.reference):
                server = self.servers[id(client)]
                if outcome(server.receive_data, ours)[0] != "ok":
                    self.done = True  # the server refused it: the same for both

    def deliver(self, data: Dict[int, bytes]) -> None:
        results = []
        for client in (self.ours, self.reference):
            results.append(outcome(client.receive_data, data[id(client)]))
        assert results[0][0] == results[1][0]
        if results[0][0] == "ok":
            assert [repr(e) for e in results[0][1]] == [repr(e) for e in results[1][1]]
            for event in results[0][1]:
                if isinstance(event, h2.events.DataReceived) and event.flow_controlled_length:
                    self.both(
                        functools.partial(
                            H2Connection.acknowledge_received_data,
                            acknowledged_size=event.flow_controlled_length,
                            stream_id=event.stream_id,
                        )
                    )
        else:
            assert results[0] == results[1]
            self.done = True  # a connection error
        self.flush()

    def from_servers(self, act: Callable[[h2.connection.H2Connection], Any]) -> None:
        data = {}
        for client in (self.ours, self.reference):
            server = self.servers[id(client)]
            if outcome(act, server)[0] != "ok":
                return  # not possible in this state (the same on both servers)
            data[id(client)] = server.data_to_send()
        self.deliver(data)

    def raw(self, frame: hyperframe.frame.Frame) -> None:
        data = frame.serialize()
        self.deliver({id(self.ours): data, id(self.reference): data})

    # -- steps -------------------------------------------------------------------------------

    def open(self) -> None:
        stream_id = self.ours.get_next_available_stream_id()
        headers: List[Any] = [
            (b":method", b"GET"),
            (b":scheme", b"https"),
            (b":authority", b"example.com"),
            (b":path", self.rnd.choice([b"/", b"/2k"])),
        ]
        # (Not the 3-tuples: h2 3.2.0 takes pairs only.)
        fields = self.rnd.choice(REQUEST_SETS)
        headers += [h for h in fields if not h[0].startswith(b":") and len(h) == 2]
        end = self.rnd.random() < 0.7
        if self.rnd.random() < 0.7:  # as `_send.py` opens a stream
            result = self.both(lambda c: c.open_request(stream_id, headers, end, 2**24))
        else:
            result = self.both(lambda c: c.send_headers(stream_id, headers, end_stream=end))
            if result[0] == "ok":
                self.both(lambda c: c.increment_flow_control_window(2**24, stream_id=stream_id))
        if result[0] == "ok":
            self.opened.append(stream_id)
            if not end:
                body = memoryview(b"body" * self.rnd.choice([1, 5000]))  # 5000: the window
                self.both(lambda c: c.send_request_data(stream_id, body[:-1], False))
                self.both(lambda c: c.send_request_data(stream_id, body[-1:], True))

    def respond(self) -> None:
        stream_id = self.rnd.choice(self.opened)
        headers = self.rnd.choice(RESPONSE_SETS)
        kind = self.rnd.random()
        if kind < 0.6:
            self.from_servers(lambda s: s.send_headers(stream_id, headers))
            self.from_servers(lambda s: s.send_data(stream_id, b"hello", end_stream=True))
        elif kind < 0.8:
            self.from_servers(lambda s: s.send_headers(stream_id, headers, end_stream=True))
        else:
            self.from_servers(lambda s: s.reset_stream(stream_id, 8))

    def release(self) -> None:
        """What `_response_closed` does: reset a stream that is not done, forget it."""
        stream_id = self.rnd.choice(self.opened)
        if self.rnd.random() < 0.5:
            self.both(lambda c: c.reset_stream(stream_id, 8))
        self.ours.forget_if_closed(stream_id)

    def late_frame(self) -> None:
        """A frame for a stream that may be closed, reset or forgotten by now."""
        stream_id = self.rnd.choice(self.opened)
        kind = self.rnd.random()
        frame: hyperframe.frame.Frame
        if kind < 0.4:
            frame = hyperframe.frame.DataFrame(stream_id, data=b"late")
        elif kind < 0.6:
            frame = hyperframe.frame.RstStreamFrame(stream_id, error_code=8)
        elif kind < 0.8:
            frame = hyperframe.frame.WindowUpdateFrame(stream_id, window_increment=10)
        else:
            frame = hyperframe.frame.HeadersFrame(stream_id, data=b"\x88", flags=["END_HEADERS"])
        if (
            OLD_H2
            and isinstance(frame, hyperframe.frame.WindowUpdateFrame)
            and (stream_id in self.ours.streams) != (stream_id in self.reference.streams)
        ):
            # h2 3.x ignores a WINDOW_UPDATE for a closed stream still in its table, and
            # fails the connection once its walk dropped the stream: the outcome depends on
            # when h2 last walked (4.x ignores both, as RFC 9113 §6.9 asks).
            return
        self.raw(frame)

    def settings(self) -> None:
        limit = self.rnd.choice([1, 2, 5, 50])
        self.from_servers(lambda s: s.update_settings({_Codes.MAX_CONCURRENT_STREAMS: limit}))


@pytest.mark.parametrize("seed", range(16))
@pytest.mark.parametrize("logged", [False, True], ids=["default-logger", "own-logger"])
def test_connection_behaves_as_h2(seed: int, logged: bool) -> None:
    """Frames sent, events, errors and the open-stream count are h2's, step by step."""
    # With a logger, h2's own `_receive_frame` runs (it may log the frames).
    config = logged_config() if logged else CONFIG
    rnd = random.Random(seed)
    exchange = Exchange(rnd, config)
    exchange.deliver(
        {id(c): exchange.servers[id(c)].data_to_send() for c in (exchange.ours, exchange.reference)}
    )
    steps = [exchange.open] * 4 + [exchange.respond] * 3 + [exchange.release] * 2
    steps += [exchange.late_frame] * 2 + [exchange.settings]
    for _ in range(400):
        if exchange.done:
            break
        step = rnd.choice(steps)
        if step is not exchange.open and not exchange.opened:
            step = exchange.open
        step()
        if rnd.random() < 0.1:
            assert exchange.ours.open_outbound_streams == exchange.reference.open_outbound_streams
    assert exchange.opened


@pytest.mark.parametrize("late", ["data", "headers", "window_update", "rst_stream"])
@pytest.mark.parametrize("how", ["reset", "ended"])
@pytest.mark.parametrize("forgotten", [False, True])
def test_frame_for_a_closed_stream_is_handled_as_h2(late: str, how: str, forgotten: bool) -> None:
    """A frame for a stream we reset is answered with RST_STREAM; HEADERS on a stream that
    ended break the connection: as h2 does, whether the stream is still in its table or was
    forgotten on release."""
    outcomes = []
    for client in (new_h2_connection(), reference_connection(CONFIG)):
        server = handshake(client, limit=None)
        client.send_headers(1, GET, end_stream=True)
        server.receive_data(client.data_to_send())
        server.send_headers(1, [(b":status", b"200")])
        client.receive_data(server.data_to_send())
        if how == "reset":
            client.reset_stream(1, 8)
        else:
            server.send_data(1, b"body", end_stream=True)
            client.receive_data(server.data_to_send())
        if forgotten:
            H2Connection.forget_if_closed(client, 1)
            assert 1 not in client.streams
        client.data_to_send()
        frame = {
            "data": hyperframe.frame.DataFrame(1, data=b"late"),
            "headers": hyperframe.frame.HeadersFrame(1, data=b"\x88", flags=["END_HEADERS"]),
            "window_update": hyperframe.frame.WindowUpdateFrame(1, window_increment=10),
            "rst_stream": hyperframe.frame.RstStreamFrame(1, error_code=8),
        }[late]
        result = outcome(client.receive_data, frame.serialize())
        outcomes.append((result[0], repr(result[1]), client.data_to_send()))
    assert outcomes[0] == outcomes[1]
    if how == "reset" and late in ("data", "headers"):
        assert outcomes[0][0] == "ok"
        assert outcomes[0][2] == hyperframe.frame.RstStreamFrame(1, error_code=5).serialize()
    if how == "ended" and late == "headers":
        assert outcomes[0][0] == "StreamClosedError"


@pytest.mark.parametrize("end", [True, False])
@pytest.mark.parametrize("size", [10, 20000, 40000, 60000])
@pytest.mark.parametrize("frame_size", [16384, 32768])
def test_open_request_writes_h2s_frames(end: bool, size: int, frame_size: int) -> None:
    """HEADERS, the CONTINUATIONs of a block bigger than a frame, then the stream's
    WINDOW_UPDATE: h2's bytes and stream state, and a server decodes the same request."""
    headers = [*GET, (b"x-big", b"v" * size), (b"x-after", b"1")]
    received = []
    for client in (new_h2_connection(), reference_connection(CONFIG)):
        server = handshake(client, limit=None)
        server.update_settings({_Codes.MAX_FRAME_SIZE: frame_size})
        client.receive_data(server.data_to_send())
        server.receive_data(client.data_to_send())
        client.open_request(1, list(headers), end, 2**24)
        data = client.data_to_send()
        stream = client.streams[1]
        state = (
            stream.state_machine.state,
            stream.request_method,
            stream._authority,
            stream.inbound_flow_control_window,
            client.open_outbound_streams,
        )
        received.append((data, state, [repr(e) for e in server.receive_data(data)]))
    assert received[0] == received[1]
    data, state, events = received[0]
    assert state[1:3] == (b"GET", b"a")
    assert any("StreamEnded" in e for e in events) is end
    assert any(f"(b'x-big', b'{'v' * size}')" in e for e in events)
    kinds, flags, lengths, offset = [], [], [], 0
    while offset < len(data):
        lengths.append(int.from_bytes(data[offset : offset + 3], "big"))
        kinds.append(data[offset + 3])
        flags.append(data[offset + 4])
        offset += 9 + lengths[-1]
    # HEADERS, CONTINUATION while the block lasts, then WINDOW_UPDATE.
    assert kinds[0] == 0x1 and kinds[-1] == 0x8 and set(kinds[1:-1]) <= {0x9}
    block = sum(lengths[:-1])
    assert len(kinds) - 1 == -(-block // frame_size)
    assert all(length == frame_size for length in lengths[:-2])
    if size >= 40000:  # Huffman-coded, still more than a frame
        assert len(kinds) > 2
    assert flags[0] & 0x1 == int(end)  # END_STREAM on HEADERS only
    assert [bool(f & 0x4) for f in flags[:-1]] == [False] * (len(flags) - 2) + [True]


@pytest.mark.parametrize("case", ["window", "reset", "ended", "closed"])
def test_send_request_data_is_h2s(case: str) -> None:
    """A request body's DATA frames: h2's bytes, windows and stream states, and h2's errors
    once a window is used up, the server reset the stream, the request has ended or the
    connection was closed."""
    results = []
    for client in (new_h2_connection(), reference_connection(CONFIG)):
        server = handshake(client, limit=None)
        client.open_request(1, list(GET), False, 2**24)
        steps = []
        if case == "reset":
            server.receive_data(client.data_to_send())
            server.reset_stream(1, 8)
            client.receive_data(server.data_to_send())
        if case == "closed":
            client.close_connection()
        chunk = memoryview(b"b" * 16384)
        # (The connection's window is 65,535 bytes; the stream's 2**24 more.)
        sizes = [10, 16384, 16384, 16384, 16374, 16373, 1] if case == "window" else [10, 10]
        for n, size in enumerate(sizes):
            end = case == "ended" and n == 0
            result = outcome(client.send_request_data, 1, chunk[:size], end)
            stream = client.streams.get(1)
            steps.append(
                (
                    result,
                    client.data_to_send(),
                    client.outbound_flow_control_window,
                    stream and (stream.state_machine.state, stream.outbound_flow_control_window),
                )
            )
        results.append(steps)
    assert results[0] == results[1]
    refused = [step for step in results[0] if step[0][0] != "ok"]
    assert refused  # the last frames are refused in every case
    if case == "window":
        outcomes = [step[0][0] for step in results[0]]
        assert outcomes[4:] == ["FlowControlError", "ok", "FlowControlError"]
        assert results[0][5][2] == 0  # the connection's window used up exactly


def test_open_request_with_a_logger_logs_as_h2() -> None:
    """With a logger of its own, h2 opens the stream itself and logs its lines."""
    config = logged_config()
    client = new_h2_connection(config)
    handshake(client, limit=None)
    client.open_request(1, list(GET), True, 2**24)
    assert any("Send headers" in line for line in config.logger.lines)
    assert any("Increase stream ID 1 flow control window" in line for line in config.logger.lines)


# -- received frames: `IncomingFrames` against h2's `FrameBuffer` -----------------------------


def random_frames(rnd: random.Random) -> bytes:
    """Frames of every kind `IncomingFrames` builds or hands to h2, and some h2 refuses."""
    frames = hyperframe.frame
    choices: List[Callable[[], Any]] = [
        lambda: frames.DataFrame(rnd.choice([1, 3]), data=b"d" * rnd.randint(0, 40)),
        lambda: frames.DataFrame(1, data=b"end", flags=["END_STREAM"]),
        lambda: frames.DataFrame(3, data=b"padded", flags=["PADDED"], pad_length=3),
        lambda: frames.HeadersFrame(1, data=b"\x88", flags=["END_HEADERS"]),
        lambda: frames.HeadersFrame(3, data=b"\x88", flags=["END_HEADERS", "END_STREAM"]),
        lambda: frames.HeadersFrame(1, data=b"\x88", flags=["END_HEADERS", "PRIORITY"]),
        lambda: frames.HeadersFrame(1, data=b"\x88\x82", flags=["END_HEADERS", "PADDED"]),
        lambda: frames.HeadersFrame(5, data=b"\x88"),  # a header block that continues
        lambda: frames.ContinuationFrame(5, data=b"\x82"),
        lambda: frames.ContinuationFrame(5, data=b"\x84", flags=["END_HEADERS"]),
        lambda: frames.SettingsFrame(0, settings={4: 100}),
        lambda: frames.PingFrame(0, opaque_data=b"12345678"),
        lambda: frames.WindowUpdateFrame(1, window_increment=5),
        lambda: frames.RstStreamFrame(3, error_code=8),
        lambda: frames.DataFrame(1, data=b"x" * 20000),  # longer than the frame size
    ]
    data = b"".join(rnd.choice(choices)().serialize() for _ in range(rnd.randint(1, 12)))
    if rnd.random() < 0.2:
        data += rnd.choice(
            [
                b"\x00\x00\x01\x00\x00\x00\x00\x00\x00x",  # DATA on stream 0
                b"\x00\x00\x01\xfa\x00\x00\x00\x00\x01x",  # an unknown type
                b"\x00\x00\x01\x00\x00\x80\x00\x00\x01x",  # the reserved bit set
                b"\x00\x00\x01\x00\x73\x00\x00\x00\x01x",  # DATA, flags it does not define
                b"\x00\x00\x01\x01\xd5\x00\x00\x00\x01\x88",  # and HEADERS
            ]
        )
    return data


def frames_out(buffer: Any, data: bytes, rnd: random.Random) -> List[Any]:
    """What iterating `buffer` gives as `data` arrives in random pieces: each frame's class
    and attributes, or the error that stopped it."""
    out: List[Any] = []
    offset = 0
    while offset < len(data):
        step = rnd.choice([1, 2, 9, 10, 50, len(data)])
        buffer.max_frame_size = 16384
        buffer.add_data(data[offset : offset + step])
        offset += step
        try:
            for frame in buffer:
                attributes = {k: v for k, v in vars(frame).items() if k != "flags"}
                out.append((type(frame).__name__, sorted(frame.flags), attributes))
        except h2.exceptions.ProtocolError as exc:
            out.append((type(exc).__name__, str(exc)))
            break
    return out


@pytest.mark.parametrize("seed", range(300))
def test_incoming_frames_are_h2s(seed: int) -> None:
    """The same frames, with the same attributes, or the same error, as h2's buffer."""
    from httpcore.http2._incoming import IncomingFrames

    data = random_frames(random.Random(seed))
    ours = frames_out(IncomingFrames(), data, random.Random(seed))
    theirs = frames_out(h2.frame_buffer.FrameBuffer(server=False), data, random.Random(seed))
    assert ours == theirs


def test_incoming_frames_build_again_after_a_header_block() -> None:
    """Frames go to h2's buffer while a header block continues, and are built here again
    once it ends."""
    from httpcore.http2._incoming import IncomingFrames

    frames = hyperframe.frame
    buffer = IncomingFrames()
    buffer.max_frame_size = 16384
    buffer.add_data(frames.HeadersFrame(1, data=b"\x88").serialize())
    assert list(buffer) == [] and buffer._in_block
    buffer.add_data(frames.ContinuationFrame(1, data=b"", flags=["END_HEADERS"]).serialize())
    buffer.add_data(frames.DataFrame(1, data=b"body").serialize())
    assert [type(frame).__name__ for frame in buffer] == ["HeadersFrame", "DataFrame"]
    assert not buffer._in_block  # the DATA frame was built here


def test_incoming_frames_build_data_and_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under this hyperframe (5.2 with h2 3.2.0, 6.x with 4.x) the two frames of a response
    are built here; a frame layout this module does not know sends every frame to h2."""
    from httpcore.http2 import _incoming

    assert _incoming.BUILDS_FRAMES
    assert isinstance(new_h2_connection().incoming_buffer, _incoming.IncomingFrames)
    assert _incoming._built_as_parsed()
    built = _incoming.data_frame

    def missing_an_attribute(stream_id: int, data: bytes, end_stream: bool) -> Any:
        frame = built(stream_id, data, end_stream)
        del frame.pad_length
        return frame

    def with_another_value(stream_id: int, data: bytes, end_stream: bool) -> Any:
        frame = built(stream_id, data, end_stream)
        frame.body_len += 1
        return frame

    for wrong in (missing_an_attribute, with_another_value):
        monkeypatch.setattr(_incoming, "data_frame", wrong)
        assert not _incoming._built_as_parsed()


# -- h2's stream table -------------------------------------------------------------------------


def handshake(client: H2Connection, limit: Optional[int]) -> h2.connection.H2Connection:
    """A server for `client`, SETTINGS exchanged and acknowledged both ways."""
    server = h2.connection.H2Connection(SERVER_CONFIG)
    if limit is not None:
        server.local_settings = h2.settings.Settings(
            client=False, initial_values={_Codes.MAX_CONCURRENT_STREAMS: limit}
        )
    server.initiate_connection()
    client.initiate_connection()

    for _ in range(2):
        server.receive_data(client.data_to_send())
        client.receive_data(server.data_to_send())
    return server


def run_streams(client: H2Connection, limit: Optional[int], in_flight: int, forget: bool) -> int:
    """Keep `in_flight` streams open while 600 complete; returns the table's largest size."""
    server = handshake(client, limit)
    headers = GET
    open_ids: List[int] = []
    largest = 0
    for i in range(600 + in_flight):
        if i >= in_flight:
            done = open_ids.pop(0)
            server.send_headers(done, [(b":status", b"200")], end_stream=True)
            client.receive_data(server.data_to_send())
            if forget:
                client.forget_if_closed(done)
        stream_id = client.get_next_available_stream_id()
        client.send_headers(stream_id, headers, end_stream=True)
        server.receive_data(client.data_to_send())
        open_ids.append(stream_id)
        largest = max(largest, len(client.streams))
    assert client.open_outbound_streams == in_flight
    return largest


@pytest.mark.parametrize("forget", [True, False])
def test_new_streams_do_not_walk_the_stream_table(
    monkeypatch: pytest.MonkeyPatch, forget: bool
) -> None:
    """h2 counts the open streams by walking its table on each new stream (O(n) each): with
    100 in flight and the server's limit at 128, the walks look at a few streams per new one
    instead of a hundred."""
    walked: List[int] = []
    real_walk = h2.connection.H2Connection._open_streams

    def counted_walk(self: Any, remainder: int) -> Any:
        if isinstance(self, H2Connection):  # not the server's
            walked.append(len(self.streams))
        return real_walk(self, remainder)

    monkeypatch.setattr(h2.connection.H2Connection, "_open_streams", counted_walk)
    run_streams(new_h2_connection(), limit=128, in_flight=100, forget=forget)
    assert sum(walked) < 600 * 10  # h2 alone: about 600 * 100


def test_stream_table_stays_bounded_without_a_server_limit() -> None:
    """With no SETTINGS_MAX_CONCURRENT_STREAMS from the server, closed streams that nobody
    forgets are still dropped by a walk once the table has doubled."""
    largest = run_streams(new_h2_connection(), limit=None, in_flight=10, forget=False)
    assert largest <= 2 * H2Connection.MIN_WALK


def test_too_many_streams_is_still_raised() -> None:
    """Near the server's limit the count is exact: the stream beyond it is refused."""
    client = new_h2_connection()
    server = handshake(client, limit=3)
    headers = GET
    for stream_id in (1, 3, 5):
        client.send_headers(stream_id, headers, end_stream=True)
    with pytest.raises(h2.exceptions.TooManyStreamsError):
        client.send_headers(7, headers, end_stream=True)
    server.receive_data(client.data_to_send())
    server.send_headers(1, [(b":status", b"200")], end_stream=True)
    client.receive_data(server.data_to_send())
    client.send_headers(7, headers, end_stream=True)  # stream 1 closed: room again


# -- through the connection --------------------------------------------------------------------


def test_released_streams_leave_h2s_table(h2_server: Callable[..., H2Server]) -> None:
    """A response closed leaves no closed stream behind in h2's table (threads)."""
    import concurrent.futures

    srv = h2_server(max_concurrent_streams=8)
    with httpcore.ConnectionPool(http1=False, http2=True) as pool:
        with concurrent.futures.ThreadPoolExecutor(max_workers=30) as executor:
            bodies = list(
                executor.map(lambda i: pool.request("GET", f"{srv.url}/{i}").content, range(60))
            )
        assert bodies == [f"ok /{i}".encode() for i in range(60)]
        h2_state = pool.connections[0]._connection._h2_state
        assert h2_state.streams == {}
    assert srv.violations == 0


@pytest.mark.anyio
async def test_async_released_streams_leave_h2s_table(
    h2_server: Callable[..., H2Server],
) -> None:
    srv = h2_server(max_concurrent_streams=8)
    async with httpcore.AsyncConnectionPool(http1=False, http2=True) as pool:
        bodies: Dict[int, bytes] = {}

        async def get(i: int) -> None:
            bodies[i] = (await pool.request("GET", f"{srv.url}/{i}")).content

        async with anyio.create_task_group() as tg:
            for i in range(60):
                tg.start_soon(get, i)
        assert bodies == {i: f"ok /{i}".encode() for i in range(60)}
        h2_state = pool.connections[0]._connection._h2_state
        assert h2_state.streams == {}
    assert srv.violations == 0


# -- the wait of a request for the reader or a stream slot (async) -----------------------------


@pytest.mark.anyio
async def test_async_event_wait_times_out() -> None:
    from httpcore.base._async import AsyncEvent

    event = AsyncEvent()
    with anyio.fail_after(5):
        with pytest.raises(httpcore.PoolTimeout):
            await event.wait(0.01)
    event.set()  # after the timeout: nothing waits any more
    assert event.is_set()
    await event.wait(0.01)  # set: returns at once


@pytest.mark.anyio
async def test_async_event_set_by_another_task() -> None:
    from httpcore.base._async import AsyncEvent

    for timeout in (None, 10.0):
        event = AsyncEvent()
        async with anyio.create_task_group() as tg:
            tg.start_soon(event.wait, timeout)
            await anyio.sleep(0.01)
            with anyio.fail_after(5):
                event.set()  # wakes the waiter long before its timeout
        assert event.is_set()


@pytest.mark.anyio
async def test_async_event_wait_cancelled() -> None:
    from httpcore.base._async import AsyncEvent

    event = AsyncEvent()
    with anyio.move_on_after(0.01) as scope:
        await event.wait(10.0)
    assert scope.cancelled_caught
    event.set()  # the cancelled wait is not woken (nor broken) by it
    assert event.is_set()


def test_the_hpack_memos_hold_at_most_64_blocks() -> None:
    """Each memo forgets everything once 64 blocks are kept (memory stays bounded however many
    different header blocks a connection sees), and starts again with the next."""
    encoder = RepeatEncoder()
    blocks = [[(b"x-request", b"%d" % i)] for i in range(65)]
    for headers in blocks:  # into the dynamic table (a change each: nothing kept yet)
        encoder.encode(headers)
    assert len(encoder._memo) == 0
    for headers in blocks[:64]:  # now all indexed: each block is kept
        encoder.encode(headers)
    assert len(encoder._memo) == 64
    encoder.encode(blocks[64])
    assert len(encoder._memo) == 1

    source = hpack.Encoder()
    source.header_table_size = 0
    decoder = RepeatDecoder()
    decoder.header_table_size = 0
    # (A zero-sized table on both sides: no block changes it, so each one is kept.)
    blocks = [source.encode([(b"x-response", b"%d" % i)]) for i in range(65)]
    for block in blocks[:64]:
        decoder.decode(block)
    assert len(decoder._memo) == 64
    decoder.decode(blocks[64])
    assert len(decoder._memo) == 1
