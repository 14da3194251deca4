"""Keep-alive on one HTTP/1.1 connection, fuzzed as sequences of exchanges and compared with
h11 alone.

A bug the chunked-body fuzz found only showed on the *next* request: bytes that came in behind a
response stayed buffered when the connection went back to idle, and a later request was answered
with them. This fuzz looks for that class of bug (state carried from one response to the next,
whichever of the library's reading paths read each one) without knowing which path that is.

Each sequence is 2-6 exchanges on one `HTTP11Connection` over one mock stream: a request (GET,
HEAD, POST with a small body) and the bytes the server sends for it. The responses are of many
kinds (`KINDS`): Content-Length and chunked bodies, chunk extensions and trailers, HEAD, 204/304,
interim 1xx responses, `Connection: close`, HTTP/1.0, heads with bare-LF line endings, header
casing, and sometimes bytes behind a response (garbage, or a stray response). All of it is cut
into reads at random points (`SPLITS`), and each response is consumed in its own way (`MODES`):
read whole, streamed, read in part then closed, closed unread.

The reference (`reference`) is a bare `h11.Connection` fed the same reads in the same order,
with the rules of API.md §4.3 for reuse modelled on top of it (see the comments there). For each
exchange the connection must give the same head, the same body (or the same error) and be left
idle or closed as the reference says; once it is closed, a further request must raise
`ConnectionNotAvailable` (§4.3: a request on a connection neither NEW nor IDLE).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Iterator, List, Optional, Tuple

import h11
import helpers
import pytest

import httpcore

pytestmark = pytest.mark.anyio

anyio_backend, flavour, api = helpers.anyio_backend, helpers.flavour, helpers.api

ORIGIN = httpcore.Origin(b"http", b"example.com", 80)
URL = "http://example.com/"
# h11's limit for an incomplete event, as the connection sets it (API.md §4.3).
MAX_INCOMPLETE_EVENT_SIZE = 102400
SEQUENCES = 60  # per profile and flavour

KINDS = (
    "length",  # a Content-Length body: empty, small or a few KB
    "chunked",  # plain chunks (`Transfer-Encoding` in several casings)
    "chunked-h11",  # chunk extensions or trailers (h11 reads those)
    "head",  # a HEAD request: framing fields, no body
    "no-content",  # 204 / 304
    "interim",  # 100 / 102 / 103 before the final response
    "close",  # `Connection: close`, framed or delimited by the end of the stream
    "http10",  # HTTP/1.0, with or without Content-Length (and `Connection: keep-alive`)
    "bare-lf",  # a head whose lines end in LF alone (h11 takes them)
)
MODES = ("read", "stream", "partial", "unread")
SPLITS = ("responses", "pairs", "heads", "random", "bytes")

STATUSES = [
    b"200 OK",
    b"201 Created",
    b"404 Not Found",
    b"500 Internal Server Error",
    b"200 ",
    b"200",
]
LENGTH_NAMES = [b"Content-Length", b"content-length", b"CONTENT-LENGTH", b"Content-length"]
CHUNKED_FIELDS = [
    b"Transfer-Encoding: chunked",
    b"transfer-encoding: chunked",
    b"TRANSFER-ENCODING: chunked",
    b"Transfer-Encoding: Chunked",
    b"Transfer-Encoding:chunked",
]
OTHER_FIELDS = [
    b"Content-Type: text/plain",
    b"Server: fuzz",
    b"X-Padded:   spaced value  ",
    b"date: Mon, 01 Jan 2024 00:00:00 GMT",
    b"Connection: keep-alive",
    b"Set-Cookie: a=b",
    b"X-Empty:",
    b"X-Folded: a\r\n  b",  # obs-fold: h11 joins the lines
]
INTERIM = [
    b"HTTP/1.1 100 Continue\r\n\r\n",
    b"HTTP/1.1 102 Processing\r\n\r\n",
    b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n",
]
CLOSE_FIELDS = [b"Connection: close", b"connection: Close", b"Connection: keep-alive, close"]
EXTENSIONS = [b";name=value", b";a", b"; spaced = 1", b';q="x y"']
TRAILERS = [b"X-Trailer: 1\r\n", b"Checksum: 0123abcd\r\nX-B: b\r\n", b""]
STRAY = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nSTALE",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nSTALE\r\n0\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\n\r\n",
]
GARBAGE = [b"EXTRA", b"\r\n", b"0\r\n\r\n", b"\n", b"x", b"\x15\x03\x03\x00\x02"]  # the last: TLS
# Runs in a body that a parser must not take for framing or for the next response.
LOOKALIKES = [b"\r\n\r\n", b"HTTP/1.1 200 OK\r\n", b"0\r\n\r\n", b"\n\n", b"Content-Length: 3"]


# -- the generator --------------------------------------------------------------------------------


class Message:
    """Bytes being built, with the offsets where their parts start (split points)."""

    def __init__(self) -> None:
        self.data = b""
        self.marks: List[int] = []

    def add(self, *parts: bytes) -> None:
        for part in parts:
            self.marks.append(len(self.data))
            self.data += part


@dataclass
class Exchange:
    kind: str
    method: str
    content: Optional[bytes]  # the request body (POST)
    mode: str  # how the response is consumed: one of MODES
    response: bytes  # what the server sends for this request
    extra: bytes  # what the server sends behind it (b"": nothing)
    marks: List[int]  # split points in `response + extra`
    head_marks: List[int]  # the ones inside response heads
    truncated: bool = False  # the stream ends inside `response`

    @property
    def data(self) -> bytes:
        return self.response + self.extra


@dataclass
class Case:
    seed: int
    profile: str
    split: str
    exchanges: List[Exchange]
    pieces: List[bytes] = field(default_factory=list)


def body_bytes(rng: random.Random, size: int) -> bytes:
    data = bytearray(rng.randbytes(size))
    if size and rng.random() < 0.4:
        lookalike = rng.choice(LOOKALIKES)
        at = rng.randrange(size)
        data[at : at + len(lookalike)] = lookalike[: size - at]
    return bytes(data)


def body_size(rng: random.Random) -> int:
    roll = rng.random()
    if roll < 0.2:
        return 0
    if roll < 0.75:
        return rng.randint(1, 64)
    return rng.randint(1000, 5000)


def add_head(
    rng: random.Random, message: Message, status_line: bytes, fields: List[bytes]
) -> List[int]:
    """The head's lines (framing fields with other fields mixed in); returns its marks."""
    fields = list(fields)
    for other in rng.sample(OTHER_FIELDS, rng.choice([0, 0, 1, 2])):
        fields.insert(rng.randint(0, len(fields)), other)
    start = len(message.marks)
    message.add(status_line + b"\r\n", *[line + b"\r\n" for line in fields], b"\r\n")
    return message.marks[start:]


