"""Corrupted server bytes, over the mock backends: every failure is a `RemoteProtocolError`
whose message says what went wrong, the connection is not reused after it, and nothing hangs.

A seeded mutation fuzz: well-formed HTTP/1.1 and HTTP/2 responses (the HTTP/2 ones written by
an h2 server connection) are truncated, bit-flipped, overwritten, spliced with random or
repeated bytes, or cut short, then delivered in reads split at random points. It found two
defects: an HTTP/1.1 body delimited by the server's close left the connection IDLE (h11 counts
that exchange done), and h2's errors about a stream it does not know came out as the bare
stream number.
"""

from __future__ import annotations

import random
from typing import Any, Callable, Counter, List, Tuple

import h2.config
import h2.connection
import helpers
import pytest
from helpers import origin

import httpcore

pytestmark = pytest.mark.anyio

anyio_backend, flavour, api = helpers.anyio_backend, helpers.flavour, helpers.api

CASES = 300
URL = "https://example.com/"

# Messages that describe a library's own state rather than what the server sent.
INTERNAL = ("can't handle event type", "role=", "state=")


def mutate(rng: random.Random, data: bytes) -> bytes:
    """`data` spoiled in one of several ways, once or a few times (or left alone)."""
    kind = rng.choice(["cut", "flip", "byte", "insert", "drop", "repeat", "none"])
    spoilt = bytearray(data)
    for _ in range(rng.choice([1, 1, 2, 3])):
        if not spoilt:
            break
        at = rng.randrange(len(spoilt))
        if kind == "cut":
            del spoilt[at:]
        elif kind == "flip":
            spoilt[at] ^= 1 << rng.randrange(8)
        elif kind == "byte":
            spoilt[at] = rng.choice([0, 10, 13, 32, 58, 0x7F, 0x80, 0xFF, rng.randrange(256)])
        elif kind == "insert":
            spoilt[at:at] = rng.choice([b"\r\n", b"\n", b":", b" ", b"0", rng.randbytes(8)])
        elif kind == "drop":
            del spoilt[at : at + rng.randint(1, 12)]
        elif kind == "repeat":
            spoilt[at:at] = spoilt[at : at + rng.randint(1, 30)]
    return bytes(spoilt)


def reads(rng: random.Random, data: bytes) -> List[bytes]:
    """`data` as the reads that bring it (never an empty one: that is EOF)."""
    cuts = {rng.randint(1, max(1, len(data) - 1)) for _ in range(rng.randint(0, 6))}
    points = [0, *sorted(cut for cut in cuts if 0 < cut < len(data)), len(data)]
    return [data[a:b] for a, b in zip(points, points[1:]) if data[a:b]]


# -- HTTP/1.1 ---------------------------------------------------------------------------------

HEADS_11 = [
    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\ncontent-length: %d\r\nX-A: b\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n",
    b"HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX-A: b\r\n\r\n",  # the body ends where the server closes
]


def response_11(rng: random.Random) -> bytes:
    head = rng.choice(HEADS_11)
    body = rng.randbytes(rng.choice([0, 3, 50, 3000]))
    if b"chunked" in head:
        chunks = b""
        while body:
            size = rng.randint(1, len(body))
            chunks += b"%x\r\n%s\r\n" % (size, body[:size])
            body = body[size:]
        return head + chunks + b"0\r\n\r\n"
    return (head % len(body) if b"%d" in head else head) + body


async def exchange_11(api: Any, rng: random.Random) -> Tuple[str, Any]:
    """Up to three requests on one connection over spoilt responses: "ok", or the error."""
    count = rng.randint(1, 3)
    data = mutate(rng, b"".join(response_11(rng) for _ in range(count)))
    connection = api.HTTP11Connection(origin(), api.mock_stream(reads(rng, data)))
    try:
        for _ in range(count):
            if rng.random() < 0.5:
                await connection.request(rng.choice(["GET", "HEAD"]), URL)
            else:
                async with connection.stream("GET", URL) as response:
                    async for _chunk in response.aiter_stream():
                        pass
    except httpcore.ConnectionNotAvailable:
        # The connection closed after a response that forbids reuse: it says so at once.
        assert connection.is_closed()
        return "ok", None
    except httpcore.RemoteProtocolError as exc:
        assert connection.is_closed()
        return "error", exc
    finally:
        await connection.aclose()
    return "ok", None


# -- HTTP/2 -----------------------------------------------------------------------------------


def response_2(rng: random.Random) -> bytes:
    """What an h2 server sends for one GET on stream 1: preface, settings acknowledgement, an
    interim response sometimes, the response (a length or not, DATA in one or two frames,
    trailers sometimes), a PING sometimes."""
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    client.initiate_connection()
    server.initiate_connection()
    server.receive_data(client.data_to_send())
    request = [(":method", "GET"), (":authority", "e"), (":scheme", "https"), (":path", "/")]
    client.send_headers(1, request, end_stream=True)
    server.receive_data(client.data_to_send())
    headers = [(":status", rng.choice(["200", "204", "404"])), ("content-type", "text/plain")]
    body = rng.randbytes(rng.choice([0, 5, 100, 3000]))
    if rng.random() < 0.5:
        headers.append(("content-length", str(len(body))))
    if rng.random() < 0.2:
        server.send_headers(1, [(":status", "103"), ("link", "</a>")])
    if not body and rng.random() < 0.5:
        server.send_headers(1, headers, end_stream=True)
    else:
        server.send_headers(1, headers)
        trailers = rng.random() < 0.3
        if len(body) > 10 and rng.random() < 0.3:
            server.send_data(1, body[:7])
            body = body[7:]
        server.send_data(1, body, end_stream=not trailers)
        if trailers:
            server.send_headers(1, [("x-trailer", "1")], end_stream=True)
    if rng.random() < 0.1:
        server.ping(b"12345678")
    return server.data_to_send()


async def exchange_2(api: Any, rng: random.Random) -> Tuple[str, Any]:
    data = mutate(rng, response_2(rng))
    connection = api._client("HTTP2Connection", origin(), api.mock_stream(reads(rng, data)))
    try:
        if rng.random() < 0.5:
            await connection.request("GET", URL)
        else:
            async with connection.stream("GET", URL) as response:
                async for _chunk in response.aiter_stream():
                    pass
    except httpcore.RemoteProtocolError as exc:
        # A reset stream fails its request only; anything else, the connection.
        if not str(exc).startswith("<StreamReset"):
            assert not connection.is_available()
        return "error", exc
    finally:
        await connection.aclose()
    return "ok", None


# -- the fuzz ---------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["HTTP/1.1", "HTTP/2"])
async def test_corrupted_responses_fail_cleanly(api: Any, protocol: str) -> None:
    exchange: Callable[[Any, random.Random], Any] = (
        exchange_11 if protocol == "HTTP/1.1" else exchange_2
    )
    outcomes: Counter[str] = Counter()
    for case in range(CASES):
        rng = random.Random(f"corrupted-{protocol}-{case}")
        outcome, exc = await exchange(api, rng)
        outcomes[outcome] += 1
        if exc is not None:
            message = str(exc)
            where = f"{protocol} case {case}: {exc!r}"
            assert message and not message.isdigit(), where
            assert not any(part in message for part in INTERNAL), where
    # Not vacuous: the spoilt bytes break most exchanges, and some survive.
    assert outcomes["ok"] >= CASES // 10, outcomes
    assert outcomes["error"] >= CASES // 5, outcomes
