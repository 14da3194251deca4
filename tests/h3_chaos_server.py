"""A misbehaving HTTP/3 server for tests/test_http3_chaos.py.

It runs aioquic's sans-I/O `QuicConnection` (QUIC and TLS only) in the shared background loop
and writes the HTTP/3 layer itself, byte by byte, so that a test can send anything: frames of
any type on any stream, corrupted QPACK blocks, truncated frames, resets, CONNECTION_CLOSE.

Each request is routed by its `:path` to a *script* registered with `ChaosServer.add()`; a
script gets a `Reply` (the request stream and its connection) and writes what it likes. A path
without a script is answered `200 calm`. The server's control stream is opened when the first
request of a connection arrives: with an empty SETTINGS frame, or with the bytes the first
request's script asks for (`add(..., control=...)`).
"""

from __future__ import annotations

import random
from typing import Callable, Dict, List, Optional, Tuple

import pylsqpack
from aioquic._buffer import Buffer, BufferReadError
from aioquic.buffer import encode_uint_var
from aioquic.h3.connection import FrameType, encode_frame
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import ConnectionTerminated, StreamDataReceived
from quic_server_base import Address, LoopRunner, QuicPeer, QuicServer

Headers = List[Tuple[bytes, bytes]]
Script = Callable[["Reply"], None]


SETTINGS_FRAME = encode_frame(FrameType.SETTINGS, b"")
CONTROL_STREAM_TYPE = 0x00


# -- building frames ---------------------------------------------------------------------------


def prefixed_int(value: int, prefix_bits: int, flags: int = 0) -> bytes:
    """An integer with an N-bit prefix (RFC 7541 §5.1, used by QPACK), `flags` above it."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([flags | value])
    out = bytearray([flags | limit])
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def literal_block(headers: Headers) -> bytes:
    """A QPACK field section with every line a literal name and value (no table, no Huffman):
    whatever the bytes, they are sent as given (uppercase names, pseudo-headers anywhere)."""
    out = bytearray(b"\x00\x00")  # Required Insert Count 0, Base 0
    for name, value in headers:
        out += prefixed_int(len(name), 3, 0x20)  # 001 N=0 H=0, name length
        out += name
        out += prefixed_int(len(value), 7, 0x00)  # H=0, value length
        out += value
    return bytes(out)


def packed_block(headers: Headers) -> bytes:
    """A QPACK field section as ls-qpack writes it without a dynamic table: static-table
    references and Huffman-coded strings (what the random mutations start from)."""
    _encoder_stream, block = pylsqpack.Encoder().encode(0, headers)
    return block


def headers_frame(headers: Headers) -> bytes:
    return encode_frame(FrameType.HEADERS, literal_block(headers))


def data_frame(data: bytes) -> bytes:
    return encode_frame(FrameType.DATA, data)


def raw_frame(frame_type: int, payload: bytes, declared: Optional[int] = None) -> bytes:
    """A frame of any type; `declared` overrides the length field (a lying frame)."""
    length = len(payload) if declared is None else declared
    return encode_uint_var(frame_type) + encode_uint_var(length) + payload


def response(status: bytes = b"200", body: bytes = b"", extra: Optional[Headers] = None) -> bytes:
    """HEADERS (`:status`, content-length, `extra`) then one DATA frame if there is a body."""
    head: Headers = [(b":status", status), (b"content-length", str(len(body)).encode())]
    out = headers_frame(head + list(extra or []))
    return out + data_frame(body) if body else out


def mutate(block: bytes, rng: random.Random) -> bytes:
    """One to three byte flips, random bytes, or a truncation of a QPACK field section."""
    data = bytearray(block)
    for _ in range(rng.randint(1, 3)):
        if not data:
            break
        kind = rng.random()
        at = rng.randrange(len(data))
        if kind < 0.45:
            data[at] ^= 1 << rng.randrange(8)
        elif kind < 0.8:
            data[at] = rng.randrange(256)
        else:
            del data[rng.randrange(len(data)) :]
    return bytes(data)


# -- the server ------------------------------------------------------------------------------


class Peer(QuicPeer):
    """One client connection: its QUIC state, control stream and request streams."""

    def __init__(self, quic: QuicConnection, address: Address, number: int) -> None:
        super().__init__(quic, address, number)
        self.control_id: Optional[int] = None
        self.buffers: Dict[int, bytearray] = {}
        self.answered: Dict[int, bool] = {}
        self.requests = 0
        self.decoder = pylsqpack.Decoder(0, 0)  # our SETTINGS allow no dynamic table


class Reply:
    """What a script writes with: the request stream `stream_id` of `peer`."""

    def __init__(
        self, server: ChaosServer, peer: Peer, stream_id: int, path: bytes, attempt: int
    ) -> None:
        self.server = server
        self.peer = peer
        self.stream_id = stream_id
        self.path = path
        self.attempt = attempt  # 1 the first time this path is requested, and so on

    def send(self, data: bytes, end: bool = False) -> None:
        self.peer.quic.send_stream_data(self.stream_id, data, end_stream=end)

    def flush(self) -> None:
        """Hand what was written so far to the network now (a packet boundary)."""
        self.server.transmit(self.peer)

    def control(self, data: bytes, end: bool = False) -> None:
        assert self.peer.control_id is not None
        self.peer.quic.send_stream_data(self.peer.control_id, data, end_stream=end)

    def reset(self, error_code: int) -> None:
        self.peer.quic.reset_stream(self.stream_id, error_code)

    def close_connection(self, error_code: int, reason: str = "") -> None:
        self.server.transmit(self.peer)  # what was written goes out first
        self.peer.quic.close(error_code=error_code, reason_phrase=reason)


class ChaosServer(QuicServer[Peer]):
    """The server (module docstring). `errors` keeps what went wrong on its side."""

    def __init__(self, bg: LoopRunner, certfile: str) -> None:
        super().__init__(bg, certfile)
        self._scripts: Dict[bytes, Tuple[Script, Optional[bytes]]] = {}
        self.paths: List[bytes] = []  # the paths requested, in order
        self.closes: List[int] = []  # the error codes of the clients' CONNECTION_CLOSEs
        self.start()

    def add(self, path: str, script: Script, control: Optional[bytes] = None) -> str:
        """Serve `path` with `script`; `control`: the first bytes of the control stream (after
        its type) when this is the first request of a connection. Returns the URL."""
        self._scripts[path.encode()] = (script, control)
        return self.url + path

    # -- receiving --------------------------------------------------------------------------

    def new_peer(self, quic: QuicConnection, address: Address, number: int) -> Peer:
        return Peer(quic, address, number)

    def handle_events(self, peer: Peer) -> None:
        self._events(peer)

    def _events(self, peer: Peer) -> None:
        while True:
            event = peer.quic.next_event()
            if event is None:
                return
            if isinstance(event, ConnectionTerminated):
                self.closes.append(event.error_code)
            elif isinstance(event, StreamDataReceived) and event.stream_id % 4 == 0:
                try:
                    self._request_data(peer, event.stream_id, event.data)
                except Exception as exc:  # pragma: no cover - reported by the tests
                    self.errors.append(exc)

    def _request_data(self, peer: Peer, stream_id: int, data: bytes) -> None:
        if peer.answered.get(stream_id):
            return  # the request body, if any, is not needed
        buffer = peer.buffers.setdefault(stream_id, bytearray())
        buffer += data
        buf = Buffer(data=bytes(buffer))
        try:
            frame_type = buf.pull_uint_var()
            length = buf.pull_uint_var()
        except BufferReadError:
            return
        if frame_type != FrameType.HEADERS:
            raise AssertionError(f"the client opened stream {stream_id} with {frame_type:#x}")
        if len(buffer) < buf.tell() + length:
            return
        block = bytes(buffer[buf.tell() : buf.tell() + length])
        _decoder_stream, headers = peer.decoder.feed_header(stream_id, block)
        peer.answered[stream_id] = True
        del peer.buffers[stream_id]
        path = dict(headers)[b":path"]
        self.paths.append(path)
        attempt = self.paths.count(path)
        script, control = self._scripts.get(path, (calm, None))
        peer.requests += 1
        if peer.control_id is None:
            peer.control_id = peer.quic.get_next_available_stream_id(is_unidirectional=True)
            first = SETTINGS_FRAME if control is None else control
            peer.quic.send_stream_data(
                peer.control_id, encode_uint_var(CONTROL_STREAM_TYPE) + first
            )
        script(Reply(self, peer, stream_id, path, attempt))


# -- scripts ---------------------------------------------------------------------------------


def reserved(n: int) -> int:
    """A reserved ("grease") frame type, 0x1f * N + 0x21 (RFC 9114 §7.2.8)."""
    return 0x1F * n + 0x21


def goaway(stream_id: int) -> bytes:
    """A GOAWAY frame (RFC 9114 §7.2.6)."""
    return raw_frame(FrameType.GOAWAY, encode_uint_var(stream_id))


def writes(*chunks: bytes, end: bool = True) -> Script:
    """A script sending `chunks` on the request stream, each in its own packet, the stream
    ended after the last if `end`."""

    def script(reply: Reply) -> None:
        for index, chunk in enumerate(chunks):
            reply.send(chunk, end=end and index == len(chunks) - 1)
            reply.flush()

    return script


def on_control(data: bytes, end: bool = False) -> Script:
    """A script writing `data` on the server's control stream and not answering."""

    def script(reply: Reply) -> None:
        reply.control(data, end=end)

    return script