def length_field(rng: random.Random, size: int) -> bytes:
    return rng.choice(LENGTH_NAMES) + b": " + str(size).encode()


def add_chunks(rng: random.Random, message: Message, h11_only: bool) -> None:
    """A chunked body; with `h11_only`, extensions or trailers the fast decoder declines."""
    trailers = h11_only and rng.random() < 0.5
    for _ in range(rng.randint(0, 4)):
        size = rng.randint(1, 40) if rng.random() < 0.8 else rng.randint(500, 3000)
        line = b"%x" % size
        if h11_only and not trailers and rng.random() < 0.6:
            line += rng.choice(EXTENSIONS)
        message.add(line + b"\r\n", body_bytes(rng, size), b"\r\n")
    last = b"0"
    if h11_only and not trailers:
        last += rng.choice(EXTENSIONS)
    fields = rng.choice(TRAILERS) if trailers else b""
    message.add(last + b"\r\n", fields, b"\r\n")


def add_final(rng: random.Random, message: Message, chunked: bool, head_marks: List[int]) -> None:
    """An HTTP/1.1 final response with a Content-Length or a plain chunked body."""
    status = b"HTTP/1.1 " + rng.choice(STATUSES)
    if chunked:
        head_marks += add_head(rng, message, status, [rng.choice(CHUNKED_FIELDS)])
        add_chunks(rng, message, h11_only=False)
    else:
        size = body_size(rng)
        fields = [length_field(rng, size)]
        if rng.random() < 0.1:
            fields.append(length_field(rng, size))  # twice, the same: h11 takes it
        head_marks += add_head(rng, message, status, fields)
        message.add(body_bytes(rng, size))


