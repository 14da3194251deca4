"""The fast response-head parser agrees with h11 whenever it accepts a head."""

from __future__ import annotations

import itertools
import random

import h11
import pytest

import httpcore
from httpcore.base._http11 import parse_simple_head, serialize_simple_request

STATUS_LINES = [
    b"HTTP/1.1 200 OK",
    b"HTTP/1.0 200 OK",
    b"HTTP/1.1 200",
    b"HTTP/1.1 200 ",
    b"HTTP/1.1 404 Not Found",
    b"HTTP/1.1 599 \xe9t\xe9",
    b"HTTP/1.1 100 Continue",
    b"HTTP/1.1 204 No Content",
    b"HTTP/1.1 304 Not Modified",
    b"HTTP/2.0 200 OK",
    b"HTTP/1.1 20 OK",
    b"HTTP/1.1  200 OK",
    b"http/1.1 200 OK",
    b"HTTP/1.1 200 O\x00K",
]
HEADER_LINES = [
    b"Content-Length: 5",
    b"content-length:5",
    b"Content-Length: 5 ",
    b"Content-Length: 05",
    b"Content-Length: 5, 5",
    b"Content-Length: -1",
    b"Content-Length: x",
    b"Transfer-Encoding: chunked",
    b"Connection: close",
    b"X-Empty:",
    b"X-Spaces:   a   b  ",
    b"X-Obs: \xff\xfe",
    b"X-Bad Name: 1",
    b"X-Bad : 1",
    b" folded",
    b"NoColon",
    b"X-Ctl: a\x01b",
    b"X-Tab:\tv\t",
    b"Server: nginx/1.22.1",
]


def h11_parse(head: bytes) -> tuple[bytes, int, bytes, list[tuple[bytes, bytes]]] | None:
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(head + b"\r\n\r\n")
    try:
        event = conn.next_event()
    except h11.RemoteProtocolError:
        return None
    assert isinstance(event, (h11.Response, h11.InformationalResponse))
    return event.http_version, event.status_code, event.reason, event.headers.raw_items()


def heads() -> list[bytes]:
    rng = random.Random(1234)
    result = []
    for status in STATUS_LINES:
        for count in range(4):
            for _ in range(25):
                lines = rng.sample(HEADER_LINES, count)
                result.append(b"\r\n".join([status, *lines]))
    for status, line in itertools.product(STATUS_LINES, HEADER_LINES):
        result.append(b"\r\n".join([status, b"Content-Length: 3", line]))
    return result


@pytest.mark.parametrize("head", heads())
def test_accepted_heads_parse_as_h11_does(head: bytes) -> None:
    parsed = parse_simple_head(head)
    if parsed is None:
        return  # handed to h11 by the connection
    expected = h11_parse(head)
    assert expected is not None, head
    version, status, reason, headers, length = parsed
    assert (version, status, reason, headers) == expected
    content_lengths = [v for k, v in headers if k.lower() == b"content-length"]
    assert [int(v) for v in content_lengths] == [length]


def test_the_common_head_takes_the_fast_path() -> None:
    head = b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 2048\r\nConnection: keep-alive"
    assert parse_simple_head(head) == (
        b"1.1",
        200,
        b"OK",
        [(b"Server", b"nginx"), (b"Content-Length", b"2048"), (b"Connection", b"keep-alive")],
        2048,
    )


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked",
        b"HTTP/1.1 200 OK",
        b"HTTP/1.1 101 Switching Protocols\r\nContent-Length: 0",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1",
    ],
)
def test_other_heads_go_to_h11(head: bytes) -> None:
    assert parse_simple_head(head) is None


# -- requests: the fast serializer writes exactly what h11 would, or leaves it to h11 --------

REQUEST_HEADERS = [
    (b"Host", b"example.com"),
    (b"host", b"example.com:8080"),
    (b"Content-Length", b"3"),
    (b"Content-Length", b"0"),
    (b"content-length", b"x"),
    (b"Transfer-Encoding", b"chunked"),
    (b"Accept", b"*/*"),
    (b"X-Empty", b""),
    (b"X-Space", b" padded "),
    (b"X-Obs", b"\xff"),
    (b"Bad Name", b"1"),
    (b"X-Nul", b"a\x00b"),
    (b"Connection", b"close"),
    (b"User-Agent", b"test/1.0 (x; y)"),
]


def h11_request_bytes(method: bytes, target: bytes, headers: list, content: bytes) -> bytes | None:
    conn = h11.Connection(h11.CLIENT)
    try:
        data = conn.send(h11.Request(method=method, target=target, headers=headers))
        if content:
            data += conn.send(h11.Data(data=content))
        data += conn.send(h11.EndOfMessage())
    except h11.LocalProtocolError:
        return None
    return data


def requests() -> list[tuple[bytes, bytes, list, bytes]]:
    rng = random.Random(4321)
    result = []
    for method, target in [(b"GET", b"/"), (b"POST", b"/a?b=c"), (b"G T", b"/"), (b"GET", b"/a b")]:
        for count in range(5):
            for _ in range(30):
                headers = rng.sample(REQUEST_HEADERS, count)
                for content in (b"", b"abc"):
                    result.append((method, target, headers, content))
    return result


@pytest.mark.parametrize(("method", "target", "headers", "content"), requests())
def test_simple_requests_serialize_as_h11_does(
    method: bytes, target: bytes, headers: list, content: bytes
) -> None:
    request = httpcore.Request(
        method, httpcore.URL(scheme=b"http", host=b"h", target=target), headers=headers
    )
    data = serialize_simple_request(request, content)
    if data is None:
        return  # sent through h11
    assert data == h11_request_bytes(method, target, headers, content)
