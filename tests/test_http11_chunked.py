"""Chunked response bodies (`Transfer-Encoding: chunked`) read through `HTTP11Connection` agree
with h11 alone: the same body, or the same error with h11's message.

The differential fuzz builds chunked responses from a seeded `random.Random`, in families (plain
chunks, chunk extensions, whitespace after the size, trailers, malformed size lines, a wrong
chunk footer, input cut short, bytes after the last chunk), splits each into reads at random
points (inside the head, size lines and CRLFs, down to one byte per read) and compares what the
connection makes of those reads with what a bare `h11.Connection` makes of the same pieces fed
one by one. Then the keep-alive rules around a chunked body: reused after a complete one (with
or without trailers), closed when it was left unread or more than it arrived.
"""

from __future__ import annotations

import functools
import random
from typing import Any, List, Optional, Tuple

import h11
import helpers
import pytest

import httpcore

pytestmark = pytest.mark.anyio

anyio_backend, flavour, api = helpers.anyio_backend, helpers.flavour, helpers.api

ORIGIN = httpcore.Origin(b"http", b"example.com", 80)
URL = "http://example.com/"
CASES_PER_FAMILY = 38

HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
# Heads a fast path must get right too: header casing, other fields, Transfer-Encoding next to
# a Content-Length (chunked wins), heads that forbid keep-alive, an interim response first; and
# (below) heads with no body, or one h11 refuses.
OTHER_HEADS = [
    b"HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: CHUNKED\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n",
    b"HTTP/1.1 404 Not Found\r\nServer: fuzz\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
    b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
]
# Only in the plain and extra families: the others are about the body, which these never read.
BODYLESS_HEADS = [
    b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
]
# Byte runs inside chunk data that a decoder must not take for framing.
LOOKALIKES = [b"\r\n", b"0\r\n\r\n", b"\r\n0\r\n\r\n", b"5\r\n", b"\r", b"\n", b";", b"\r\n\r\n"]
# All accepted by h11 (`;` then anything but LF), but the one with whitespace before the `;`.
EXTENSIONS = [
    b";name=value",
    b";a",
    b";a=b;c=d",
    b';q="x;y z"',
    b";",
    b"; spaced = 1",
    b";\xff\x80",
    b";a\rb",
    b" ;a=b",
]
# Whitespace before the CRLF is accepted; before the size it is not.
WHITESPACE = [(b"", b" "), (b"", b"\t"), (b"", b" \t "), (b"", b"    "), (b" ", b"")]
TRAILERS = [
    b"X-Trailer: 1\r\n",
    b"X-A: a\r\nX-B: b\r\n",
    b"Checksum: 0123abcd\r\n",
    b"X-Fold: a\r\n b\r\n",
    b"X-Bare-LF: 1\n",
    b"not a field\r\n",
]
# Each rejected by h11 (21 digits is one more than it takes).
BAD_SIZE_LINES = [
    b"zz\r\n",
    b"\r\n",
    b"000000000000000000005\r\n",
    b"-5\r\n",
    b"0x5\r\n",
    b"+5\r\n",
    b"5 5\r\n",
    b"g\r\n",
    b"5\n",
]
BAD_FOOTERS = [b"XY", b"\rY", b"\n", b"X\r\n", b"\r\r\n"]
EXTRA = [
    b"EXTRA",
    b"\r\n",
    b"0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
]
BROKEN = ("malformed", "footer")  # families with one spoiled chunk
FAMILIES = [
    "plain",
    "extensions",
    "whitespace",
    "trailers",
    "malformed",
    "footer",
    "truncated",
    "extra",
]


# -- building the responses --------------------------------------------------------------------


class Message:
    """A response being built: its bytes, and the offsets where its parts start (split points
    worth trying, with their neighbours)."""

    def __init__(self) -> None:
        self.data = b""
        self.marks: List[int] = []

    def add(self, *parts: bytes) -> None:
        for part in parts:
            self.marks.append(len(self.data))
            self.data += part


def chunk_size(rng: random.Random) -> int:
    roll = rng.random()
    if roll < 0.7:
        return rng.randint(1, 32)
    if roll < 0.95:
        return rng.randint(33, 4096)
    return rng.randint(4097, 70000)


def chunk_data(rng: random.Random, size: int) -> bytes:
    data = bytearray(rng.randbytes(size))
    for _ in range(rng.randint(0, 3)):
        lookalike = rng.choice(LOOKALIKES)
        at = rng.randrange(size)
        data[at : at + len(lookalike)] = lookalike[: size - at]
    return bytes(data)