def build_response(rng: random.Random, kind: str) -> Tuple[Message, List[int]]:
    message = Message()
    head_marks: List[int] = []
    if kind == "length":
        add_final(rng, message, chunked=False, head_marks=head_marks)
    elif kind == "chunked":
        add_final(rng, message, chunked=True, head_marks=head_marks)
    elif kind == "chunked-h11":
        head_marks += add_head(rng, message, b"HTTP/1.1 200 OK", [rng.choice(CHUNKED_FIELDS)])
        add_chunks(rng, message, h11_only=True)
    elif kind == "head":
        framing = length_field(rng, body_size(rng))
        if rng.random() < 0.3:
            framing = rng.choice(CHUNKED_FIELDS)
        head_marks += add_head(rng, message, b"HTTP/1.1 " + rng.choice(STATUSES), [framing])
    elif kind == "no-content":
        status = rng.choice([b"HTTP/1.1 204 No Content", b"HTTP/1.1 304 Not Modified"])
        fields = [] if rng.random() < 0.5 else [length_field(rng, rng.choice([0, 10]))]
        head_marks += add_head(rng, message, status, fields)
    elif kind == "interim":
        for interim in rng.sample(INTERIM, rng.randint(1, 2)):
            message.add(interim)
            head_marks.append(message.marks[-1])
        add_final(rng, message, chunked=rng.random() < 0.4, head_marks=head_marks)
    elif kind == "close":
        close = rng.choice(CLOSE_FIELDS)
        roll = rng.random()
        if roll < 0.4:
            size = body_size(rng)
            head_marks += add_head(
                rng, message, b"HTTP/1.1 200 OK", [length_field(rng, size), close]
            )
            message.add(body_bytes(rng, size))
        elif roll < 0.7:
            head_marks += add_head(rng, message, b"HTTP/1.1 200 OK", [CHUNKED_FIELDS[0], close])
            add_chunks(rng, message, h11_only=False)
        else:  # no framing: the body runs to the end of the stream
            head_marks += add_head(rng, message, b"HTTP/1.1 200 OK", [close])
            message.add(body_bytes(rng, rng.randint(0, 64)))
    elif kind == "http10":
        size = body_size(rng)
        roll = rng.random()
        fields = [length_field(rng, size)]
        if roll < 0.3:
            fields.append(b"Connection: keep-alive")
        elif roll < 0.6:
            fields = []  # delimited by the end of the stream
        head_marks += add_head(rng, message, b"HTTP/1.0 200 OK", fields)
        message.add(body_bytes(rng, size))
    elif kind == "bare-lf":
        size = body_size(rng)
        eol = rng.choice([b"\n", b"\n", b"\r\n"])
        lines = [b"HTTP/1.1 200 OK", length_field(rng, size)]
        start = len(message.marks)
        message.add(*[line + rng.choice([eol, b"\n"]) for line in lines], rng.choice([b"\n", eol]))
        if b"\r\n\r\n" in message.data:  # all CRLF after all: make the blank line a bare LF
            message.data = message.data[:-2] + b"\n"
        head_marks += message.marks[start:]
        message.add(body_bytes(rng, size))
    else:  # pragma: no cover
        raise AssertionError(kind)
    return message, head_marks


def build_extra(rng: random.Random) -> bytes:
    roll = rng.random()
    if roll < 0.4:
        return rng.choice(GARBAGE)
    if roll < 0.8:
        return rng.choice(STRAY)
    return rng.randbytes(rng.randint(1, 20))


PROFILES = {
    # name: (kind weights, mode weights, chance of bytes behind a response, split weights)
    "mixed": ([4, 4, 2, 2, 2, 2, 1, 1, 1], [4, 4, 1, 1], 0.12, [3, 2, 2, 3, 1]),
    # The class of bug this file is for: bytes behind a response, reads holding two of them.
    "stale": ([4, 4, 2, 2, 2, 2, 1, 1, 1], [6, 6, 1, 1], 0.45, [3, 4, 1, 1, 1]),
}