def reset_mid_body(code: int) -> Script:
    """Ten bytes of a hundred-byte body, then RESET_STREAM with `code`."""

    def script(reply: Reply) -> None:
        head: Headers = [(b":status", b"200"), (b"content-length", b"100")]
        reply.send(headers_frame(head) + data_frame(b"x" * 10))
        reply.flush()
        reply.reset(code)

    return script


def reset_control(reply: Reply) -> None:
    """RESET_STREAM on the server's control stream (once the client has seen it opened)."""
    reply.flush()  # the client learns the stream is the control stream first
    assert reply.peer.control_id is not None
    reply.peer.quic.reset_stream(reply.peer.control_id, 0x10C)


def close_mid_body(code: int, reason: str) -> Script:
    """Ten bytes of a hundred-byte body, then CONNECTION_CLOSE."""

    def script(reply: Reply) -> None:
        head: Headers = [(b":status", b"200"), (b"content-length", b"100")]
        reply.send(headers_frame(head) + data_frame(b"x" * 10))
        reply.close_connection(code, reason)

    return script


def goaway_after_answer(reply: Reply) -> None:
    """An answer, then a GOAWAY letting no later request in."""
    reply.send(response(body=b"last"), end=True)
    reply.control(goaway(reply.stream_id + 4))


def goaway_unprocessed_once(reply: Reply) -> None:
    """The first attempt is refused by GOAWAY (not processed: retried elsewhere)."""
    if reply.attempt == 1:
        reply.control(goaway(reply.stream_id))
        return
    reply.send(response(body=b"retried"), end=True)


def silent(reply: Reply) -> None:
    """No answer at all."""


def calm(reply: Reply) -> None:
    """The well-behaved answer: `200`, body `calm`."""
    reply.send(response(body=b"calm"), end=True)