def hex_size(rng: random.Random, size: int) -> bytes:
    """The size in hex, in random letter case, sometimes with leading zeros (up to the 20
    digits h11 takes)."""
    digits = "".join(c.upper() if rng.random() < 0.5 else c for c in format(size, "x"))
    if len(digits) < 20 and rng.random() < 0.2:
        digits = "0" * rng.randint(1, 20 - len(digits)) + digits
    return digits.encode()


def build(rng: random.Random, family: str) -> Tuple[bytes, List[int], int]:
    """One response of the family: its bytes, the split points worth trying, and where its
    head ends."""
    message = Message()
    heads = OTHER_HEADS + BODYLESS_HEADS if family in ("plain", "extra") else OTHER_HEADS
    head = HEAD if rng.random() < 0.5 else rng.choice(heads)
    for line in head.split(b"\r\n")[:-1]:
        message.add(line + b"\r\n")
    head_end = len(message.data)

    count = rng.randint(0, 6)
    if family in BROKEN:
        count = max(count, 1)  # a chunk to spoil
    sizes = [chunk_size(rng) for _ in range(count)]
    if family == "malformed":
        # A size line ending in a bare LF runs on to the next CRLF, past the chunk's data:
        # small chunks keep that line far below h11's limit for an incomplete line.
        sizes = [min(size, 2000) for size in sizes]
    spoiled = rng.randrange(count + (family == "malformed")) if family in BROKEN else -1
    if family == "truncated" and rng.random() < 0.2:
        # A size far larger than what comes before the end.
        sizes.append(0xFFFFFFFFFFFFFFFFFFFF)

    for index, size in enumerate(sizes):
        data = chunk_data(rng, min(size, 70000))
        line = hex_size(rng, size) + b"\r\n"
        if family == "extensions" and rng.random() < 0.6:
            line = line[:-2] + rng.choice(EXTENSIONS) + b"\r\n"
        if family == "whitespace" and rng.random() < 0.6:
            before, after = rng.choice(WHITESPACE)
            line = before + line[:-2] + after + b"\r\n"
        if family == "malformed" and index == spoiled:
            line = rng.choice(BAD_SIZE_LINES)
        footer = rng.choice(BAD_FOOTERS) if family == "footer" and index == spoiled else b"\r\n"
        message.add(line, data, footer)

    last = b"0" * rng.randint(1, 3) if rng.random() < 0.2 else b"0"
    if family == "extensions" and rng.random() < 0.3:
        last += rng.choice(EXTENSIONS)
    if family == "whitespace" and rng.random() < 0.3:
        last += rng.choice(WHITESPACE)[1]
    if family == "malformed" and spoiled == len(sizes):
        message.add(rng.choice(BAD_SIZE_LINES), b"\r\n")
    elif family == "trailers":
        fields = rng.sample(TRAILERS, rng.randint(0, 2))
        message.add(last + b"\r\n", *fields, rng.choice([b"\r\n", b"\n"]))
    else:
        message.add(last + b"\r\n", b"\r\n")
    if family == "extra":
        message.add(rng.choice([*EXTRA, rng.randbytes(rng.randint(1, 40))]))
    return message.data, message.marks, head_end


def split(rng: random.Random, data: bytes, marks: List[int]) -> List[bytes]:
    """`data` as the reads that bring it: never an empty one (that is the end of the stream)."""
    if len(data) <= 300 and rng.random() < 0.15:
        return [data[i : i + 1] for i in range(len(data))]
    cuts = set()
    for _ in range(rng.randint(0, 12)):
        if rng.random() < 0.6:
            at = rng.choice(marks) + rng.randint(-1, 2)  # at, or beside, a part's start
        else:
            at = rng.randint(1, len(data) - 1)
        cuts.add(at)
        if rng.random() < 0.25:
            cuts.add(at + 1)  # a one-byte read
    points = [0, *sorted(cut for cut in cuts if 0 < cut < len(data)), len(data)]
    return [data[a:b] for a, b in zip(points, points[1:])]


@functools.cache
def cases(family: str) -> List[List[bytes]]:
    rng = random.Random(f"chunked-{family}")
    result = []
    for _ in range(CASES_PER_FAMILY):
        data, marks, head_end = build(rng, family)
        if family == "truncated":
            # Cut in the body: a stream that ends inside the head is the connection's own
            # "Server disconnected without sending a response.", not an h11 message.
            if rng.random() < 0.6:
                cut = rng.choice([m for m in marks if m >= head_end]) + rng.randint(0, 2)
            else:
                cut = rng.randint(head_end, len(data) - 1)
            data = data[: min(cut, len(data) - 1)]
            marks = [mark for mark in marks if mark < cut]
        result.append(split(rng, data, marks))
    return result