def make_case(seed: int, profile: str) -> Case:
    rng = random.Random(f"sequences-{seed}")
    kind_weights, mode_weights, extra_chance, split_weights = PROFILES[profile]
    exchanges = []
    for _ in range(rng.randint(2, 6)):
        kind = rng.choices(KINDS, kind_weights)[0]
        method, content = "GET", None
        if kind == "head":
            method = "HEAD"
        elif rng.random() < 0.2:
            method, content = "POST", rng.randbytes(rng.choice([0, 3, 17]))
        mode = rng.choices(MODES, mode_weights)[0]
        message, head_marks = build_response(rng, kind)
        extra = b""
        if kind == "head" and rng.random() < 0.15:
            # A server sending a body after all: to h11 those are bytes behind the response.
            extra = body_bytes(rng, rng.randint(1, 30))
        elif rng.random() < extra_chance:
            extra = build_extra(rng)
        marks = [*message.marks, len(message.data)] if extra else message.marks
        exchange = Exchange(kind, method, content, mode, message.data, extra, marks, head_marks)
        exchanges.append(exchange)
    if rng.random() < 0.15:
        # The server hangs up part-way through the last response (or before it).
        last = exchanges[-1]
        last.response = last.response[: rng.randint(0, len(last.response) - 1)]
        last.marks = [mark for mark in last.marks if mark < len(last.response)]
        last.head_marks = [mark for mark in last.head_marks if mark < len(last.response)]
        last.extra, last.truncated = b"", True
    split = rng.choices(SPLITS, split_weights)[0]
    case = Case(seed, profile, split, exchanges)
    case.pieces = split_reads(rng, case)
    return case


def split_reads(rng: random.Random, case: Case) -> List[bytes]:
    """The bytes of all responses as the reads that bring them: never an empty one (that is
    the end of the stream)."""
    data = b""
    starts: List[int] = []  # where each exchange's response starts
    extras: List[int] = []  # where bytes behind a response start
    marks: List[int] = []
    head_marks: List[int] = []
    for exchange in case.exchanges:
        starts.append(len(data))
        if exchange.extra:
            extras.append(len(data) + len(exchange.response))
        marks += [len(data) + mark for mark in exchange.marks]
        head_marks += [len(data) + mark for mark in exchange.head_marks]
        data += exchange.data
    if case.split == "bytes" and len(data) > 1500:
        case.split = "random"  # too many reads
    split = case.split
    if split == "bytes":
        return [data[i : i + 1] for i in range(len(data))]
    cuts = set()
    if split in ("responses", "pairs", "heads"):
        for start in starts:
            # "pairs": some reads hold two responses (or more).
            if split != "pairs" or rng.random() < 0.5:
                cuts.add(start)
        for start in extras:
            if rng.random() < 0.5:  # else the bytes behind come with the response's end
                cuts.add(start)
    if split == "heads":
        for _ in range(rng.randint(1, 4)):
            cuts.add(rng.choice(head_marks) + rng.randint(-1, 3))
    if split == "random":
        for _ in range(rng.randint(0, 15)):
            if rng.random() < 0.6:
                at = rng.choice(marks) + rng.randint(-1, 2)
            else:
                at = rng.randint(1, max(1, len(data) - 1))
            cuts.add(at)
            if rng.random() < 0.25:
                cuts.add(at + 1)  # a one-byte read
    points = [0, *sorted(cut for cut in cuts if 0 < cut < len(data)), len(data)]
    return [data[a:b] for a, b in zip(points, points[1:])]


# -- the reference: h11 alone, and the rules of API.md §4.3 -----------------------------------

Head = Tuple[int, List[Tuple[bytes, bytes]], bytes, bytes]  # status, headers, version, reason
Outcome = Tuple[Any, ...]  # ("ok", body) | ("partial", data) | ("unread",) | ("error", cls, msg)
DISCONNECTED = ("error", "RemoteProtocolError", "Server disconnected without sending a response.")


@dataclass
class Expected:
    head: Optional[Head]  # the final response's head, if one came
    outcome: Outcome
    reusable: bool
    rule: str  # why it is (not) reusable
    request: bytes  # the request's bytes as h11 writes them


class Disconnected(Exception):
    """The stream ended while h11 waited for a response to start."""


def request_headers(exchange: Exchange) -> List[Tuple[bytes, bytes]]:
    # What the `request()`/`stream()` helpers send (API.md §3.3).
    headers = [(b"Host", b"example.com")]
    if exchange.content is not None:
        headers.append((b"Content-Length", str(len(exchange.content)).encode()))
    return headers


def next_event(conn: h11.Connection, reads: Iterator[bytes]) -> Any:
    """h11's next event, fed the next read whenever it needs data (b"" once they run out)."""
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        data = next(reads, b"")
        if not data and conn.their_state is h11.SEND_RESPONSE:
            # The library's own error, not h11's: "raised whenever EOF is read while the
            # server has not started a response" (API.md §4.3), after an interim response too.
            raise Disconnected()
        conn.receive_data(data)


