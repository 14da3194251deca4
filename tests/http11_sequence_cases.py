"""The cases of `test_http11_sequences.py`: sequences of HTTP/1.1 exchanges on one connection
(`make_case(seed, profile)`), each a request and the bytes a server sends for it, cut into
reads (`split_reads`). See that file's docstring for what they are for."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import httpcore

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