# -- the two readings -----------------------------------------------------------------------------

Outcome = Tuple[Any, ...]  # ("ok", body) | ("error", class name, message)


def h11_outcome(pieces: List[bytes]) -> Tuple[Outcome, Optional[bool]]:
    """What h11 alone makes of the reads, and whether the connection could then be reused
    (None: h11 would reuse it, but bytes past the response came in the same read)."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/", headers=[("Host", "example.com")]))
    conn.send(h11.EndOfMessage())
    reads = iter([*pieces, b""])
    body = b""
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(next(reads))
            elif type(event) is h11.Data:
                body += event.data
            elif type(event) is h11.EndOfMessage:
                break
            else:
                assert type(event) in (h11.Response, h11.InformationalResponse), event
    except h11.RemoteProtocolError as exc:
        return ("error", "RemoteProtocolError", str(exc)), False
    if conn.their_state is not h11.DONE:  # HTTP/1.0, `Connection: close`
        return ("ok", body), False
    return ("ok", body), None if conn.trailing_data[0] else True


async def connection_outcome(api: Any, pieces: List[bytes], streamed: bool) -> Tuple[Outcome, Any]:
    """What `HTTP11Connection` makes of the same reads, and the connection after it."""
    stream = api.mock_stream(pieces)
    connection = api.HTTP11Connection(ORIGIN, stream)
    try:
        if streamed:
            async with connection.stream("GET", URL) as response:
                body = b"".join([chunk async for chunk in response.aiter_stream()])
        else:
            body = (await connection.request("GET", URL)).content
    except Exception as exc:  # any class: the comparison names it
        return ("error", type(exc).__name__, str(exc)), connection
    return ("ok", body), connection


def describe(family: str, index: int, pieces: List[bytes]) -> str:
    data = b"".join(pieces)
    shown = data if len(data) <= 400 else data[:300] + b"..." + data[-100:]
    return f"{family}[{index}]: reads of {[len(p) for p in pieces]} bytes: {shown!r}"


@pytest.mark.parametrize("family", FAMILIES)
async def test_chunked_bodies_read_as_h11_reads_them(api: Any, family: str) -> None:
    for index, pieces in enumerate(cases(family)):
        expected, reusable = h11_outcome(pieces)
        # Both ways of reading a body: whole (`request`) and as it arrives (`stream`).
        outcome, connection = await connection_outcome(api, pieces, streamed=index % 2 == 1)
        where = describe(family, index, pieces)
        if expected[0] == "error" and expected[2].startswith("malformed chunk footer"):
            # h11 quotes the footer bytes it had when it saw the mismatch: that depends on
            # where the reads were cut, and on how a decoder hands the rest over.
            assert outcome[:2] == expected[:2], where
            assert outcome[2].startswith("malformed chunk footer"), (outcome, where)
        else:
            assert outcome == expected, where
        if reusable is True:
            assert connection.is_idle(), where
        elif reusable is False:
            assert connection.is_closed(), where
        # reusable None: see test_bytes_after_the_last_chunk_make_the_connection_unusable.
        await connection.aclose()


def test_each_family_holds_what_it_is_for() -> None:
    """The generator makes what the families say (h11 decides): the fuzz is not vacuous."""
    outcomes = {family: [h11_outcome(pieces)[0] for pieces in cases(family)] for family in FAMILIES}
    kinds = {family: [outcome[0] for outcome in outcomes[family]] for family in FAMILIES}
    share = CASES_PER_FAMILY * 8 // 10
    for family in ("plain", "extra"):  # errors: only the heads h11 refuses
        assert kinds[family].count("ok") >= share, kinds[family]
    for family in ("malformed", "footer", "truncated"):
        assert kinds[family] == ["error"] * CASES_PER_FAMILY, family
    for family in ("extensions", "whitespace", "trailers"):  # mostly accepted, not all
        assert CASES_PER_FAMILY // 2 <= kinds[family].count("ok") < CASES_PER_FAMILY, family
    assert all(o[2].startswith("malformed chunk footer") for o in outcomes["footer"])
    assert {o[2] for o in outcomes["truncated"]} == {
        "peer closed connection without sending complete message body (incomplete chunked read)",
        "peer unexpectedly closed connection",  # the end came inside a size line or trailer
    }
    # Bytes past the response that came with its end, and bytes that came in a later read.
    reuse = [h11_outcome(pieces)[1] for pieces in cases("extra")]
    assert None in reuse and True in reuse
    reads = [len(pieces) for family in FAMILIES for pieces in cases(family)]
    assert sum(n == 1 for n in reads) >= 20 and max(reads) >= 100
    sizes = [len(b"".join(pieces)) for family in FAMILIES for pieces in cases(family)]
    assert max(sizes) > 65536


# -- keep-alive around a chunked body --------------------------------------------------------------

FIRST = HEAD + b"5\r\nHello\r\n7\r\n, world\r\n0\r\n\r\n"
SECOND = HEAD + b"3\r\nabc\r\n0\r\n\r\n"


def cut(data: bytes, *at: int) -> List[bytes]:
    points = [0, *at, len(data)]
    return [data[a:b] for a, b in zip(points, points[1:])]


@pytest.mark.parametrize(
    "first",
    [[FIRST], cut(FIRST, len(HEAD) + 3), cut(FIRST, len(FIRST) - 2), cut(FIRST, len(FIRST) - 3)],
    ids=["one-read", "in-a-size-line", "before-the-last-crlf", "inside-the-last-crlf"],
)
async def test_a_complete_chunked_response_leaves_the_connection_reusable(
    api: Any, first: List[bytes]
) -> None:
    stream = api.mock_stream([*first, *cut(SECOND, len(HEAD))])
    async with api.HTTP11Connection(ORIGIN, stream) as connection:
        async with connection.stream("GET", URL) as response:
            body = b"".join([chunk async for chunk in response.aiter_stream()])
        assert body == b"Hello, world"
        assert connection.is_idle()
        response = await connection.request("GET", URL)
        assert response.content == b"abc"
        assert connection.is_idle()
    assert stream.data.count(b"GET / HTTP/1.1\r\n") == 2


STALE = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nSTALE"
FRESH = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh"


# Before, the connection went back to IDLE with those bytes still in h11's buffer, and a
# later request whose response h11 read was answered from them: with EXTRA = STALE, request 1
# read "abc", request 2 (fast path) "fresh" from the socket, request 3 "STALE".
@pytest.mark.parametrize("extra", [b"EXTRA", STALE], ids=["garbage", "a-response"])
async def test_bytes_after_the_last_chunk_make_the_connection_unusable(
    api: Any, extra: bytes
) -> None:
    # They came in the read that ended the body: the connection is out of step.
    stream = api.mock_stream([SECOND[:-3], SECOND[-3:] + extra, FRESH])
    connection = api.HTTP11Connection(ORIGIN, stream)
    assert (await connection.request("GET", URL)).content == b"abc"
    assert connection.is_closed()
    assert stream.closed
    with pytest.raises(httpcore.ConnectionNotAvailable):
        await connection.request("GET", URL)


# Split points in the last chunk and its trailer section: before it, inside its CRLF, after it,
# inside a field, at the second field, before and inside the final CRLF.
@pytest.mark.parametrize("at", [0, 2, 3, 10, 17, 31, 32])
async def test_trailers_are_read_and_the_connection_is_reused(api: Any, at: int) -> None:
    tail = b"0\r\nX-Trailer: 1\r\nX-Other: two\r\n\r\n"
    answer = HEAD + b"4\r\nbody\r\n" + tail
    stream = api.mock_stream([*cut(answer, len(answer) - len(tail) + at), SECOND])
    async with api.HTTP11Connection(ORIGIN, stream) as connection:
        response = await connection.request("GET", URL)
        assert response.content == b"body"
        assert connection.is_idle()
        assert (await connection.request("GET", URL)).content == b"abc"
        assert connection.is_idle()


@pytest.mark.parametrize(
    ("reads", "taken"),
    [
        ([HEAD + b"5\r\nHello\r\n", b"7\r\n, world\r\n", b"0\r\n\r\n"], 1),
        ([HEAD + b"a\r\n01234", b"56789\r\n0\r\n\r\n"], 1),
        ([HEAD + b"a\r\n0123456789\r\n0\r\n\r\n"], 0),
        ([HEAD, b"a\r\n0123456789\r\n0\r\n\r\n"], 0),
    ],
    ids=["after-a-chunk", "inside-a-chunk", "unread-whole-body-buffered", "unread"],
)
async def test_a_chunked_body_left_unread_closes_the_connection(
    api: Any, reads: List[bytes], taken: int
) -> None:
    stream = api.mock_stream(reads)
    connection = api.HTTP11Connection(ORIGIN, stream)
    async with connection.stream("GET", URL) as response:
        if taken:
            async for _chunk in response.aiter_stream():
                break
    assert connection.is_closed()
    assert stream.closed
    with pytest.raises(httpcore.ConnectionNotAvailable):
        await connection.request("GET", URL)