def reference_exchange(
    conn: h11.Connection, reads: Iterator[bytes], exchange: Exchange
) -> Expected:
    request = h11.Request(method=exchange.method, target="/", headers=request_headers(exchange))
    sent = conn.send(request) or b""
    if exchange.content:
        sent += conn.send(h11.Data(data=exchange.content)) or b""
    sent += conn.send(h11.EndOfMessage()) or b""

    head: Optional[Head] = None
    body = b""
    first_is_data: Optional[bool] = None  # whether the body's first event was data
    try:
        while True:
            event = next_event(conn, reads)
            if type(event) is h11.Response:
                break
            # Interim 1xx responses are skipped (API.md §4.3; the generator makes no 101).
            assert type(event) is h11.InformationalResponse, event
        head = (
            event.status_code,
            list(event.headers.raw_items()),
            b"HTTP/" + event.http_version,
            event.reason,
        )
        if exchange.mode == "unread":
            # Closed before any of the body was read: h11's side is still SEND_BODY (h11 says
            # EndOfMessage only when asked for the next event, even for an empty body), so not
            # both DONE: the connection is closed (API.md §4.3, "Response close").
            return Expected(head, ("unread",), False, "closed unread", sent)
        while True:
            event = next_event(conn, reads)
            if first_is_data is None:
                first_is_data = type(event) is h11.Data
            # (In "partial" mode the reference reads on past the first piece, for the whole
            # body to compare with: harmless, the connection closes after this exchange.)
            if type(event) is h11.Data:
                body += event.data
            elif type(event) is h11.EndOfMessage:
                break
            else:  # pragma: no cover
                raise AssertionError(event)
    except h11.RemoteProtocolError as exc:
        if exchange.mode == "partial" and first_is_data:
            # The reader stopped after its first piece, before the error.
            return Expected(head, ("partial", body), False, "closed part-read", sent)
        # h11's errors become ours with h11's message (API.md §4.3 and §8); an error closes
        # the connection ("Response close": error).
        return Expected(head, ("error", "RemoteProtocolError", str(exc)), False, "error", sent)
    except Disconnected:
        return Expected(None, DISCONNECTED, False, "error", sent)

    if exchange.mode == "partial" and first_is_data:
        # Closed after its first piece: a body closed before it was read to its end closes the
        # connection (h11's side is not DONE then: it has not said EndOfMessage).
        return Expected(head, ("partial", body), False, "closed part-read", sent)
    outcome = ("ok", body)
    if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
        # Reused only if both h11 sides are DONE (API.md §4.3, "Response close"): h11 says
        # MUST_CLOSE after `Connection: close`, an HTTP/1.0 response, a body delimited by the
        # end of the stream.
        return Expected(head, outcome, False, f"h11 {conn.their_state.__name__}", sent)
    if conn.trailing_data[0]:
        # Stricter than h11, deliberately: bytes already received behind the response cannot
        # belong to a later one (the server is out of step), so the connection is closed
        # rather than reused (`_http11.py`, module docstring; tests/test_http11_chunked.py).
        return Expected(head, outcome, False, "bytes behind the response", sent)
    conn.start_next_cycle()
    return Expected(head, outcome, True, "reused", sent)


def reference(case: Case) -> List[Expected]:
    """What h11 alone makes of the case, exchange by exchange, up to the first that closes the
    connection."""
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_INCOMPLETE_EVENT_SIZE)
    reads = iter(case.pieces)
    result = []
    for exchange in case.exchanges:
        expected = reference_exchange(conn, reads, exchange)
        result.append(expected)
        if not expected.reusable:
            break
    return result


# -- the connection -----------------------------------------------------------------------------


def head_of(response: Any) -> Head:
    extensions = response.extensions
    return (
        response.status,
        list(response.headers),
        extensions["http_version"],
        extensions["reason_phrase"],
    )


async def observe(connection: Any, exchange: Exchange) -> Tuple[Optional[Head], Outcome]:
    """What the connection makes of one exchange, consumed as `exchange.mode` says."""
    method, content = exchange.method, exchange.content
    head: Optional[Head] = None
    try:
        if exchange.mode == "read":
            response = await connection.request(method, URL, content=content)
            return head_of(response), ("ok", response.content)
        async with connection.stream(method, URL, content=content) as response:
            head = head_of(response)
            if exchange.mode == "stream":
                return head, ("ok", b"".join([chunk async for chunk in response.aiter_stream()]))
            if exchange.mode == "unread":
                return head, ("unread",)
            iterator = response.aiter_stream()
            try:
                first = await iterator.__anext__()
            except StopAsyncIteration:
                return head, ("ok", b"")
            finally:
                await iterator.aclose()
            return head, ("partial", first)
    except Exception as exc:  # any class: the comparison names it
        return head, ("error", type(exc).__name__, str(exc))


def shown(data: Any, limit: int = 300) -> str:
    """`data`'s repr, its middle left out when long."""
    text = repr(data)
    return text if len(text) <= limit else text[: limit - 60] + " ... " + text[-60:]


def describe(case: Case, index: int, expected: List[Expected]) -> str:
    lines = [
        f"seed {case.seed} ({case.profile}: make_case({case.seed}, {case.profile!r})), "
        f"exchange {index}, split {case.split!r}",
        f"reads ({len(case.pieces)}): {[len(piece) for piece in case.pieces]}",
    ]
    if len(case.pieces) <= 12:
        lines += [f"  read {i}: {shown(piece, 200)}" for i, piece in enumerate(case.pieces)]
    for i, exchange in enumerate(case.exchanges[: len(expected)]):
        rule = expected[i].rule
        lines.append(
            f"  [{i}] {exchange.method} {exchange.kind}{' (cut short)' * exchange.truncated}, "
            f"{exchange.mode}, reference: {rule}: "
            f"{shown(exchange.response, 160)} + extra {shown(exchange.extra, 80)}"
        )
    return "\n".join(lines)


def agrees(got: Outcome, want: Outcome) -> bool:
    if want[0] == "partial":
        # The first piece read: any non-empty start of what h11 gave (reads may be cut
        # differently into pieces by different readers).
        return got[0] == "partial" and bool(got[1]) and want[1].startswith(got[1])
    return got == want


async def run_case(api: Any, case: Case) -> None:
    expected = reference(case)
    stream = api.mock_stream(case.pieces)
    connection = api.HTTP11Connection(ORIGIN, stream)
    try:
        for index, want in enumerate(expected):
            exchange = case.exchanges[index]
            head, outcome = await observe(connection, exchange)
            where = describe(case, index, expected)
            assert agrees(outcome, want.outcome), (
                f"outcome {shown(outcome)}, h11: {shown(want.outcome)}\n{where}"
            )
            # The head, unless `request()` raised before handing the response over.
            if not (exchange.mode == "read" and outcome[0] == "error"):
                assert head == want.head, f"head {head}, h11: {want.head}\n{where}"
            if want.reusable:
                assert connection.is_idle(), f"{connection!r}, h11: reusable\n{where}"
                continue
            assert connection.is_closed(), f"{connection!r}, h11: {want.rule}\n{where}"
            assert stream.closed, where
            with pytest.raises(httpcore.ConnectionNotAvailable):
                await connection.request("GET", URL)
        # The requests went out as h11 writes them, each once, nothing more.
        written = b"".join(want.request for want in expected)
        assert stream.data == written, f"wrote {shown(stream.data)}\n{describe(case, 0, expected)}"
    finally:
        await connection.aclose()


@pytest.mark.parametrize("profile", list(PROFILES))
async def test_sequences_on_one_connection_agree_with_h11(api: Any, profile: str) -> None:
    offset = list(PROFILES).index(profile) * SEQUENCES
    failures = []
    for seed in range(offset, offset + SEQUENCES):
        try:
            await run_case(api, make_case(seed, profile))
        except AssertionError as exc:
            failures.append(str(exc))
    assert not failures, (
        f"{len(failures)} of {SEQUENCES} sequences disagree with h11; the first ones:\n\n"
        + "\n\n".join(failures[:3])
    )


# -- the generator is not vacuous -------------------------------------------------------------


def all_cases() -> List[Tuple[Case, List[Expected]]]:
    result = []
    for index, profile in enumerate(PROFILES):
        for seed in range(index * SEQUENCES, (index + 1) * SEQUENCES):
            case = make_case(seed, profile)
            result.append((case, reference(case)))
    return result


def test_the_sequences_hold_what_they_are_for() -> None:
    """Across the seeds (h11 decides): long runs on one connection, every response kind and
    way of consuming it, served after another exchange on the same connection, and bytes
    behind a response both in the read that ended it and in a later one."""
    cases = all_cases()
    served = [len(expected) for _, expected in cases]
    assert sum(n >= 3 for n in served) >= 20 and max(served) >= 5, served
    kinds = {case.exchanges[i].kind for case, expected in cases for i in range(len(expected))}
    assert kinds == set(KINDS)
    # Each kind read on a connection that served an earlier exchange, then reused once more.
    reused_kinds = {
        case.exchanges[i].kind
        for case, expected in cases
        for i in range(1, len(expected) - 1)
        if expected[i].reusable
    }
    # (A response of one kind may answer another's request: bytes behind an earlier one.)
    assert reused_kinds >= set(KINDS) - {"close", "http10"}, reused_kinds
    modes = {case.exchanges[i].mode for case, expected in cases for i in range(len(expected))}
    assert modes == set(MODES)
    assert {case.split for case, _ in cases} == set(SPLITS)
    rules = {want.rule for _, expected in cases for want in expected}
    assert {"reused", "bytes behind the response", "error", "closed unread"} <= rules, rules
    assert {"closed part-read", "h11 MUST_CLOSE"} <= rules, rules
    # Bytes behind a response that came in a later read: the next exchange meets them.
    met_later = [
        case.seed
        for case, expected in cases
        for i in range(len(expected) - 1)
        if case.exchanges[i].extra and expected[i].reusable
    ]
    assert len(met_later) >= 5, met_later
    outcomes = [want.outcome for _, expected in cases for want in expected]
    assert sum(outcome[0] == "error" for outcome in outcomes) >= 10
    assert DISCONNECTED in outcomes
    assert max(len(case.pieces) for case, _ in cases) >= 300
    assert sum(case.exchanges[-1].truncated for case, _ in cases) >= 10


# -- what the fuzz found, at its smallest ---------------------------------------------------------

NEXT = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"


# h11 ends a head at its first blank line, whether its lines end in CRLF or in LF alone: the
# first read holds a whole response, and h11 reads no further. The connection must not wait for
# more (on a socket, the next bytes come only after the next request) nor take the next
# response's bytes for bytes behind this one.
@pytest.mark.parametrize(
    "first",
    [
        b"HTTP/1.1 200 OK\nContent-Length: 2\n\nhi",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\nhi",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\n\r\nhi",
    ],
    ids=["lf", "crlf-then-lf", "lf-then-crlf"],
)
async def test_a_head_ended_by_a_bare_lf_is_answered_from_its_own_read(
    api: Any, first: bytes
) -> None:
    stream = api.mock_stream([first, NEXT])
    connection = api.HTTP11Connection(ORIGIN, stream)
    assert (await connection.request("GET", URL)).content == b"hi"
    assert connection.is_idle(), connection
    assert (await connection.request("GET", URL)).content == b"abc"
    await connection.aclose()


# A read may bring more than was asked for (`MockStream.read` ignores `max_bytes`, API.md §6.5):
# the rest of a Content-Length body and the next response in one read. The body is its first
# five bytes, and the rest is bytes behind the response (the connection closes); they are never
# handed out as body.
@pytest.mark.parametrize("streamed", [False, True], ids=["read", "streamed"])
async def test_a_read_past_the_end_of_a_body_is_not_body(api: Any, streamed: bool) -> None:
    reads = [b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", b"cde" + NEXT]
    stream = api.mock_stream(reads)
    connection = api.HTTP11Connection(ORIGIN, stream)
    if streamed:
        async with connection.stream("GET", URL) as response:
            body = b"".join([chunk async for chunk in response.aiter_stream()])
    else:
        body = (await connection.request("GET", URL)).content
    assert body == b"abcde"
    assert connection.is_closed()
    with pytest.raises(httpcore.ConnectionNotAvailable):
        await connection.request("GET", URL)


# h11 gives up at once on a response whose first byte is a control byte or a space ("illegal
# request line"; a TLS record answering plain HTTP, say), without waiting for a blank line that
# may never come. Read on to the next response's blank line, h11 would say "illegal status
# line: ..." instead.
async def test_a_response_starting_with_a_control_byte_is_refused_at_once(api: Any) -> None:
    first = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    stream = api.mock_stream([first, b"\x15\x03\x03\x00\x02", NEXT])
    connection = api.HTTP11Connection(ORIGIN, stream)
    assert (await connection.request("GET", URL)).content == b""
    with pytest.raises(httpcore.RemoteProtocolError) as info:
        await connection.request("GET", URL)
    assert str(info.value) == "illegal request line"
    assert connection.is_closed()
